package server

import (
	"bytes"
	"sync"
	"sync/atomic"
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
// It relies on the append-only guarantee: an operator who repairs rows
// with the triggers disabled must restart the nodes (or they serve the
// rows they rendered before, until those are evicted).

type traceCache struct {
	mu      sync.Mutex
	m       map[string]*traceCacheEntry
	bytes   int64
	max     int64
	hits    atomic.Int64
	misses  atomic.Int64
	evicted atomic.Int64
	tails   tailGroup // validation statements shared by concurrent reads
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
}

// traceCacheOverhead approximates an entry's memory beyond its events.
const traceCacheOverhead = 256

func newTraceCache(max int64) *traceCache {
	if max <= 0 {
		return nil
	}
	return &traceCache{m: map[string]*traceCacheEntry{}, max: max}
}

func traceCacheKey(tenant, traceID string) string { return tenant + "\x00" + traceID }

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
	e.size = int64(len(e.events)+len(key)+len(e.lastChain)+len(e.system)) + traceCacheOverhead
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
	// Validations counts the validation statements run for cached
	// entries; concurrent reads of one trace share them (traces_tail.go).
	Validations int64 `json:"validations"`
}

func (c *traceCache) stats() TraceCacheStats {
	if c == nil {
		return TraceCacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return TraceCacheStats{Entries: len(c.m), Bytes: c.bytes, Hits: c.hits.Load(), Misses: c.misses.Load(), Evicted: c.evicted.Load(), Validations: c.tails.runs.Load()}
}

// TraceCacheStats returns the counters of the trace cache the API built
// from this configuration.
func (c *APIConfig) TraceCacheStats() TraceCacheStats { return c.traceCache.stats() }
