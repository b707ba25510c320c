package store

import (
	"context"
	"fmt"
	"sort"
	"sync"

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
