package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/audit"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

// Extra accounts of the projection tests: an admin with only the replay
// permission, so the permission layer (§3.5) can refuse it a rebuild.
const replayOnlyToken = "admin-replay-only-token"

func projAccounts() *auth.Registry {
	tenants := []string{tenantA}
	return auth.NewRegistry(&auth.Set{Source: "test", Accounts: []*auth.Account{
		auth.NewAccount("reader-test", []string{auth.RoleReader}, nil, tenants, readerToken),
		auth.NewAccount("writer-test", []string{auth.RoleWriter}, []string{auth.PermWorkflowReview}, tenants, writerToken),
		auth.NewAccount("admin-test", []string{auth.RoleAdmin}, []string{"*"}, tenants, adminToken),
		auth.NewAccount("admin-replay-only", []string{auth.RoleAdmin}, []string{auth.PermProjectionReplay}, tenants, replayOnlyToken),
	}})
}

// projEnv is an API with the projection and replay routes on a fresh
// database (no live runtime: tests catch up explicitly).
type projEnv struct {
	*apiEnv
	pool    *pgxpool.Pool
	pg      *projection.PG
	replays *server.Replays
	audit   *audit.Log
}

func newProjEnv(t *testing.T, opts server.ReplayOptions) *projEnv {
	t.Helper()
	pool := pgtest.New(t)
	st, err := store.New(context.Background(), pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	pg := projection.NewPG(st, 0)
	rp := server.NewReplays(pool, pg, opts)
	t.Cleanup(rp.Close)
	logs := newSyncBuffer()
	lg := slog.New(slog.NewJSONHandler(logs, nil))
	al := audit.New(pool, lg)
	cfg := &server.APIConfig{Log: st, Accounts: projAccounts(), RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1},
		Audit: al, TraceSummary: server.TraceSummaryFrom(pg),
		Projections: &server.ProjectionsConfig{PG: pg, Pool: pool, Replays: rp}}
	srv := server.New(server.Config{Env: "dev", API: cfg, Logger: lg})
	return &projEnv{apiEnv: &apiEnv{t: t, store: st, srv: srv, h: srv.Handler(), logs: logs}, pool: pool, pg: pg, replays: rp, audit: al}
}

// catchUp brings every projection of tenantA to the head.
func (e *projEnv) catchUp() {
	e.t.Helper()
	for _, name := range projection.Names() {
		c, err := e.pg.NewCatcher(tenantA, name)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := c.CatchUp(context.Background(), 0); err != nil {
			e.t.Fatal(err)
		}
	}
}

// seedTraces appends n finished traces and returns their ids.
func (e *projEnv) seedTraces(n int) []string {
	e.t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		tr := newTraceID("proj")
		if rec := e.append(traceStarted(tr)); rec.Code != 201 {
			e.t.Fatalf("append: %d %s", rec.Code, rec.Body)
		}
		if rec := e.append(eventJSON(tr, 1, "TraceFinished", finishPayload(), nil)); rec.Code != 201 {
			e.t.Fatalf("finish: %d %s", rec.Code, rec.Body)
		}
		ids = append(ids, tr)
	}
	return ids
}

func (e *projEnv) get(path string, q url.Values) (int, string, map[string]any) {
	e.t.Helper()
	if q != nil {
		path += "?" + q.Encode()
	}
	rec := e.do(req{method: "GET", path: path, token: readerToken, tenant: tenantA})
	data, code, _ := envelope(e.t, rec)
	return rec.Code, code, data
}

// TestProjectionRoutesAuthMatrix runs each projection and replay route for
// every caller (no token, bad token, reader, writer, admin) and tenant
// (allowed, not allowed, missing) and checks status and error code.
func TestProjectionRoutesAuthMatrix(t *testing.T) {
	e := newProjEnv(t, server.ReplayOptions{AllowRebuild: true})
	ids := e.seedTraces(1)
	e.catchUp()
	routes := []struct {
		name, method, path string
		body               []byte
		admin              bool
		ok                 int // status of an allowed caller
		okCode             string
	}{
		{"context", "GET", "/api/v1/graph/context?node_type=trace&node_id=" + ids[0], nil, false, 200, ""},
		{"edges", "GET", "/api/v1/graph/edges?node_type=trace&node_id=" + ids[0], nil, false, 200, ""},
		{"precedents", "GET", "/api/v1/precedents", nil, false, 200, ""},
		{"health", "GET", "/api/v1/projections/health", nil, false, 200, ""},
		// An invalid body: the allowed caller reaches the handler's first check.
		{"start replay", "POST", "/api/v1/admin/replays", []byte(`{"mode":"sideways","projection":"all","reason":"x"}`), true, 400, "invalid_argument"},
		{"replay status", "GET", "/api/v1/admin/replays/replay-unknown", nil, true, 404, "not_found"},
		{"cancel replay", "POST", "/api/v1/admin/replays/replay-unknown/cancel", nil, true, 404, "not_found"},
	}
	callers := []struct {
		name  string
		token string
		role  string
	}{{"none", "", ""}, {"bad token", "not-a-token", ""}, {"reader", readerToken, "reader"}, {"writer", writerToken, "writer"}, {"admin", adminToken, "admin"}}
	tenants := []struct{ name, tenant string }{{"allowed", tenantA}, {"not allowed", "tenant-b"}, {"missing", ""}}
	for _, rt := range routes {
		for _, c := range callers {
			for _, tn := range tenants {
				t.Run(fmt.Sprintf("%s/%s/%s", rt.name, c.name, tn.name), func(t *testing.T) {
					var wantStatus int
					var wantCode string
					switch {
					case tn.tenant == "":
						wantStatus, wantCode = 400, "invalid_argument"
					case c.role == "":
						wantStatus, wantCode = 401, "unauthorized"
					case tn.tenant != tenantA:
						wantStatus, wantCode = 403, "forbidden"
					case rt.admin && c.role != "admin":
						wantStatus, wantCode = 403, "forbidden"
					default:
						wantStatus, wantCode = rt.ok, rt.okCode
					}
					rec := e.do(req{method: rt.method, path: rt.path, token: c.token, tenant: tn.tenant, body: rt.body})
					_, code, _ := envelope(t, rec)
					if rec.Code != wantStatus || code != wantCode {
						t.Fatalf("got %d %q, want %d %q: %s", rec.Code, code, wantStatus, wantCode, rec.Body)
					}
				})
			}
		}
	}
}

// TestGraphAndPrecedentRoutes checks parameters, defaults, limits, shapes
// and the 409 while a projection is behind.
func TestGraphAndPrecedentRoutes(t *testing.T) {
	e := newProjEnv(t, server.ReplayOptions{})
	ids := e.seedTraces(3)
	node := url.Values{"node_type": {"trace"}, "node_id": {ids[0]}}
	if st, code, _ := e.get("/api/v1/graph/context", node); st != 409 || code != "projection_out_of_date" {
		t.Fatalf("context before catch-up: %d %q", st, code)
	}
	if st, code, _ := e.get("/api/v1/precedents", nil); st != 409 || code != "projection_out_of_date" {
		t.Fatalf("precedents before catch-up: %d %q", st, code)
	}
	e.catchUp()

	st, _, data := e.get("/api/v1/graph/context", node)
	if st != 200 {
		t.Fatalf("context: %d", st)
	}
	center := data["center"].(map[string]any)
	if center["node_type"] != "trace" || center["node_id"] != ids[0] || data["truncated"] != false {
		t.Fatalf("context: %v", data)
	}
	nodes := data["nodes"].([]any)
	if len(nodes) == 0 {
		t.Fatalf("context has no nodes: %v", data)
	}
	n0 := nodes[0].(map[string]any)
	for _, k := range []string{"node_id", "node_type", "trace_id", "log_seq", "created_at", "attrs"} {
		if _, ok := n0[k]; !ok {
			t.Fatalf("node lacks %s: %v", k, n0)
		}
	}
	// Lists both repeated and comma-separated; an unknown edge type leaves the center alone.
	q := url.Values{"node_type": {"trace"}, "node_id": {ids[0]}, "edge_types": {"nope,also_nope", "never"}}
	if st, _, data := e.get("/api/v1/graph/context", q); st != 200 || len(data["edges"].([]any)) != 0 || len(data["nodes"].([]any)) != 1 {
		t.Fatalf("filtered context: %d %v", st, data)
	}
	// An unknown center is empty lists, not 404.
	if st, _, data := e.get("/api/v1/graph/context", url.Values{"node_type": {"trace"}, "node_id": {"no-such"}}); st != 200 || len(data["edges"].([]any)) != 0 {
		t.Fatalf("unknown center: %d %v", st, data)
	}
	bad := []struct {
		path  string
		q     url.Values
		path2 string
	}{
		{"/api/v1/graph/context", url.Values{"node_id": {"x"}}, "node_type"},
		{"/api/v1/graph/context", url.Values{"node_type": {"trace"}, "node_id": {"  "}}, "node_id"},
		{"/api/v1/graph/context", url.Values{"node_type": {"trace"}, "node_id": {"x"}, "max_depth": {"11"}}, "max_depth"},
		{"/api/v1/graph/context", url.Values{"node_type": {"trace"}, "node_id": {"x"}, "max_depth": {"two"}}, "max_depth"},
		{"/api/v1/graph/context", url.Values{"node_type": {"trace"}, "node_id": {"x"}, "max_nodes": {"0"}}, "max_nodes"},
		{"/api/v1/graph/context", url.Values{"node_type": {"trace"}, "node_id": {"x"}, "max_edges": {"-1"}}, "max_edges"},
		{"/api/v1/graph/edges", url.Values{"node_type": {"trace"}, "node_id": {"x"}, "direction": {"sideways"}}, "direction"},
		{"/api/v1/graph/edges", url.Values{"node_type": {"trace"}, "node_id": {"x"}, "limit": {"0"}}, "limit"},
		{"/api/v1/graph/edges", url.Values{"node_type": {"trace"}, "node_id": {"x"}, "limit": {"10001"}}, "limit"},
		{"/api/v1/graph/edges", url.Values{"node_type": {"trace"}, "node_id": {"x"}, "cursor_edge_key": {"no-such-edge"}}, "cursor_edge_key"},
		{"/api/v1/precedents", url.Values{"policy_version": {"1"}}, "policy_version"},
		{"/api/v1/precedents", url.Values{"entity_id": {"T-1"}}, "entity_id"},
		{"/api/v1/precedents", url.Values{"limit": {"0"}}, "limit"},
	}
	for _, b := range bad {
		rec := e.do(req{method: "GET", path: b.path + "?" + b.q.Encode(), token: readerToken, tenant: tenantA})
		_, code, details := envelope(t, rec)
		if rec.Code != 400 || code != "invalid_argument" || details["path"] != b.path2 {
			t.Errorf("%s?%s: %d %q %v", b.path, b.q.Encode(), rec.Code, code, details)
		}
	}

	// Edges: page through one at a time with the returned cursor.
	var seen []string
	q = url.Values{"node_type": {"trace"}, "node_id": {ids[0]}, "limit": {"1"}}
	for i := 0; i < 100; i++ {
		st, _, data := e.get("/api/v1/graph/edges", q)
		if st != 200 {
			t.Fatalf("edges page %d: %d", i, st)
		}
		for _, ed := range data["edges"].([]any) {
			seen = append(seen, ed.(map[string]any)["edge_id"].(string))
		}
		next, _ := data["next_cursor"].(map[string]any)
		if next == nil {
			break
		}
		if next["direction"] != "both" {
			t.Fatalf("cursor: %v", next)
		}
		q.Set("cursor_edge_key", next["edge_key"].(string))
		q.Set("cursor_log_seq", fmt.Sprint(next["log_seq"]))
	}
	st, _, all := e.get("/api/v1/graph/edges", url.Values{"node_type": {"trace"}, "node_id": {ids[0]}})
	if st != 200 || len(all["edges"].([]any)) != len(seen) || len(seen) == 0 || all["next_cursor"] != nil {
		t.Fatalf("paged %v, whole %d %v", seen, st, all)
	}

	// Precedents: newest first; an empty filter value matches nothing.
	st, _, data = e.get("/api/v1/precedents", url.Values{"outcome": {"approved"}, "limit": {"2"}})
	hits := data["precedents"].([]any)
	if st != 200 || len(hits) != 2 || hits[0].(map[string]any)["trace_id"] != ids[2] || hits[0].(map[string]any)["policy_id"] != nil {
		t.Fatalf("precedents: %d %v", st, data)
	}
	if st, _, data := e.get("/api/v1/precedents", url.Values{"outcome": {""}}); st != 200 || len(data["precedents"].([]any)) != 0 {
		t.Fatalf("empty outcome: %d %v", st, data)
	}

	// Projection health: three projections in order, current, digests after a refresh.
	if _, err := e.pg.RefreshDigests(context.Background(), tenantA); err != nil {
		t.Fatal(err)
	}
	st, _, data = e.get("/api/v1/projections/health", nil)
	if st != 200 || data["tenant_id"] != tenantA || data["full_digest"] == nil {
		t.Fatalf("health: %d %v", st, data)
	}
	ps := data["projections"].([]any)
	for i, name := range []string{"context_graph", "trace_summary", "precedent_index"} {
		p := ps[i].(map[string]any)
		if p["projection_name"] != name || p["is_stale"] != false || fmt.Sprint(p["pending_events"]) != "0" || p["digest"] == nil {
			t.Errorf("health projection %d: %v", i, p)
		}
	}
}
