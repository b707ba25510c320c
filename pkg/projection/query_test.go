package projection_test

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
)

func TestQueriesOnSupportFixture(t *testing.T) {
	st := newStore(t)
	appendPG(t, st, "default", readEnvelopes(t, filepath.Join(goldenScenarios(t)["support"], "events.json")))
	pg := projection.NewPG(st, 0)
	catchUpAll(t, pg, "default", 0)
	ctx := ctxT(t)
	const tr = "cccccccc-cccc-cccc-cccc-cccccccccccc"

	s, err := pg.TraceSummary(ctx, "default", tr)
	if err != nil || s.EventCount != 2 || s.LastLogSeq != 8 {
		t.Fatalf("summary %+v, %v", s, err)
	}
	if _, err := pg.TraceSummary(ctx, "default", "nope"); !isCode(err, event.CodeNotFound) {
		t.Errorf("unknown trace: %v", err)
	}

	g, err := pg.ContextSubgraph(ctx, "default", projection.SubgraphQuery{NodeType: "trace", NodeID: tr, DefaultDepth: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Nodes) != 7 || len(g.Edges) != 7 || g.Truncated {
		t.Errorf("depth 1: %d nodes, %d edges, truncated %v", len(g.Nodes), len(g.Edges), g.Truncated)
	}
	if !sort.SliceIsSorted(g.Nodes, func(i, j int) bool { return g.Nodes[i].NodeID < g.Nodes[j].NodeID }) {
		t.Error("nodes not in node_id order")
	}
	g, _ = pg.ContextSubgraph(ctx, "default", projection.SubgraphQuery{NodeType: "trace", NodeID: tr})
	if len(g.Nodes) != 1 || len(g.Edges) != 0 {
		t.Errorf("depth 0: %+v", g)
	}
	g, _ = pg.ContextSubgraph(ctx, "default", projection.SubgraphQuery{NodeType: "trace", NodeID: tr, MaxDepth: 2, NodeTypes: []string{"input"}})
	if len(g.Nodes) != 4 || len(g.Edges) != 7 {
		t.Errorf("node type filter: %d nodes, %d edges", len(g.Nodes), len(g.Edges))
	}
	g, _ = pg.ContextSubgraph(ctx, "default", projection.SubgraphQuery{NodeType: "trace", NodeID: tr, MaxDepth: 1, MaxEdges: 3})
	if len(g.Edges) != 3 || !g.Truncated {
		t.Errorf("max_edges 3: %d edges, truncated %v", len(g.Edges), g.Truncated)
	}
	if _, err := pg.ContextSubgraph(ctx, "default", projection.SubgraphQuery{NodeType: "trace", NodeID: tr, MaxDepth: 11}); !isCode(err, event.CodeInvalidArgument) {
		t.Errorf("depth 11: %v", err)
	}

	full, err := pg.NodeEdges(ctx, "default", "trace:"+tr, "both", nil, 100)
	if err != nil || len(full.Edges) != 7 || full.NextCursor != nil {
		t.Fatalf("all edges: %+v %v", full, err)
	}
	var paged []projection.Edge
	var cur *projection.EdgeCursor
	for {
		p, err := pg.NodeEdges(ctx, "default", "trace:"+tr, "both", cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, p.Edges...)
		if p.NextCursor == nil {
			break
		}
		cur = p.NextCursor
		cur.LogSeq = nil // resolved from the edge row
	}
	if len(paged) != 7 {
		t.Fatalf("paged %d edges", len(paged))
	}
	for i := range paged {
		if paged[i].EdgeID != full.Edges[i].EdgeID {
			t.Errorf("page order differs at %d", i)
		}
	}
	if _, err := pg.NodeEdges(ctx, "default", "trace:"+tr, "outgoing", &projection.EdgeCursor{EdgeID: "x", Direction: "both"}, 2); !isCode(err, event.CodeInvalidArgument) {
		t.Errorf("cursor of another direction: %v", err)
	}

	hits, err := pg.FindPrecedents(ctx, "default", projection.PrecedentQuery{PolicyID: "escalation_criteria"})
	if err != nil || len(hits) != 1 || *hits[0].PolicyVersion != "2.1" || hits[0].TraceID != tr {
		t.Errorf("precedents %+v %v", hits, err)
	}

	// A new event makes every projection-backed read refuse until caught up.
	appendPG(t, st, "default", newTrace("later").start("a1").evs)
	for name, err := range map[string]error{
		"summary":    second(pg.TraceSummary(ctx, "default", tr)),
		"subgraph":   second(pg.ContextSubgraph(ctx, "default", projection.SubgraphQuery{NodeType: "trace", NodeID: tr})),
		"edges":      second(pg.NodeEdges(ctx, "default", "trace:"+tr, "both", nil, 10)),
		"precedents": second(pg.FindPrecedents(ctx, "default", projection.PrecedentQuery{})),
	} {
		if !isCode(err, event.CodeProjectionOutOfDate) {
			t.Errorf("%s while behind: %v", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func isCode(err error, c event.Code) bool {
	code, ok := event.CodeOf(err)
	return ok && code == c
}

// referencePrecedents is §13.6 computed in Go over in-memory tables.
func referencePrecedents(tb *projection.Tables, q projection.PrecedentQuery) []string {
	type hit struct {
		trace string
		seq   int64
	}
	var hits []hit
	for _, s := range tb.Summaries {
		if s.Outcome == nil || (q.Outcome != "" && *s.Outcome != q.Outcome) ||
			(q.EntityType != "" && (s.PrimaryEntityType == nil || *s.PrimaryEntityType != q.EntityType)) ||
			(q.EntityID != "" && (s.PrimaryEntityID == nil || *s.PrimaryEntityID != q.EntityID)) {
			continue
		}
		if q.PolicyID != "" {
			found := false
			for _, p := range tb.Precedents {
				if p.TraceID == s.TraceID && p.PolicyID == q.PolicyID && (q.PolicyVersion == "" || p.PolicyVersion == q.PolicyVersion) {
					found = true
				}
			}
			if !found {
				continue
			}
		}
		hits = append(hits, hit{s.TraceID, s.LastLogSeq})
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].seq != hits[j].seq {
			return hits[i].seq > hits[j].seq
		}
		return hits[i].trace < hits[j].trace
	})
	out := []string{}
	for i, h := range hits {
		if i == q.Limit {
			break
		}
		out = append(out, h.trace)
	}
	return out
}

func TestFindPrecedentsMatchesReference(t *testing.T) {
	envs := projection.Synthetic(projection.SynthOptions{Seed: 5, Traces: 80})
	st := newStore(t)
	appendPG(t, st, "default", envs)
	pg := projection.NewPG(st, 0)
	catchUpAll(t, pg, "default", 0)
	tb := projectMemory(t, appendAll(t, "default", envs), "default").Store().Tables()
	for _, q := range []projection.PrecedentQuery{
		{Limit: 100}, {Limit: 5}, {PolicyID: "policy_3", Limit: 100}, {PolicyID: "policy_3", PolicyVersion: "2.0", Limit: 100},
		{Outcome: "failure", Limit: 100}, {EntityType: "account", EntityID: "acct:3", Limit: 100}, {PolicyID: "policy_1", Outcome: "success", Limit: 3},
		{PolicyID: "policy_3", PolicyVersion: "2.0", Limit: 1}, {PolicyID: "policy_2", Limit: 2}, {PolicyID: "policy_9", Outcome: "abandoned", Limit: 1},
	} {
		hits, err := pg.FindPrecedents(ctxT(t), "default", q)
		if err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, h := range hits {
			got = append(got, h.TraceID)
			if q.PolicyID != "" && (h.PolicyID == nil || *h.PolicyID != q.PolicyID) {
				t.Errorf("%+v: hit %+v carries another policy", q, h)
			}
		}
		want := referencePrecedents(tb, q)
		if len(want) == 0 {
			t.Errorf("%+v matches nothing: the generated log must exercise it", q)
		}
		if len(got) != len(want) {
			t.Errorf("%+v: %d hits, want %d", q, len(got), len(want))
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%+v: hit %d is %s, want %s", q, i, got[i], want[i])
			}
		}
	}
}

// referenceSubgraph is §13.4 computed in Go over in-memory tables.
func referenceSubgraph(tb *projection.Tables, q projection.SubgraphQuery) (nodes, edges []string, truncated bool) {
	all := append([]projection.Edge(nil), tb.Edges...)
	sort.Slice(all, func(i, j int) bool { return all[i].EdgeID < all[j].EdgeID })
	exists := map[string]bool{}
	for _, n := range tb.Nodes {
		exists[n.NodeID] = true
	}
	etypes, ntypes := map[string]bool{}, map[string]bool{}
	for _, t := range q.EdgeTypes {
		etypes[t] = true
	}
	for _, t := range q.NodeTypes {
		ntypes[t] = true
	}
	center := q.NodeType + ":" + q.NodeID
	vn, ve := map[string]bool{center: true}, map[string]bool{}
	frontier := map[string]bool{center: true}
	for depth := 0; len(frontier) > 0 && !truncated && depth < q.MaxDepth; depth++ {
		next := map[string]bool{}
	level:
		for _, e := range all {
			if !(frontier[e.FromNodeID] || frontier[e.ToNodeID]) || (len(etypes) > 0 && !etypes[e.EdgeType]) || ve[e.EdgeID] {
				continue
			}
			if len(ve) >= q.MaxEdges {
				truncated = true
				break
			}
			ve[e.EdgeID] = true
			edges = append(edges, e.EdgeID)
			for _, end := range []string{e.FromNodeID, e.ToNodeID} {
				if vn[end] {
					continue
				}
				if typ, _, _ := strings.Cut(end, ":"); len(ntypes) > 0 && !ntypes[typ] {
					continue
				}
				if len(vn) >= q.MaxNodes {
					truncated = true
					break level
				}
				vn[end] = true
				next[end] = true
			}
		}
		frontier = next
	}
	for n := range vn {
		if exists[n] {
			nodes = append(nodes, n)
		}
	}
	sort.Strings(nodes)
	sort.Strings(edges)
	return nodes, edges, truncated
}

func TestContextSubgraphMatchesReference(t *testing.T) {
	envs := projection.Synthetic(projection.SynthOptions{Seed: 11, Traces: 120})
	st := newStore(t)
	appendPG(t, st, "default", envs)
	pg := projection.NewPG(st, 0)
	catchUpAll(t, pg, "default", 0)
	tb := projectMemory(t, appendAll(t, "default", envs), "default").Store().Tables()
	truncations := 0
	for _, q := range []projection.SubgraphQuery{
		{NodeType: "trace", NodeID: "00000005-0000-4000-8000-000000000005", MaxDepth: 2, MaxNodes: 100, MaxEdges: 500},
		{NodeType: "trace", NodeID: "00000007-0000-4000-8000-000000000007", MaxDepth: 3, MaxNodes: 100, MaxEdges: 20},
		{NodeType: "trace", NodeID: "00000009-0000-4000-8000-000000000009", MaxDepth: 2, MaxNodes: 5, MaxEdges: 500},
		{NodeType: "policy", NodeID: "policy_3:1.0", MaxDepth: 2, MaxNodes: 100, MaxEdges: 500},
		{NodeType: "policy", NodeID: "policy_3:1.0", MaxDepth: 2, MaxNodes: 1000, MaxEdges: 30},
		{NodeType: "trace", NodeID: "00000011-0000-4000-8000-000000000011", MaxDepth: 4, MaxNodes: 100, MaxEdges: 500, EdgeTypes: []string{"trace_evaluated_policy", "trace_involves_entity"}},
		{NodeType: "trace", NodeID: "0000000c-0000-4000-8000-00000000000c", MaxDepth: 3, MaxNodes: 100, MaxEdges: 500, NodeTypes: []string{"trace", "entity"}},
		// Levels read in several chunks: few nodes allowed, but many edges
		// whose ends are filtered out or already visited add none.
		{NodeType: "trace", NodeID: "0000000c-0000-4000-8000-00000000000c", MaxDepth: 3, MaxNodes: 9, MaxEdges: 500, NodeTypes: []string{"trace", "entity"}},
		{NodeType: "trace", NodeID: "0000000c-0000-4000-8000-00000000000c", MaxDepth: 3, MaxNodes: 8, MaxEdges: 500, NodeTypes: []string{"trace", "entity"}},
		{NodeType: "trace", NodeID: "0000000c-0000-4000-8000-00000000000c", MaxDepth: 4, MaxNodes: 2, MaxEdges: 500, NodeTypes: []string{"trace", "entity"}},
		{NodeType: "trace", NodeID: "0000000c-0000-4000-8000-00000000000c", MaxDepth: 3, MaxNodes: 9, MaxEdges: 30, NodeTypes: []string{"trace", "entity"}},
		{NodeType: "policy", NodeID: "policy_3:1.0", MaxDepth: 3, MaxNodes: 10, MaxEdges: 500, NodeTypes: []string{"trace", "policy"}},
	} {
		g, err := pg.ContextSubgraph(ctxT(t), "default", q)
		if err != nil {
			t.Fatal(err)
		}
		wantNodes, wantEdges, wantTrunc := referenceSubgraph(tb, q)
		var gotNodes, gotEdges []string
		for _, n := range g.Nodes {
			gotNodes = append(gotNodes, n.NodeID)
		}
		for _, e := range g.Edges {
			gotEdges = append(gotEdges, e.EdgeID)
		}
		if strings.Join(gotNodes, "\n") != strings.Join(wantNodes, "\n") || strings.Join(gotEdges, "\n") != strings.Join(wantEdges, "\n") || g.Truncated != wantTrunc {
			t.Errorf("%+v: got %d nodes, %d edges, truncated %v; want %d, %d, %v", q, len(gotNodes), len(gotEdges), g.Truncated, len(wantNodes), len(wantEdges), wantTrunc)
		}
		if len(wantEdges) == 0 {
			t.Errorf("%+v: the reference finds no edges; pick a center that exists", q)
		}
		if wantTrunc {
			truncations++
		}
		t.Logf("%s:%s depth %d: %d nodes, %d edges, truncated %v", q.NodeType, q.NodeID, q.MaxDepth, len(wantNodes), len(wantEdges), wantTrunc)
	}
	if truncations < 2 {
		t.Errorf("only %d queries truncate; the test must exercise max_nodes and max_edges", truncations)
	}
}
