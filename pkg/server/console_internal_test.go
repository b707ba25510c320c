package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/projection"
)

func TestDigestAlignment(t *testing.T) {
	h := &health{Rows: []healthRow{
		{ScopeStatus: projection.ScopeStatus{Projection: "context_graph", DigestLogSeq: 10}},
		{ScopeStatus: projection.ScopeStatus{Projection: "trace_summary", DigestLogSeq: 10}},
		{ScopeStatus: projection.ScopeStatus{Projection: "precedent_index", DigestLogSeq: 10}},
		{ScopeStatus: projection.ScopeStatus{Projection: "other", DigestLogSeq: 10}},
	}}
	runs := []run{ // newest first
		{Projection: "context_graph", Status: "completed", LastLogSeq: 10},
		{Projection: "trace_summary", Status: "failed", LastLogSeq: 12},
		{Projection: "trace_summary", Status: "completed", LastLogSeq: 8},
		{Projection: "precedent_index", Status: "completed", LastLogSeq: 12},
		{Projection: "all", Status: "completed", LastLogSeq: 10},
	}
	want := []string{"aligned", "newer than last replay", "needs review", "no completed replay"}
	for k, a := range alignments(h, runs) {
		if a.State != want[k] {
			t.Errorf("%s: %s, want %s", a.Projection, a.State, want[k])
		}
	}
}

func TestGraphLayoutIsStableAndInside(t *testing.T) {
	sg := &projection.Subgraph{
		Nodes: []projection.Node{{NodeID: "trace:t", NodeType: "trace"}, {NodeID: "policy:p", NodeType: "policy"},
			{NodeID: "entity:e", NodeType: "entity"}, {NodeID: "input:i", NodeType: "input"}},
		Edges: []projection.Edge{{EdgeID: "1", FromNodeID: "trace:t", ToNodeID: "policy:p"}, {EdgeID: "2", FromNodeID: "policy:p", ToNodeID: "input:i"},
			{EdgeID: "3", FromNodeID: "trace:t", ToNodeID: "entity:e"}},
	}
	a, b := layoutGraph("trace:t", sg), layoutGraph("trace:t", sg)
	if len(a.Nodes) != 4 || len(a.Edges) != 3 {
		t.Fatalf("layout: %+v", a)
	}
	for k, n := range a.Nodes {
		if n != b.Nodes[k] {
			t.Fatal("layout is not deterministic")
		}
		if n.X < 0 || n.Y < 0 || n.X > a.Width || n.Y > a.Height {
			t.Fatalf("node %s outside the drawing: %d,%d", n.ID, n.X, n.Y)
		}
		if n.ID == "trace:t" && (!n.Center || n.X != a.Width/2 || n.Y != a.Height/2) {
			t.Fatalf("center node: %+v", n)
		}
	}
	if g := layoutGraph("trace:x", &projection.Subgraph{}); len(g.Nodes) != 0 {
		t.Fatal("empty subgraph drew nodes")
	}
}

func TestPagePanicRendersAnErrorPage(t *testing.T) {
	s := New(Config{})
	set := auth.DevSet()
	c := registerConsole(s, &ConsoleConfig{Accounts: auth.NewRegistry(set), Env: "dev", Tenants: []string{"default"}})
	w := httptest.NewRecorder()
	c.keys.startSession(w, httptest.NewRequest(http.MethodPost, "/", nil), set.Account("dev-admin"), "dev", time.Now())
	r := httptest.NewRequest(http.MethodGet, "/console/boom?tenant=default", nil)
	for _, ck := range w.Result().Cookies() {
		r.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	c.pageT("overview", "overview", func(*http.Request, *viewer) (string, any, int) { panic("bug") })(rec, r)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "This page failed") ||
		!strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("panic page: %d %s", rec.Code, rec.Body.String())
	}
}
