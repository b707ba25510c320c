package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Test accounts: one per role, all limited to tenant-a (so a foreign
// tenant is refused for every role, admin included).
const (
	readerToken = "reader-test-token"
	writerToken = "writer-test-token"
	adminToken  = "admin-test-token"
	tenantA     = "tenant-a"
)

func testAccounts() *auth.Registry {
	tenants := []string{tenantA}
	return auth.NewRegistry(&auth.Set{
		Source:            "test",
		OperatorAccountID: "admin-test",
		Accounts: []*auth.Account{
			auth.NewAccount("reader-test", []string{auth.RoleReader}, nil, tenants, readerToken),
			auth.NewAccount("writer-test", []string{auth.RoleWriter}, []string{auth.PermWorkflowReview}, tenants, writerToken),
			auth.NewAccount("admin-test", []string{auth.RoleAdmin}, []string{"*"}, tenants, adminToken),
		},
	})
}

// apiEnv is a server with the API on a fresh migrated database.
type apiEnv struct {
	t     *testing.T
	store *store.Store
	srv   *server.Server
	h     http.Handler
	logs  *syncBuffer
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { b := &syncBuffer{mu: make(chan struct{}, 1)}; return b }
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func newAPIEnv(t *testing.T, mutate func(*server.APIConfig)) *apiEnv {
	t.Helper()
	st, err := store.New(context.Background(), pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	cfg := &server.APIConfig{Log: st, Accounts: testAccounts(), RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1}}
	if mutate != nil {
		mutate(cfg)
	}
	logs := newSyncBuffer()
	srv := server.New(server.Config{Env: "dev", API: cfg, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	return &apiEnv{t: t, store: st, srv: srv, h: srv.Handler(), logs: logs}
}

type req struct {
	method, path string
	token        string // "" = no Authorization header
	tenant       string // "" = no x-tenant-id
	body         []byte
	contentType  string // default application/json when body is set
	headers      map[string]string
}

func (e *apiEnv) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.tenant != "" {
		hr.Header.Set("x-tenant-id", r.tenant)
	}
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, hr)
	return rec
}

// envelope decodes a response and checks its envelope shape: a success
// has data (an object) and request_id; an error has error.code,
// error.message, error.details (an object) and request_id. The
// request_id always equals the x-request-id header.
func envelope(t *testing.T, rec *httptest.ResponseRecorder) (data map[string]any, code string, details map[string]any) {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("status %d: body is not JSON: %q", rec.Code, rec.Body.String())
	}
	rid, _ := m["request_id"].(string)
	if rid == "" || rid != rec.Header().Get("x-request-id") {
		t.Fatalf("request_id %q must be set and equal the x-request-id header %q", rid, rec.Header().Get("x-request-id"))
	}
	if rec.Code < 400 {
		d, ok := m["data"].(map[string]any)
		if !ok {
			t.Fatalf("status %d: no data object in %s", rec.Code, rec.Body)
		}
		return d, "", nil
	}
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("status %d: no error envelope in %s", rec.Code, rec.Body)
	}
	details, ok = e["details"].(map[string]any)
	if !ok {
		t.Fatalf("error.details must be an object: %s", rec.Body)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("error.message is empty: %s", rec.Body)
	}
	code, _ = e["code"].(string)
	return nil, code, details
}

var traceCounter atomic.Int64

// newTraceID is unique across the test binary.
func newTraceID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), traceCounter.Add(1))
}

// eventJSON is a valid envelope; fields can be overridden or removed (nil).
func eventJSON(traceID string, seq int, eventType string, payload map[string]any, over map[string]any) []byte {
	m := map[string]any{
		"event_id":           fmt.Sprintf("%s-e%d", traceID, seq),
		"trace_id":           traceID,
		"trace_seq":          seq,
		"event_type":         eventType,
		"occurred_at":        "2026-01-02T03:04:05Z",
		"source":             map[string]any{"producer_id": "api-test", "system": "tests", "subsystem": nil},
		"actor":              map[string]any{"actor_type": "agent", "actor_id": "agent-1"},
		"correlation_id":     nil,
		"causation_event_id": nil,
		"idempotency_key":    fmt.Sprintf("%s:%d", traceID, seq),
		"schema_version":     1,
		"payload":            payload,
		"tags":               []string{},
	}
	for k, v := range over {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

func startPayload() map[string]any {
	return map[string]any{"workflow": "api_test", "title": "API test trace",
		"primary_entity": map[string]any{"entity_type": "ticket", "entity_id": "T-1", "system": "tests"}}
}

func traceStarted(traceID string) []byte {
	return eventJSON(traceID, 0, "TraceStarted", startPayload(), nil)
}

func finishPayload() map[string]any {
	return map[string]any{"outcome": "approved"}
}

// TestAuthMatrix runs every API route against every role (none, bad
// token, reader, writer, admin) and tenant (allowed, not allowed,
// missing), in the spec's order of checks: tenant header 400, then token
// 401, then tenant 403, then role 403.
func TestAuthMatrix(t *testing.T) {
	e := newAPIEnv(t, nil)
	seeded := newTraceID("matrix-seed")
	if rec := e.do(req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA, body: traceStarted(seeded)}); rec.Code != 201 {
		t.Fatalf("seed: %d %s", rec.Code, rec.Body)
	}
	type route struct {
		name    string
		method  string
		path    func() string
		body    func() []byte
		okCode  int
		allowed map[string]bool // roles the route family accepts
	}
	routes := []route{
		{"append event", "POST", func() string { return "/api/v1/events" }, func() []byte { return traceStarted(newTraceID("matrix")) },
			201, map[string]bool{"writer": true, "admin": true}},
		{"get trace", "GET", func() string { return "/api/v1/traces/" + seeded }, func() []byte { return nil },
			200, map[string]bool{"reader": true, "writer": true, "admin": true}},
	}
	roles := []struct{ name, token string }{
		{"none", ""}, {"bad token", "not-a-token"}, {"reader", readerToken}, {"writer", writerToken}, {"admin", adminToken},
	}
	tenants := []struct{ name, value string }{{"allowed", tenantA}, {"not allowed", "tenant-z"}, {"missing", ""}}
	for _, rt := range routes {
		for _, role := range roles {
			for _, tn := range tenants {
				t.Run(rt.name+"/"+role.name+"/"+tn.name, func(t *testing.T) {
					wantStatus, wantCode := rt.okCode, ""
					switch {
					case tn.name == "missing":
						wantStatus, wantCode = 400, "invalid_argument"
					case role.token == "" || role.name == "bad token":
						wantStatus, wantCode = 401, "unauthorized"
					case tn.name == "not allowed":
						wantStatus, wantCode = 403, "forbidden"
					case !rt.allowed[role.name]:
						wantStatus, wantCode = 403, "forbidden"
					}
					rec := e.do(req{method: rt.method, path: rt.path(), token: role.token, tenant: tn.value, body: rt.body()})
					_, code, _ := envelope(t, rec)
					if rec.Code != wantStatus || code != wantCode {
						t.Fatalf("status %d code %q, want %d %q: %s", rec.Code, code, wantStatus, wantCode, rec.Body)
					}
				})
			}
		}
	}
}

func TestAuthMessagesAndBearerFormat(t *testing.T) {
	e := newAPIEnv(t, nil)
	cases := []struct {
		name    string
		headers map[string]string
		status  int
		msg     string
	}{
		{"no tenant, no token: tenant first", map[string]string{}, 400, "x-tenant-id header is required"},
		{"blank tenant", map[string]string{"x-tenant-id": "   ", "Authorization": "Bearer " + readerToken}, 400, "x-tenant-id header is required"},
		{"no authorization", map[string]string{"x-tenant-id": tenantA}, 401, "Authentication required"},
		{"lower-case scheme", map[string]string{"x-tenant-id": tenantA, "Authorization": "bearer " + readerToken}, 401, "Authorization header must use Bearer token format"},
		{"basic scheme", map[string]string{"x-tenant-id": tenantA, "Authorization": "Basic abc"}, 401, "Authorization header must use Bearer token format"},
		{"empty token", map[string]string{"x-tenant-id": tenantA, "Authorization": "Bearer    "}, 401, "Authorization header must use Bearer token format"},
		{"unknown token", map[string]string{"x-tenant-id": tenantA, "Authorization": "Bearer nope"}, 401, "Unknown service account token"},
		{"token prefix", map[string]string{"x-tenant-id": tenantA, "Authorization": "Bearer " + readerToken[:5]}, 401, "Unknown service account token"},
		{"foreign tenant", map[string]string{"x-tenant-id": "tenant-z", "Authorization": "Bearer " + readerToken}, 403, "Service account cannot access tenant tenant-z"},
		{"padded token and tenant", map[string]string{"x-tenant-id": "  " + tenantA + " ", "Authorization": "Bearer   " + readerToken + "  "}, 404, "Trace not found: t-missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do(req{method: "GET", path: "/api/v1/traces/t-missing", headers: c.headers})
			envelope(t, rec)
			var m struct {
				Error struct{ Message string } `json:"error"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &m)
			if rec.Code != c.status || m.Error.Message != c.msg {
				t.Fatalf("got %d %q, want %d %q", rec.Code, m.Error.Message, c.status, c.msg)
			}
		})
	}
	rec := e.do(req{method: "POST", path: "/api/v1/events", token: readerToken, tenant: tenantA, body: traceStarted("x")})
	if !strings.Contains(rec.Body.String(), "Service account lacks required role") {
		t.Fatalf("role message: %s", rec.Body)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
