package server

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func decode(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, rec.Body.String())
	}
	return m
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	m := decode(t, rec)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error envelope in %q", rec.Body.String())
	}
	if _, ok := e["details"].(map[string]any); !ok {
		t.Fatalf("error.details must be an object: %q", rec.Body.String())
	}
	if m["request_id"] == "" {
		t.Fatalf("no request_id in %q", rec.Body.String())
	}
	return e["code"].(string)
}

func do(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHealthzIsLivenessWithDetails(t *testing.T) {
	s := New(Config{Env: "dev", HealthDetails: map[string]func(context.Context) (any, error){
		"store":             func(context.Context) (any, error) { return map[string]any{"database": "dg"}, nil },
		"projection_health": func(context.Context) (any, error) { return nil, errors.New("connection refused") },
	}})
	rec := do(s.Handler(), "GET", "/api/healthz", nil)
	if rec.Code != 200 {
		t.Fatalf("healthz status %d, want 200 even with a failing section", rec.Code)
	}
	m := decode(t, rec)
	if m["deployment_env"] != "dev" {
		t.Errorf("deployment_env = %v", m["deployment_env"])
	}
	if m["store"].(map[string]any)["database"] != "dg" {
		t.Errorf("store section = %v", m["store"])
	}
	ph := m["projection_health"].(map[string]any)
	if ph["status"] != "unavailable" || ph["reason"] != "connection refused" {
		t.Errorf("failing section = %v", ph)
	}
	if rec := do(s.Handler(), "HEAD", "/api/healthz", nil); rec.Code != 200 {
		t.Errorf("HEAD healthz = %d", rec.Code)
	}
}

func TestReadyz(t *testing.T) {
	dbErr := errors.New("database unreachable")
	var failing error
	s := New(Config{Readiness: []Check{
		{Name: "database", Run: func(context.Context) error { return failing }},
		{Name: "migrations", Run: func(context.Context) error { return nil }},
	}})
	if rec := do(s.Handler(), "GET", "/api/readyz", nil); rec.Code != 200 {
		t.Fatalf("ready: status %d body %s", rec.Code, rec.Body)
	}
	failing = dbErr
	rec := do(s.Handler(), "GET", "/api/readyz", nil)
	if rec.Code != 503 {
		t.Fatalf("not ready: status %d", rec.Code)
	}
	m := decode(t, rec)
	checks := m["checks"].(map[string]any)
	if db := checks["database"].(map[string]any); db["ok"] != false || db["error"] != dbErr.Error() {
		t.Errorf("database check = %v", db)
	}
	if mig := checks["migrations"].(map[string]any); mig["ok"] != true {
		t.Errorf("migrations check = %v", mig)
	}
}

func TestUnknownRouteAndWrongMethodUseEnvelope(t *testing.T) {
	s := New(Config{})
	rec := do(s.Handler(), "GET", "/api/v1/nope", nil)
	if rec.Code != 404 || errorCode(t, rec) != "not_found" {
		t.Fatalf("unknown route: %d %s", rec.Code, rec.Body)
	}
	rec = do(s.Handler(), "POST", "/api/healthz", nil)
	if rec.Code != 405 || errorCode(t, rec) != "method_not_allowed" {
		t.Fatalf("wrong method: %d %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Allow"); got != "GET" {
		t.Errorf("Allow = %q", got)
	}
}

func TestRequestIDEchoAndGeneration(t *testing.T) {
	s := New(Config{})
	rec := do(s.Handler(), "GET", "/api/nope", map[string]string{"x-request-id": "abc-123"})
	if rec.Header().Get("x-request-id") != "abc-123" || decode(t, rec)["request_id"] != "abc-123" {
		t.Fatalf("request id not echoed: header %q body %s", rec.Header().Get("x-request-id"), rec.Body)
	}
	for _, bad := range []string{"   ", "has space", strings.Repeat("x", 201)} {
		rec = do(s.Handler(), "GET", "/api/nope", map[string]string{"x-request-id": bad})
		got := rec.Header().Get("x-request-id")
		if got == "" || got == strings.TrimSpace(bad) {
			t.Errorf("request id %q: got %q, want a generated id", bad, got)
		}
	}
}

func TestPanicBecomesEnvelope(t *testing.T) {
	s := New(Config{})
	s.router.handle("GET", "/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	rec := do(s.Handler(), "GET", "/boom", nil)
	if rec.Code != 500 || errorCode(t, rec) != "internal_error" {
		t.Fatalf("panic: %d %s", rec.Code, rec.Body)
	}
}

func TestPathParamsDecodedPerSegment(t *testing.T) {
	s := New(Config{})
	var got string
	s.router.handle("GET", "/api/v1/workflows/{id}", func(w http.ResponseWriter, r *http.Request) {
		got = pathParam(r, "id")
		w.WriteHeader(204)
	})
	rec := do(s.Handler(), "GET", "/api/v1/workflows/trace-1%3Aexception%3Aex%2F42", nil)
	if rec.Code != 204 || got != "trace-1:exception:ex/42" {
		t.Fatalf("status %d param %q", rec.Code, got)
	}
	rec = do(s.Handler(), "GET", "/api/v1/workflows/a/b", nil)
	if rec.Code != 404 {
		t.Fatalf("a raw slash must not match one parameter: %d", rec.Code)
	}
}

func TestRunDrainsAndStops(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(a net.Addr) { addrc <- a }) }()
	addr := <-addrc
	resp, err := http.Get("http://" + addr.String() + "/api/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
