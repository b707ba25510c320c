package server_test

import (
	"context"
	"testing"

	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/server"
)

// TestTraceWithProjectedSummary wires the projections' trace-summary query
// into the trace route: 409 projection_out_of_date while trace_summary is
// behind the log, then the §10.2 summary (with the entity system from the
// TraceStarted event), and 404 for an unknown trace.
func TestTraceWithProjectedSummary(t *testing.T) {
	var summary func(ctx context.Context, tenant, traceID string) (any, error)
	e := newAPIEnv(t, func(c *server.APIConfig) {
		c.TraceSummary = func(ctx context.Context, tenant, traceID string) (any, error) { return summary(ctx, tenant, traceID) }
	})
	pg := projection.NewPG(e.store, 0)
	summary = server.TraceSummaryFrom(pg)

	tr := newTraceID("summary")
	if rec := e.append(traceStarted(tr)); rec.Code != 201 {
		t.Fatalf("append: %d %s", rec.Code, rec.Body)
	}
	get := func(id string) (int, string, map[string]any) {
		rec := e.do(req{method: "GET", path: "/api/v1/traces/" + id, token: readerToken, tenant: tenantA})
		data, code, _ := envelope(t, rec)
		return rec.Code, code, data
	}
	if st, code, _ := get(tr); st != 409 || code != "projection_out_of_date" {
		t.Fatalf("before catch-up: %d %q", st, code)
	}
	c, err := pg.NewCatcher(tenantA, projection.TraceSummary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CatchUp(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	st, _, data := get(tr)
	if st != 200 {
		t.Fatalf("after catch-up: %d", st)
	}
	s := data["summary"].(map[string]any)
	want := map[string]any{"trace_id": tr, "workflow": "api_test", "title": "API test trace", "primary_entity_type": "ticket",
		"primary_entity_id": "T-1", "primary_entity_system": "tests", "outcome": nil, "finished_at": nil, "started_at": "2026-01-02T03:04:05Z"}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("summary[%s] = %v, want %v", k, s[k], v)
		}
	}
	for _, k := range []string{"event_count", "last_log_seq"} {
		if _, ok := s[k]; !ok {
			t.Errorf("summary lacks %s: %v", k, s)
		}
	}
	if st, code, _ := get("no-such-trace"); st != 404 || code != "not_found" {
		t.Fatalf("unknown trace: %d %q", st, code)
	}
}
