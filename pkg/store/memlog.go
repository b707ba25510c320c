package store

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/decisiongraph/dg/pkg/event"
)

// MemLog is an in-memory event log with exactly the append rules of the
// Postgres store (the same rule code runs for both). It is for offline use
// (`dg events digest`) and tests. It is safe for concurrent use.
//
// Events returned by MemLog share their payload maps with the log: callers
// must not modify them.
type MemLog struct {
	opts   event.Options
	mu     sync.RWMutex
	ix     *logIndex
	events []*event.StoredEvent // log_seq order; events[i].LogSeq == i+1
}

// NewMemLog returns an empty in-memory log; its first event gets log_seq 1.
func NewMemLog(opts event.Options) *MemLog {
	return &MemLog{opts: opts, ix: newLogIndex()}
}

// Append appends env to tenant's log with the rules of events spec §10.
// It returns the stored event and whether it is an idempotent replay of an
// earlier one. Rule failures are *event.Error.
func (m *MemLog) Append(tenant string, env *event.Envelope) (*event.StoredEvent, bool, error) {
	p, err := prepare(tenant, env, m.opts)
	if err != nil {
		return nil, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, rerr := m.ix.decide(p)
	if rerr != nil {
		return nil, false, rerr
	}
	if prev != nil {
		return prev, true, nil
	}
	// Store a payload decoded from the canonical text so the log owns it
	// and reads see exactly what Postgres would return.
	payload, derr := event.DecodePayload(p.payloadJSON)
	if derr != nil {
		return nil, false, fmt.Errorf("re-read canonical payload: %w", derr)
	}
	cp := *p.env
	cp.Payload = payload
	cp.Tags = append([]string{}, p.env.Tags...)
	p.env = &cp
	ev, err := m.ix.accept(p, recordedNow())
	if err != nil {
		return nil, false, err
	}
	m.events = append(m.events, ev)
	return ev, false, nil
}

// AppendResult is Append's answer through the common Appender interface.
func (m *MemLog) AppendResult(_ context.Context, tenant string, env *event.Envelope) (*AppendResult, error) {
	ev, replay, err := m.Append(tenant, env)
	if err != nil {
		return nil, err
	}
	return &AppendResult{Event: ev, Replayed: replay}, nil
}

// Head returns the highest log_seq (0 when empty).
func (m *MemLog) Head() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.ix.head
}

// Events returns events with since < log_seq, in log_seq order, of one
// tenant or of all tenants when tenant is "". limit <= 0 means no limit.
func (m *MemLog) Events(tenant string, since int64, limit int) []*event.StoredEvent {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*event.StoredEvent
	start := max(since, 0)
	for _, ev := range m.events[min(start, int64(len(m.events))):] {
		if tenant != "" && ev.TenantID != tenant {
			continue
		}
		out = append(out, ev)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

// TraceEvents returns the events of one trace in trace_seq order, or
// DG_ERR_NOT_FOUND when the trace has none.
func (m *MemLog) TraceEvents(tenant, traceID string) ([]*event.StoredEvent, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*event.StoredEvent
	for _, ev := range m.events {
		if ev.TenantID == tenant && ev.TraceID == traceID {
			out = append(out, ev)
		}
	}
	if len(out) == 0 {
		return nil, &event.Error{Code: event.CodeNotFound, Path: "$.trace_id", Message: fmt.Sprintf("trace %q has no events in tenant %q", traceID, tenant)}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TraceSeq < out[j].TraceSeq })
	return out, nil
}

// Tenants returns the tenants with events, sorted.
func (m *MemLog) Tenants() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.ix.chains))
	for t := range m.ix.chains {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ChainHead returns the tenant's chain head (ChainGenesis and 0 events when
// it has none).
func (m *MemLog) ChainHead(tenant string) ChainHead {
	m.mu.RLock()
	defer m.mu.RUnlock()
	cs, ok := m.ix.chains[tenant]
	if !ok {
		return ChainHead{TenantID: tenant, ChainHash: event.ChainGenesis(tenant)}
	}
	var last int64
	for i := len(m.events) - 1; i >= 0; i-- {
		if m.events[i].TenantID == tenant {
			last = m.events[i].LogSeq
			break
		}
	}
	return ChainHead{TenantID: tenant, LogSeq: last, ChainHash: cs.hash, EventCount: cs.count}
}

// AppendAll appends envs to tenant's log in order with exactly the result
// of calling Append on each in turn, stopping at the first refused
// envelope: it returns how many of envs became new log entries (retries
// are not appended again), the index of the refused envelope (len(envs)
// when none was) and its error. onEach, when not nil, is called for every
// envelope handled before that, with the stored event and whether it was
// a replay.
//
// What Append does before looking at the log (validation, canonical JSON,
// payload hash, reading the canonical payload back) runs on every core
// ahead of the rules, which still judge one envelope at a time in order, so
// the outcome does not depend on scheduling. The log is locked for the
// whole call.
//
// AppendAll takes ownership of the envelopes' payloads: a payload that is
// already exactly what reading its canonical JSON back gives (decoded JSON
// of map[string]any, []any, string, integer json.Number other than "-0",
// bool and nil, as event.DecodeEvents makes) is kept as the stored payload
// instead of being decoded again, so callers must not modify envs
// afterwards.
func (m *MemLog) AppendAll(tenant string, envs []event.Envelope, onEach func(i int, ev *event.StoredEvent, replay bool)) (appended, failedAt int, err error) {
	type result struct {
		p       *prepared
		err     error
		payload map[string]any
	}
	res := make([]result, len(envs))
	const chunk = 64
	chunks := (len(envs) + chunk - 1) / chunk
	done := make([]chan struct{}, chunks)
	for i := range done {
		done[i] = make(chan struct{})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.events) == 0 {
		m.ix.grow(len(envs))
	}
	// Envelope i lands at log_seq base+i+1 unless an earlier one of envs
	// is a retry; the workers hash each event for that position, and
	// accept hashes again only when it turns out different.
	base := m.ix.head
	var next atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	work := func() {
		defer wg.Done()
		// The canonical payload text is only needed here (to re-read a
		// payload that is not canonically shaped), so each worker writes
		// it into one reused buffer.
		scratch := make([]byte, 0, 4096)
		for !stop.Load() {
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			for i := c * chunk; i < min((c+1)*chunk, len(envs)); i++ {
				r := &res[i]
				r.p, r.err = prepareAt(tenant, &envs[i], m.opts, base+int64(i)+1, scratch)
				if r.err != nil {
					continue
				}
				if canonicalShaped(r.p.env.Payload, 0) {
					r.payload = r.p.env.Payload
				} else if payload, derr := event.DecodePayload(r.p.payloadJSON); derr != nil {
					r.err = fmt.Errorf("re-read canonical payload: %w", derr)
				} else {
					r.payload = payload
				}
				// DecodePayload copies what it keeps, so the buffer is
				// free again (and kept if it grew).
				scratch = r.p.payloadJSON[:0]
				r.p.payloadJSON = nil
			}
			close(done[c])
		}
	}
	workers := min(runtime.GOMAXPROCS(0), chunks)
	wg.Add(workers)
	for range workers {
		go work()
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()

	for c := range chunks {
		<-done[c]
		for i := c * chunk; i < min((c+1)*chunk, len(envs)); i++ {
			r := &res[i]
			if r.err != nil {
				return appended, i, r.err
			}
			prev, rerr := m.ix.decide(r.p)
			if rerr != nil {
				return appended, i, rerr
			}
			if prev != nil {
				if onEach != nil {
					onEach(i, prev, true)
				}
				continue
			}
			// r.p.env is prepare's private copy of the envelope.
			r.p.env.Payload = r.payload
			r.p.env.Tags = append([]string{}, r.p.env.Tags...)
			ev, err := m.ix.accept(r.p, recordedNow())
			if err != nil {
				return appended, i, err
			}
			m.events = append(m.events, ev)
			appended++
			if onEach != nil {
				onEach(i, ev, false)
			}
			res[i] = result{}
		}
	}
	return appended, len(envs), nil
}

// canonicalShaped reports whether v is already exactly what decoding its
// canonical JSON gives back: decoded JSON shapes only, no nil maps or
// slices (which canonicalise to null), and json.Numbers other than "-0"
// (which canonicalises to 0). It is only asked about payloads prepare
// accepted.
func canonicalShaped(v any, depth int) bool {
	if depth > event.MaxDepth {
		return false
	}
	switch x := v.(type) {
	case nil, bool, string:
		return true
	case json.Number:
		// prepare has accepted the payload, so every number is an integer
		// literal (floats and malformed numbers are refused).
		return x != "-0"
	case map[string]any:
		if x == nil {
			return false
		}
		for _, e := range x {
			if !canonicalShaped(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		if x == nil {
			return false
		}
		for _, e := range x {
			if !canonicalShaped(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// grow sizes the index's maps for about n more events, when they are empty.
func (ix *logIndex) grow(n int) {
	if len(ix.idem) == 0 {
		ix.idem = make(map[idemKey]*event.StoredEvent, n)
	}
	if len(ix.ids) == 0 {
		ix.ids = make(map[idKey]struct{}, n)
	}
	if len(ix.traces) == 0 {
		ix.traces = make(map[traceKey]traceState, n/4)
	}
}
