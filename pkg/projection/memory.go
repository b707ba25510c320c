package projection

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/decisiongraph/dg/pkg/event"
)

// MemStore is the in-memory row store: the tables of one tenant held in
// maps, with the same insert-if-absent and replace semantics as the
// Postgres tables.
type MemStore struct {
	nodes       map[string]Node
	edges       map[string]Edge
	summaries   map[string]*Summary
	policyEvals map[string]PolicyEval
	precedents  map[string]Precedent
	precByTrace map[string][]string
}

// NewMemStore returns empty tables.
func NewMemStore() *MemStore {
	return &MemStore{
		nodes: map[string]Node{}, edges: map[string]Edge{}, summaries: map[string]*Summary{},
		policyEvals: map[string]PolicyEval{}, precedents: map[string]Precedent{}, precByTrace: map[string][]string{},
	}
}

// Apply writes one event's changes.
func (s *MemStore) Apply(c *Changes) {
	for _, n := range c.Nodes {
		if _, ok := s.nodes[n.NodeID]; !ok {
			s.nodes[n.NodeID] = n
		}
	}
	for _, e := range c.Edges {
		if _, ok := s.edges[e.EdgeID]; !ok {
			s.edges[e.EdgeID] = e
		}
	}
	if st := c.StartSummary; st != nil {
		if old, ok := s.summaries[st.TraceID]; ok {
			old.EventCount++
			old.LastLogSeq = st.LastLogSeq
		} else {
			row := *st
			s.summaries[st.TraceID] = &row
		}
	}
	if f := c.FinishSummary; f != nil {
		if row, ok := s.summaries[f.TraceID]; ok {
			outcome, at := f.Outcome, f.FinishedAt
			row.Outcome, row.FinishedAt = &outcome, &at
			row.EventCount++
			row.LastLogSeq = f.LogSeq
		}
	}
	if pe := c.PolicyEval; pe != nil {
		if _, ok := s.policyEvals[pe.IndexID]; !ok {
			s.policyEvals[pe.IndexID] = *pe
		}
	}
	if ps := c.Precedents; ps != nil {
		for _, id := range s.precByTrace[ps.TraceID] {
			delete(s.precedents, id)
		}
		ids := make([]string, 0, len(ps.Rows))
		for _, r := range ps.Rows {
			s.precedents[r.SourceEventID] = r
			ids = append(ids, r.SourceEventID)
		}
		s.precByTrace[ps.TraceID] = ids
	}
}

// Tables returns copies of the digested rows (unsorted).
func (s *MemStore) Tables() *Tables {
	t := &Tables{
		Nodes: make([]Node, 0, len(s.nodes)), Edges: make([]Edge, 0, len(s.edges)),
		Summaries: make([]Summary, 0, len(s.summaries)), Precedents: make([]Precedent, 0, len(s.precedents)),
	}
	for _, n := range s.nodes {
		t.Nodes = append(t.Nodes, n)
	}
	for _, e := range s.edges {
		t.Edges = append(t.Edges, e)
	}
	for _, r := range s.summaries {
		t.Summaries = append(t.Summaries, *r)
	}
	for _, p := range s.precedents {
		t.Precedents = append(t.Precedents, p)
	}
	return t
}

// PolicyEvals returns the policy-eval index rows (not digested).
func (s *MemStore) PolicyEvals() []PolicyEval {
	out := make([]PolicyEval, 0, len(s.policyEvals))
	for _, p := range s.policyEvals {
		out = append(out, p)
	}
	return out
}

// Summary returns the summary row of a trace.
func (s *MemStore) Summary(traceID string) (Summary, bool) {
	r, ok := s.summaries[traceID]
	if !ok {
		return Summary{}, false
	}
	return *r, true
}

// traceMemory keeps, for each open trace, the events its precedent rows
// will be built from, so a sequential projection never has to re-read the
// log. A finished trace is forgotten.
type traceMemory map[string][]event.StoredEvent

func (m traceMemory) note(ev *event.StoredEvent) {
	switch ev.EventType {
	case event.TypeTraceStarted, event.TypePolicyEvaluated, event.TypeExceptionRequested:
		m[ev.TraceID] = append(m[ev.TraceID], *ev)
	case event.TypeTraceFinished:
		delete(m, ev.TraceID)
	}
}

func (m traceMemory) events(traceID string) ([]event.StoredEvent, error) { return m[traceID], nil }

// Memory projects a log held in memory: the offline `dg events digest`
// path and the reference the Postgres store is tested against.
type Memory struct {
	proj   *Projector
	rows   *MemStore
	traces traceMemory
	cursor int64
	// ownLog is set when every event projected comes from a MemLog
	// private to this Memory's user (DigestOffline), which computed each
	// PayloadHash a moment before from the canonical text of the payload
	// it stores (that payload, or that text read back): the payload hash
	// is then not computed a second time.
	ownLog bool
}

// NewMemory returns an empty in-memory projection of all three projections.
func NewMemory() *Memory {
	return &Memory{proj: NewProjector(SetAll), rows: NewMemStore(), traces: traceMemory{}}
}

// newMemoryFor is NewMemory with tables sized for a log of about n events.
func newMemoryFor(n int) *Memory {
	rows := &MemStore{
		nodes: make(map[string]Node, n), edges: make(map[string]Edge, n), summaries: make(map[string]*Summary, n/8),
		policyEvals: make(map[string]PolicyEval, n/8), precedents: make(map[string]Precedent, n/4), precByTrace: make(map[string][]string, n/8),
	}
	return &Memory{proj: &Projector{set: SetAll, next: make(map[string]int64, n/8)}, rows: rows, traces: traceMemory{}}
}

// Project applies events in log_seq order. It stops at the first event that
// fails and returns a *StepError; the cursor then stays on the event before
// it. Events at or below the cursor are refused, so a catch-up split at any
// point gives the same result as one pass.
//
// The payload hashes Step checks, and the rule output of every event whose
// rules do not read its trace's earlier events, are computed on every core
// ahead of the sequential steps, which still check and apply one event at a
// time in log_seq order; the result and the first error are those of a
// plain loop over Step.
func (m *Memory) Project(events []*event.StoredEvent) error {
	pre := make([]early, len(events))
	set, own := m.proj.set, m.ownLog
	run := startChunks(len(events), func(i int) { computeEarly(&pre[i], events[i], set, own) })
	defer run.stop()
	for i, ev := range events {
		run.wait(i)
		if ev.LogSeq <= m.cursor {
			return fmt.Errorf("event %s has log_seq %d, not after the cursor %d: give events in log_seq order", ev.EventID, ev.LogSeq, m.cursor)
		}
		e := &pre[i]
		ch, err := m.proj.stepHashed(ev, m.traces.events, e.hash, e.hashErr, e)
		*e = early{}
		if err != nil {
			return err
		}
		m.rows.Apply(&ch)
		m.traces.note(ev)
		m.cursor = ev.LogSeq
	}
	return nil
}

// chunkRun computes fn(i) for i in [0, n) on every core, in chunks taken in
// index order, so a sequential consumer can start on the first indexes
// while later ones are still being computed.
type chunkRun struct {
	n, size int
	done    []chan struct{}
	next    atomic.Int64
	halt    atomic.Bool
	wg      sync.WaitGroup
}

const chunkSize = 64

func startChunks(n int, fn func(i int)) *chunkRun {
	r := &chunkRun{n: n, size: chunkSize}
	chunks := (n + r.size - 1) / r.size
	r.done = make([]chan struct{}, chunks)
	for i := range r.done {
		r.done[i] = make(chan struct{})
	}
	workers := min(runtime.GOMAXPROCS(0), chunks)
	r.wg.Add(workers)
	for range workers {
		go func() {
			defer r.wg.Done()
			for !r.halt.Load() {
				c := int(r.next.Add(1) - 1)
				if c >= chunks {
					return
				}
				for i := c * r.size; i < min((c+1)*r.size, n); i++ {
					fn(i)
				}
				close(r.done[c])
			}
		}()
	}
	return r
}

// wait blocks until fn(i) has run.
func (r *chunkRun) wait(i int) { <-r.done[i/r.size] }

// stop ends the workers once their current chunk is done and waits for
// them.
func (r *chunkRun) stop() {
	r.halt.Store(true)
	r.wg.Wait()
}

// Cursor is the log_seq of the last projected event (0 before any).
func (m *Memory) Cursor() int64 { return m.cursor }

// Store returns the row store.
func (m *Memory) Store() *MemStore { return m.rows }

// Digests computes the four digests of the current rows.
func (m *Memory) Digests() Digests { return m.rows.Tables().Digest() }
