package projection

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/decisiongraph/dg/pkg/event"
)

// Digests are the four projection digests (events spec §9.3-9.6), each
// "sha256:" + 64 lowercase hex digits.
type Digests struct {
	ContextGraph   string `json:"context_graph"`
	TraceSummary   string `json:"trace_summary"`
	PrecedentIndex string `json:"precedent_index"`
	FullProjection string `json:"full_projection"`
}

// Lines renders the digests as expected_digest.txt does: one
// "key:sha256:..." line per digest, keys in alphabetical order.
func (d Digests) Lines() string {
	return ContextGraph + ":" + d.ContextGraph + "\n" +
		FullProjection + ":" + d.FullProjection + "\n" +
		PrecedentIndex + ":" + d.PrecedentIndex + "\n" +
		TraceSummary + ":" + d.TraceSummary + "\n"
}

// Of returns the digest of the named projection ("" for an unknown name).
func (d Digests) Of(name string) string {
	switch name {
	case ContextGraph:
		return d.ContextGraph
	case TraceSummary:
		return d.TraceSummary
	case PrecedentIndex:
		return d.PrecedentIndex
	case FullProjection:
		return d.FullProjection
	}
	return ""
}

// Tables holds every digested row of one tenant's projections. Digest
// sorts the slices in place.
type Tables struct {
	Nodes      []Node
	Edges      []Edge
	Summaries  []Summary
	Precedents []Precedent
}

// Sort orders every slice by its key in code-point order, as digests need.
// Database collation is never relied on.
func (t *Tables) Sort() {
	t.sortGraph()
	t.sortSummaries()
	t.sortPrecedents()
}

// Keys are unique in each table, so the unstable sorts give one order.
func (t *Tables) sortGraph() {
	slices.SortFunc(t.Nodes, func(a, b Node) int { return strings.Compare(a.NodeID, b.NodeID) })
	slices.SortFunc(t.Edges, func(a, b Edge) int { return strings.Compare(a.EdgeID, b.EdgeID) })
}

func (t *Tables) sortSummaries() {
	slices.SortFunc(t.Summaries, func(a, b Summary) int { return strings.Compare(a.TraceID, b.TraceID) })
}

func (t *Tables) sortPrecedents() {
	slices.SortFunc(t.Precedents, func(a, b Precedent) int { return strings.Compare(a.SourceEventID, b.SourceEventID) })
}

// Digest sorts the tables and computes the four digests. The three
// projections are sorted and hashed concurrently (they share no rows).
func (t *Tables) Digest() Digests {
	var d Digests
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		d.ContextGraph = t.graphDigest()
	}()
	go func() {
		defer wg.Done()
		t.sortSummaries()
		d.TraceSummary = listDigest(len(t.Summaries), func(b []byte, i int) []byte { return AppendSummaryJSON(b, &t.Summaries[i]) })
	}()
	t.sortPrecedents()
	d.PrecedentIndex = listDigest(len(t.Precedents), func(b []byte, i int) []byte { return AppendPrecedentJSON(b, &t.Precedents[i]) })
	wg.Wait()
	d.FullProjection = FullDigest(d.ContextGraph, d.TraceSummary, d.PrecedentIndex)
	return d
}

// FullDigest combines the three projection digests (events spec §9.6).
func FullDigest(graph, summary, precedent string) string {
	sum := sha256.Sum256([]byte(graph + ":" + summary + ":" + precedent))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// streamHash feeds digest JSON into SHA-256 through a reused buffer so large
// tables never have to be held as one string.
type streamHash struct {
	h   hash.Hash
	buf []byte
}

func newStreamHash() *streamHash { return &streamHash{h: sha256.New(), buf: make([]byte, 0, 64<<10)} }

func (s *streamHash) flushIfFull() {
	if len(s.buf) >= 60<<10 {
		s.h.Write(s.buf)
		s.buf = s.buf[:0]
	}
}

func (s *streamHash) sum() string {
	s.h.Write(s.buf)
	return "sha256:" + hex.EncodeToString(s.h.Sum(nil))
}

// graphDigest sorts the graph and computes its digest (graphDigestSorted);
// a large graph is sorted and rendered on two cores.
func (t *Tables) graphDigest() string {
	if len(t.Nodes)+len(t.Edges) < 4096 {
		t.sortGraph()
		return graphDigestSorted(t.Nodes, t.Edges)
	}
	// The edges, the larger table, are split in two: each half is sorted
	// on a core of its own, the halves are merged in place, and the two
	// halves of the merged order are rendered concurrently; the nodes are
	// sorted and rendered beside them. The bytes hashed are exactly
	// graphDigestSorted's.
	edgeCmp := func(a, b Edge) int { return strings.Compare(a.EdgeID, b.EdgeID) }
	mid := len(t.Edges) / 2
	lo, hi := t.Edges[:mid], t.Edges[mid:]
	var nodesJSON []byte
	var hiJSON [][]byte // rendered in 64 KiB pieces: no regrowing
	hiSorted := make(chan struct{})
	merged := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		slices.SortFunc(hi, edgeCmp)
		close(hiSorted)
		slices.SortFunc(t.Nodes, func(a, b Node) int { return strings.Compare(a.NodeID, b.NodeID) })
		b := make([]byte, 0, len(t.Nodes)*160)
		for i := range t.Nodes {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendNodeJSON(b, &t.Nodes[i])
		}
		nodesJSON = b
		<-merged
		b = make([]byte, 0, 64<<10)
		for i := mid; i < len(t.Edges); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendEdgeJSON(b, &t.Edges[i])
			if len(b) >= 60<<10 {
				hiJSON = append(hiJSON, b)
				b = make([]byte, 0, 64<<10)
			}
		}
		hiJSON = append(hiJSON, b)
	}()
	slices.SortFunc(lo, edgeCmp)
	<-hiSorted
	mergeEdges(t.Edges, mid, edgeCmp)
	close(merged)
	s := newStreamHash()
	s.buf = append(s.buf, `{"edges":[`...)
	for i := range mid {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		s.buf = AppendEdgeJSON(s.buf, &t.Edges[i])
		s.flushIfFull()
	}
	s.h.Write(s.buf)
	s.buf = s.buf[:0]
	<-done
	for _, b := range hiJSON {
		s.h.Write(b)
	}
	s.buf = append(s.buf, `],"nodes":[`...)
	s.h.Write(s.buf)
	s.buf = s.buf[:0]
	s.h.Write(nodesJSON)
	s.buf = append(s.buf, "]}"...)
	return s.sum()
}

// mergeEdges merges the sorted runs es[:mid] and es[mid:] into one sorted
// run in place (through a copy of the first run).
func mergeEdges(es []Edge, mid int, cmp func(a, b Edge) int) {
	if mid == 0 || mid == len(es) || cmp(es[mid-1], es[mid]) <= 0 {
		return
	}
	left := slices.Clone(es[:mid])
	i, j, k := 0, mid, 0
	for i < len(left) && j < len(es) {
		if cmp(es[j], left[i]) < 0 {
			es[k] = es[j]
			j++
		} else {
			es[k] = left[i]
			i++
		}
		k++
	}
	copy(es[k:], left[i:]) // what is left of es[j:] is already in place
}

func graphDigestSorted(nodes []Node, edges []Edge) string {
	s := newStreamHash()
	s.buf = append(s.buf, `{"edges":[`...)
	for i := range edges {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		s.buf = AppendEdgeJSON(s.buf, &edges[i])
		s.flushIfFull()
	}
	s.buf = append(s.buf, `],"nodes":[`...)
	for i := range nodes {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		s.buf = AppendNodeJSON(s.buf, &nodes[i])
		s.flushIfFull()
	}
	s.buf = append(s.buf, "]}"...)
	return s.sum()
}

func listDigest(n int, row func([]byte, int) []byte) string {
	s := newStreamHash()
	s.buf = append(s.buf, '[')
	for i := 0; i < n; i++ {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		s.buf = row(s.buf, i)
		s.flushIfFull()
	}
	s.buf = append(s.buf, ']')
	return s.sum()
}

func appendKey(b []byte, first bool, key string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendOpt(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return event.AppendDigestString(b, *s)
}

// AppendNodeJSON appends a node's digest object (keys sorted, attrs {}).
func AppendNodeJSON(b []byte, n *Node) []byte {
	b = append(b, `{"attrs":{}`...)
	b = appendKey(b, false, "created_at")
	b = event.AppendDigestString(b, n.CreatedAt)
	b = appendKey(b, false, "log_seq")
	b = strconv.AppendInt(b, n.LogSeq, 10)
	b = appendKey(b, false, "node_id")
	b = event.AppendDigestString(b, n.NodeID)
	b = appendKey(b, false, "node_type")
	b = event.AppendDigestString(b, n.NodeType)
	b = appendKey(b, false, "trace_id")
	b = event.AppendDigestString(b, n.TraceID)
	return append(b, '}')
}

// AppendEdgeJSON appends an edge's digest object (keys sorted, attrs {}).
func AppendEdgeJSON(b []byte, e *Edge) []byte {
	b = append(b, `{"attrs":{}`...)
	b = appendKey(b, false, "created_at")
	b = event.AppendDigestString(b, e.CreatedAt)
	b = appendKey(b, false, "edge_id")
	b = event.AppendDigestString(b, e.EdgeID)
	b = appendKey(b, false, "edge_type")
	b = event.AppendDigestString(b, e.EdgeType)
	b = appendKey(b, false, "from_node_id")
	b = event.AppendDigestString(b, e.FromNodeID)
	b = appendKey(b, false, "log_seq")
	b = strconv.AppendInt(b, e.LogSeq, 10)
	b = appendKey(b, false, "to_node_id")
	b = event.AppendDigestString(b, e.ToNodeID)
	b = appendKey(b, false, "trace_id")
	b = event.AppendDigestString(b, e.TraceID)
	return append(b, '}')
}

// AppendSummaryJSON appends a trace summary's digest object.
func AppendSummaryJSON(b []byte, s *Summary) []byte {
	b = appendKey(append(b, '{'), true, "event_count")
	b = strconv.AppendInt(b, s.EventCount, 10)
	b = appendKey(b, false, "finished_at")
	b = appendOpt(b, s.FinishedAt)
	b = appendKey(b, false, "last_log_seq")
	b = strconv.AppendInt(b, s.LastLogSeq, 10)
	b = appendKey(b, false, "outcome")
	b = appendOpt(b, s.Outcome)
	b = appendKey(b, false, "primary_entity_id")
	b = appendOpt(b, s.PrimaryEntityID)
	b = appendKey(b, false, "primary_entity_type")
	b = appendOpt(b, s.PrimaryEntityType)
	b = appendKey(b, false, "started_at")
	b = event.AppendDigestString(b, s.StartedAt)
	b = appendKey(b, false, "title")
	b = event.AppendDigestString(b, s.Title)
	b = appendKey(b, false, "trace_id")
	b = event.AppendDigestString(b, s.TraceID)
	b = appendKey(b, false, "workflow")
	b = event.AppendDigestString(b, s.Workflow)
	return append(b, '}')
}

// AppendPrecedentJSON appends a precedent row's digest object.
func AppendPrecedentJSON(b []byte, p *Precedent) []byte {
	b = appendKey(append(b, '{'), true, "exception_id")
	b = appendOpt(b, p.ExceptionID)
	b = appendKey(b, false, "log_seq")
	b = strconv.AppendInt(b, p.LogSeq, 10)
	b = appendKey(b, false, "policy_id")
	b = event.AppendDigestString(b, p.PolicyID)
	b = appendKey(b, false, "policy_version")
	b = event.AppendDigestString(b, p.PolicyVersion)
	b = appendKey(b, false, "primary_entity_id")
	b = appendOpt(b, p.PrimaryEntityID)
	b = appendKey(b, false, "primary_entity_system")
	b = appendOpt(b, p.PrimaryEntitySystem)
	b = appendKey(b, false, "primary_entity_type")
	b = appendOpt(b, p.PrimaryEntityType)
	b = appendKey(b, false, "source_event_id")
	b = event.AppendDigestString(b, p.SourceEventID)
	b = appendKey(b, false, "trace_id")
	b = event.AppendDigestString(b, p.TraceID)
	return append(b, '}')
}

// FirstDifference names the first row (in digest order) where the live
// tables differ from the rebuilt ones for one projection, as text giving
// the kind of row and both digest-JSON rows, or "" when the rows are equal.
// It is how verify points at what diverged.
func FirstDifference(projection string, live, rebuilt *Tables) string {
	a, b := live, rebuilt
	a.Sort()
	b.Sort()
	switch projection {
	case ContextGraph:
		if d := firstDiff(len(a.Edges), len(b.Edges),
			func(i int) string { return string(AppendEdgeJSON(nil, &a.Edges[i])) },
			func(i int) string { return string(AppendEdgeJSON(nil, &b.Edges[i])) }); d != "" {
			return "edge " + d
		}
		if d := firstDiff(len(a.Nodes), len(b.Nodes),
			func(i int) string { return string(AppendNodeJSON(nil, &a.Nodes[i])) },
			func(i int) string { return string(AppendNodeJSON(nil, &b.Nodes[i])) }); d != "" {
			return "node " + d
		}
	case TraceSummary:
		if d := firstDiff(len(a.Summaries), len(b.Summaries),
			func(i int) string { return string(AppendSummaryJSON(nil, &a.Summaries[i])) },
			func(i int) string { return string(AppendSummaryJSON(nil, &b.Summaries[i])) }); d != "" {
			return "trace_summary " + d
		}
	case PrecedentIndex:
		if d := firstDiff(len(a.Precedents), len(b.Precedents),
			func(i int) string { return string(AppendPrecedentJSON(nil, &a.Precedents[i])) },
			func(i int) string { return string(AppendPrecedentJSON(nil, &b.Precedents[i])) }); d != "" {
			return "precedent " + d
		}
	}
	return ""
}

func firstDiff(na, nb int, ra, rb func(int) string) string {
	for i := 0; i < na || i < nb; i++ {
		switch {
		case i >= na:
			return "missing from live: " + rb(i)
		case i >= nb:
			return "not in the rebuild: " + ra(i)
		}
		if x, y := ra(i), rb(i); x != y {
			return "live " + x + " rebuilt " + y
		}
	}
	return ""
}
