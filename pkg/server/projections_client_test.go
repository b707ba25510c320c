package server_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/client"
	"github.com/decisiongraph/dg/pkg/server"
)

// TestClientProjectionRoutes drives the projection and replay routes with
// pkg/client over HTTP.
func TestClientProjectionRoutes(t *testing.T) {
	e := newProjEnv(t, server.ReplayOptions{AllowRebuild: true})
	ids := e.seedTraces(2)
	e.catchUp()
	hs := httptest.NewServer(e.h)
	defer hs.Close()
	ctx := context.Background()
	c := client.New(hs.URL, adminToken, tenantA)

	depth := 2
	g, err := c.ContextSubgraph(ctx, client.SubgraphQuery{NodeType: "trace", NodeID: ids[0], MaxDepth: &depth, EdgeTypes: nil})
	if err != nil || len(g["nodes"].([]any)) == 0 {
		t.Fatalf("subgraph: %v %v", g, err)
	}
	var all []string
	var cur *client.EdgeCursor
	for i := 0; i < 100; i++ {
		page, err := c.NodeEdges(ctx, "trace", ids[0], "", 1, cur)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Edges {
			all = append(all, e["edge_id"].(string))
		}
		if cur = page.NextCursor; cur == nil {
			break
		}
	}
	if len(all) == 0 {
		t.Fatal("no edges")
	}
	outcome := "approved"
	hits, err := c.FindPrecedents(ctx, client.PrecedentQuery{Outcome: &outcome, Limit: 10})
	if err != nil || len(hits) != 2 {
		t.Fatalf("precedents: %v %v", hits, err)
	}
	empty := ""
	if hits, err := c.FindPrecedents(ctx, client.PrecedentQuery{Outcome: &empty}); err != nil || len(hits) != 0 {
		t.Fatalf("empty outcome: %v %v", hits, err)
	}
	if h, err := c.ProjectionHealth(ctx); err != nil || h["tenant_id"] != tenantA {
		t.Fatalf("health: %v %v", h, err)
	}
	run, err := c.StartReplay(ctx, client.ReplayRequest{Projection: "all", Reason: "client test"})
	if err != nil || run["status"] != "queued" {
		t.Fatalf("start: %v %v", run, err)
	}
	id := run["job_id"].(string)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		run, err = c.ReplayStatus(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if run["status"] == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job: %v", run)
		}
	}
	if _, err := c.CancelReplay(ctx, id); client.CodeOf(err) != "not_found" {
		t.Fatalf("cancel a finished job: %v", err)
	}
	if _, err := c.StartReplay(ctx, client.ReplayRequest{Projection: "nope", Reason: "x"}); client.CodeOf(err) != "invalid_argument" {
		t.Fatalf("unknown projection: %v", err)
	}
}
