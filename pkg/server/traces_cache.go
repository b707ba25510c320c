package server

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/decisiongraph/dg/pkg/store"
)

// The trace cache keeps the rendered events of recently read traces
// (APIConfig.TraceCacheBytes). It never answers on its own: every read
// still runs one statement (store.ReadTraceTail) that returns the
// projection checkpoint, the tenant's head and the summary row, exactly as
// the uncached read, plus the trace's last event. The cached rendering is
// used only when that last event is the one it ends with (same trace_seq,
// log_seq, recorded_at and chain_hash) and the entry holds trace_seq
// 0..n-1 without gaps. The log is append-only (UPDATE, DELETE and TRUNCATE
// are refused by triggers) and trace_seq is unique per trace, so the
// trace's events in that statement's snapshot are then exactly the cached
// ones, whichever process appended them; the summary and request id are
// rendered fresh for each request. A different last event (another dg
// process appended, a restore replaced the database) is a miss: the
// trace is read and rendered again and the entry replaced.
//
// An entry that a per-trace statement has confirmed also keeps that
// statement's summary and the tenant's mark (store.TenantMark: the
// tenant's last event and the trace summary projection's cursor row) in
// the same snapshot. The next read of the entry first runs the tenant's
// mark statement instead, which concurrent reads of every trace of the
// tenant share (traces_tail.go): when the mark is unchanged, nothing was
// appended to the tenant and the projection's rows of the tenant were not
// rewritten, so the cached events and summary are the trace's current
// ones and the per-trace statement is skipped. A changed mark sends the
// read to the per-trace statement as before. Reads whose entry's mark is
// already older than the latest mark seen for the tenant (the tenant is
// being written to) go straight to the per-trace statement.
//
// It relies on the append-only guarantee: an operator who repairs rows
// with the triggers disabled, or edits projection rows by hand, must
// restart the nodes (or they serve what they rendered before, until the
// tenant's next append or an eviction).

type traceCache struct {
	mu      sync.Mutex
	m       map[string]*traceCacheEntry
	bytes   int64
	max     int64
	hits    atomic.Int64
	misses  atomic.Int64
	evicted atomic.Int64
	tails   tailGroup // per-trace validation statements shared by concurrent reads
	marks   markGroup // tenant mark statements shared by concurrent reads

	markHits atomic.Int64                // hits confirmed by a tenant mark alone
	markErrs atomic.Int64                // tenant mark statements that failed
	lastMark map[string]store.TenantMark // by tenant, the latest mark read (under mu)
}

// traceCacheEntry is immutable once stored.
type traceCacheEntry struct {
	events     []byte // the rendered events, comma-separated, without [ ]
	n          int64  // events, trace_seq 0..n-1
	lastLogSeq int64
	lastRecAt  int64 // Unix microseconds
	lastChain  string
	system     string // primary_entity.system of the first event
	hasSys     bool
	size       int64

	// With hasMark, the tenant's mark and the trace's summary (split
	// around primary_entity_system) read by the per-trace statement that
	// confirmed events.
	hasMark    bool
	mark       store.TenantMark
	sum1, sum2 []byte
	// body is the whole response up to the request id's value: events
	// and sum1, sum2 rendered, then `},"request_id":` (events is a part of
	// it).
	body []byte
}

// traceCacheOverhead approximates an entry's memory beyond its events.
const traceCacheOverhead = 256

func newTraceCache(max int64) *traceCache {
	if max <= 0 {
		return nil
	}
	return &traceCache{m: map[string]*traceCacheEntry{}, max: max, lastMark: map[string]store.TenantMark{}}
}

func traceCacheKey(tenant, traceID string) string { return tenant + "\x00" + traceID }

// markWorthChecking reports whether a tenant mark statement can confirm an
// entry with mark m: not when a later mark of the tenant has been read
// already (marks only change forward, short of a restore, and then the
// per-trace statement is right anyway).
func (c *traceCache) markWorthChecking(tenant string, m store.TenantMark) bool {
	c.mu.Lock()
	last, ok := c.lastMark[tenant]
	c.mu.Unlock()
	return !ok || last == m
}

// noteMark remembers m as the tenant's latest mark.
func (c *traceCache) noteMark(tenant string, m store.TenantMark) {
	c.mu.Lock()
	if c.lastMark[tenant] != m {
		c.lastMark[tenant] = m
	}
	c.mu.Unlock()
}

// withMark returns a copy of e that also holds the mark and summary of the
// per-trace statement res, which found e's events current.
// While other traces of the tenant are written to, the mark changes on
// every read but the summary does not: the rendered body is then shared
// with e rather than copied again.
func (e *traceCacheEntry) withMark(res *tailResult) *traceCacheEntry {
	n := *e
	n.hasMark, n.mark, n.sum1, n.sum2 = true, res.mark, res.sum1, res.sum2
	if e.body != nil && bytes.Equal(e.sum1, res.sum1) && bytes.Equal(e.sum2, res.sum2) {
		return &n // body and events are immutable: shared
	}
	b := make([]byte, 0, len(traceBodyStart)+len(e.events)+len(res.sum1)+len(res.sum2)+len(e.system)+64)
	b = append(b, traceBodyStart...)
	b = append(b, e.events...)
	n.events = b[len(traceBodyStart):len(b):len(b)]
	b = appendSummaryTail(b, res.sum1, res.sum2, e.system, e.hasSys)
	n.body = append(b, `},"request_id":`...)
	return &n
}

func (c *traceCache) get(key string) *traceCacheEntry {
	c.mu.Lock()
	e := c.m[key]
	c.mu.Unlock()
	return e
}

// matches reports whether the trace's last event is the entry's last.
func (e *traceCacheEntry) matches(traceSeq, logSeq, recAt int64, chain []byte) bool {
	return traceSeq == e.n-1 && logSeq == e.lastLogSeq && recAt == e.lastRecAt && bytes.Equal(chain, []byte(e.lastChain))
}

// put stores e under key, evicting arbitrary entries while over budget.
// An entry larger than a quarter of the budget is not kept.
func (c *traceCache) put(key string, e *traceCacheEntry) {
	e.size = int64(len(e.events)+len(key)+len(e.lastChain)+len(e.system)+len(e.sum1)+len(e.sum2)+len(e.mark.HeadChain)) + traceCacheOverhead
	if e.size > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[key]; ok {
		c.bytes -= old.size
		delete(c.m, key)
	}
	for k, old := range c.m {
		if c.bytes+e.size <= c.max {
			break
		}
		c.bytes -= old.size
		delete(c.m, k)
		c.evicted.Add(1)
	}
	c.m[key] = e
	c.bytes += e.size
}

// TraceCacheStats are the trace cache's counters (zero without a cache).
type TraceCacheStats struct {
	Entries int   `json:"entries"`
	Bytes   int64 `json:"bytes"`
	Hits    int64 `json:"hits"`
	Misses  int64 `json:"misses"`
	Evicted int64 `json:"evicted"`
	// Validations counts the per-trace validation statements run for
	// cached entries; concurrent reads of one trace share them
	// (traces_tail.go).
	Validations int64 `json:"validations"`
	// MarkChecks counts the tenant mark statements run for cached
	// entries (concurrent reads of one tenant share them), MarkHits the
	// hits they confirmed without a per-trace statement.
	MarkChecks int64 `json:"mark_checks"`
	MarkHits   int64 `json:"mark_hits"`
	// MarkFailures counts tenant mark statements that failed (the reads
	// then took the per-trace statement, which reports a failure).
	MarkFailures int64 `json:"mark_failures"`
}

func (c *traceCache) stats() TraceCacheStats {
	if c == nil {
		return TraceCacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return TraceCacheStats{Entries: len(c.m), Bytes: c.bytes, Hits: c.hits.Load(), Misses: c.misses.Load(), Evicted: c.evicted.Load(),
		Validations: c.tails.runs.Load(), MarkChecks: c.marks.runs.Load(), MarkHits: c.markHits.Load(),
		MarkFailures: c.markErrs.Load()}
}

// TraceCacheStats returns the counters of the trace cache the API built
// from this configuration.
func (c *APIConfig) TraceCacheStats() TraceCacheStats { return c.traceCache.stats() }
