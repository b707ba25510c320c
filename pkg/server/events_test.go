package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/server"
)

func (e *apiEnv) append(body []byte) *httptest.ResponseRecorder {
	return e.do(req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA, body: body})
}

// TestAppendErrorCodes checks each error code the append route produces:
// its status, code name and details.
func TestAppendErrorCodes(t *testing.T) {
	e := newAPIEnv(t, nil)
	tr := newTraceID("codes")
	if rec := e.append(traceStarted(tr)); rec.Code != 201 {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	finished := newTraceID("finished")
	e.append(traceStarted(finished))
	if rec := e.append(eventJSON(finished, 1, "TraceFinished", finishPayload(), nil)); rec.Code != 201 {
		t.Fatalf("finish: %d %s", rec.Code, rec.Body)
	}

	cases := []struct {
		name    string
		body    []byte
		ct      string
		status  int
		code    string
		details map[string]any // expected members (subset)
	}{
		{"malformed JSON", []byte(`{"event_id": `), "", 400, "invalid_argument", nil},
		{"top-level array", []byte(`[1,2]`), "", 400, "invalid_argument", nil},
		{"trailing garbage", append(traceStarted(newTraceID("g")), []byte(" {}")...), "", 400, "invalid_argument", nil},
		{"missing event_id", eventJSON(newTraceID("m"), 0, "TraceStarted", startPayload(), map[string]any{"event_id": nil}), "", 400, "invalid_argument", map[string]any{"path": "$.event_id"}},
		{"missing payload", eventJSON(newTraceID("m"), 0, "TraceStarted", nil, map[string]any{"payload": nil}), "", 400, "invalid_argument", map[string]any{"path": "$.payload"}},
		{"bad occurred_at", eventJSON(newTraceID("m"), 0, "TraceStarted", startPayload(), map[string]any{"occurred_at": "yesterday"}), "", 400, "invalid_argument", nil},
		{"wrong content type", traceStarted(newTraceID("ct")), "text/plain", 415, "unsupported_media_type", nil},
		{"form content type", traceStarted(newTraceID("ct")), "application/x-www-form-urlencoded", 415, "unsupported_media_type", nil},
		{"unknown event type", eventJSON(newTraceID("u"), 0, "Nope", startPayload(), nil), "", 422, "schema_violation", nil},
		{"bad actor type", eventJSON(newTraceID("a"), 0, "TraceStarted", startPayload(), map[string]any{"actor": map[string]any{"actor_type": "robot", "actor_id": "x"}}), "", 422, "schema_violation", nil},
		{"secret in payload", eventJSON(newTraceID("p"), 0, "TraceStarted", map[string]any{"workflow": "w", "title": "password=hunter2",
			"primary_entity": map[string]any{"entity_type": "t", "entity_id": "1", "system": "s"}}, nil), "", 422, "pii_policy_violation", nil},
		{"wrong trace_seq", eventJSON(tr, 5, "TraceFinished", finishPayload(), nil), "", 409, "event_sequence_invalid", map[string]any{"expected_trace_seq": json.Number("1")}},
		{"first event not TraceStarted", eventJSON(newTraceID("f"), 0, "TraceFinished", finishPayload(), nil), "", 409, "event_sequence_invalid", nil},
		{"trace finished", eventJSON(finished, 2, "TraceFinished", finishPayload(), map[string]any{"idempotency_key": "again"}), "", 409, "conflict", nil},
		{"duplicate event_id", eventJSON(newTraceID("d"), 0, "TraceStarted", startPayload(), map[string]any{"event_id": tr + "-e0"}), "", 409, "conflict", nil},
		{"idempotency key reused with another payload", eventJSON(tr, 0, "TraceStarted", map[string]any{"workflow": "other", "title": "t",
			"primary_entity": map[string]any{"entity_type": "t", "entity_id": "1", "system": "s"}}, nil), "", 409, "idempotency_conflict", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do(req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA, body: c.body, contentType: c.ct})
			_, code, details := envelope(t, rec)
			if rec.Code != c.status || code != c.code {
				t.Fatalf("got %d %q, want %d %q: %s", rec.Code, code, c.status, c.code, rec.Body)
			}
			for k, v := range c.details {
				if details[k] != v {
					t.Errorf("details[%s] = %v (%T), want %v: %s", k, details[k], details[k], v, rec.Body)
				}
			}
		})
	}
	// No Content-Type at all is 415 too.
	hr := httptest.NewRequest("POST", "/api/v1/events", bytes.NewReader(traceStarted(newTraceID("noct"))))
	hr.Header.Set("Authorization", "Bearer "+writerToken)
	hr.Header.Set("x-tenant-id", tenantA)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, hr)
	if _, code, _ := envelope(t, rec); rec.Code != 415 || code != "unsupported_media_type" {
		t.Fatalf("no content type: %d %s", rec.Code, rec.Body)
	}
}

func TestAppendSuccessAndIdempotentRetry(t *testing.T) {
	e := newAPIEnv(t, nil)
	tr := newTraceID("ok")
	body := traceStarted(tr)
	rec := e.do(req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA, body: body,
		contentType: "application/json; charset=utf-8", headers: map[string]string{"x-request-id": "req-append-1"}})
	data, _, _ := envelope(t, rec)
	if rec.Code != 201 || rec.Header().Get("x-request-id") != "req-append-1" {
		t.Fatalf("append: %d %s", rec.Code, rec.Body)
	}
	ev := data["event"].(map[string]any)
	for _, k := range []string{"event_id", "trace_id", "trace_seq", "event_type", "occurred_at", "recorded_at", "log_seq", "tenant_id",
		"actor", "source", "idempotency_key", "correlation_id", "causation_event_id", "schema_version", "tags", "payload", "payload_hash"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("stored event lacks %s: %v", k, ev)
		}
	}
	if ev["tenant_id"] != tenantA || data["projection_sync_triggered"] != false {
		t.Errorf("event %v, sync %v", ev["tenant_id"], data["projection_sync_triggered"])
	}
	// The retry returns the stored original (same log_seq, recorded_at), 201.
	rec2 := e.append(body)
	data2, _, _ := envelope(t, rec2)
	ev2 := data2["event"].(map[string]any)
	if rec2.Code != 201 || ev2["log_seq"] != ev["log_seq"] || ev2["recorded_at"] != ev["recorded_at"] {
		t.Fatalf("retry: %d %v vs %v", rec2.Code, ev2, ev)
	}
	rec3 := e.do(req{method: "GET", path: "/api/v1/traces/" + tr, token: readerToken, tenant: tenantA})
	d3, _, _ := envelope(t, rec3)
	if rec3.Code != 200 || len(d3["events"].([]any)) != 1 || d3["summary"] != nil {
		t.Fatalf("trace read: %d %s", rec3.Code, rec3.Body)
	}
}

// countingReader hands out n bytes of a JSON-ish body and counts them.
type countingReader struct {
	left, read int
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.left)
	for i := range p[:n] {
		p[i] = ' '
	}
	c.left -= n
	c.read += n
	return n, nil
}

func TestBodyLimit(t *testing.T) {
	const limit = 1 << 20
	e := newAPIEnv(t, func(c *server.APIConfig) { c.BodyLimit = limit })
	for _, declared := range []bool{true, false} {
		name := "chunked"
		if declared {
			name = "content-length"
		}
		t.Run("2MiB "+name, func(t *testing.T) {
			body := &countingReader{left: 2 << 20}
			hr := httptest.NewRequest("POST", "/api/v1/events", body)
			hr.ContentLength = -1
			if declared {
				hr.ContentLength = 2 << 20
			}
			hr.Header.Set("Authorization", "Bearer "+writerToken)
			hr.Header.Set("x-tenant-id", tenantA)
			hr.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, hr)
			_, code, details := envelope(t, rec)
			if rec.Code != 413 || code != "payload_too_large" || details["limit_bytes"] != json.Number("1048576") {
				t.Fatalf("got %d %q %v", rec.Code, code, details)
			}
			if body.read > limit+64<<10 {
				t.Fatalf("read %d bytes of a 2 MiB body; must stop just past the %d limit", body.read, limit)
			}
			if declared && body.read != 0 {
				t.Fatalf("a declared oversize body must not be read at all (read %d)", body.read)
			}
		})
	}
	// Just under the limit is read and judged on its content.
	pad := strings.Repeat(" ", limit-600)
	rec := e.append(append(traceStarted(newTraceID("big")), []byte(pad)...))
	if rec.Code != 201 {
		t.Fatalf("body under the limit: %d %s", rec.Code, rec.Body)
	}
}

func TestRoutingAndRequestIDs(t *testing.T) {
	e := newAPIEnv(t, nil)
	cases := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"unknown route", "GET", "/api/v1/nope", 404, "not_found"},
		{"unknown version", "POST", "/api/v2/events", 404, "not_found"},
		{"wrong method on events", "GET", "/api/v1/events", 405, "method_not_allowed"},
		{"wrong method on traces", "DELETE", "/api/v1/traces/x", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do(req{method: c.method, path: c.path, token: adminToken, tenant: tenantA})
			if _, code, _ := envelope(t, rec); rec.Code != c.status || code != c.code {
				t.Fatalf("got %d %q, want %d %q", rec.Code, code, c.status, c.code)
			}
		})
	}
	// Request ids: echoed when given, generated when blank or absent.
	rec := e.do(req{method: "GET", path: "/api/v1/traces/none", token: readerToken, tenant: tenantA, headers: map[string]string{"x-request-id": "client-id-7"}})
	envelope(t, rec)
	if rec.Header().Get("x-request-id") != "client-id-7" {
		t.Fatalf("request id not echoed: %q", rec.Header().Get("x-request-id"))
	}
	for _, h := range []map[string]string{{"x-request-id": "   "}, {"x-request-id": ""}, nil} {
		rec := e.do(req{method: "GET", path: "/api/v1/traces/none", token: readerToken, tenant: tenantA, headers: h})
		envelope(t, rec) // checks body request_id == header
		if id := rec.Header().Get("x-request-id"); len(strings.TrimSpace(id)) < 16 {
			t.Fatalf("blank request id must get a generated one, got %q", id)
		}
	}
	// Trace ids with ':' and '/' survive percent-encoding.
	odd := newTraceID("odd") + ":part/two"
	if rec := e.append(traceStarted(odd)); rec.Code != 201 {
		t.Fatalf("append odd id: %d %s", rec.Code, rec.Body)
	}
	rec = e.do(req{method: "GET", path: "/api/v1/traces/" + strings.NewReplacer(":", "%3A", "/", "%2F").Replace(odd), token: readerToken, tenant: tenantA})
	if data, _, _ := envelope(t, rec); rec.Code != 200 || len(data["events"].([]any)) != 1 {
		t.Fatalf("encoded trace id: %d %s", rec.Code, rec.Body)
	}
}

func TestTraceTenantIsolationAndSummaryHook(t *testing.T) {
	var hookErr error
	var hookSummary any
	e := newAPIEnv(t, func(c *server.APIConfig) {
		c.Accounts = testAccountsWithTenants(tenantA, "tenant-b")
		c.TraceSummary = func(_ context.Context, tenant, traceID string) (any, error) {
			if hookErr != nil {
				return nil, hookErr
			}
			return hookSummary, nil
		}
	})
	tr := newTraceID("iso")
	if rec := e.append(traceStarted(tr)); rec.Code != 201 {
		t.Fatalf("append: %d %s", rec.Code, rec.Body)
	}
	// The trace exists in tenant-a only.
	rec := e.do(req{method: "GET", path: "/api/v1/traces/" + tr, token: readerToken, tenant: "tenant-b"})
	if _, code, _ := envelope(t, rec); rec.Code != 404 || code != "not_found" {
		t.Fatalf("foreign tenant read: %d %s", rec.Code, rec.Body)
	}
	hookSummary = map[string]any{"trace_id": tr, "event_count": 1}
	rec = e.do(req{method: "GET", path: "/api/v1/traces/" + tr, token: readerToken, tenant: tenantA})
	data, _, _ := envelope(t, rec)
	if rec.Code != 200 || data["summary"].(map[string]any)["trace_id"] != tr {
		t.Fatalf("summary from hook: %d %s", rec.Code, rec.Body)
	}
	hookErr = &event.Error{Code: event.CodeProjectionOutOfDate, Message: "Projections at log_seq=0, events at 1"}
	rec = e.do(req{method: "GET", path: "/api/v1/traces/" + tr, token: readerToken, tenant: tenantA})
	if _, code, _ := envelope(t, rec); rec.Code != 409 || code != "projection_out_of_date" {
		t.Fatalf("stale projection: %d %s", rec.Code, rec.Body)
	}
}

func testAccountsWithTenants(tenants ...string) *auth.Registry {
	return auth.NewRegistry(&auth.Set{Source: "test", Accounts: []*auth.Account{
		auth.NewAccount("reader-test", []string{auth.RoleReader}, nil, tenants, readerToken),
		auth.NewAccount("writer-test", []string{auth.RoleWriter}, nil, tenants, writerToken),
	}})
}

// TestStorageUnavailable: when the event log cannot take the append (here
// it is closed, as during shutdown) the answer is 503 storage.
func TestStorageUnavailable(t *testing.T) {
	e := newAPIEnv(t, nil)
	e.store.Close()
	rec := e.append(traceStarted(newTraceID("closed")))
	if _, code, _ := envelope(t, rec); rec.Code != 503 || code != "storage" {
		t.Fatalf("closed store: %d %s", rec.Code, rec.Body)
	}
	rec = e.do(req{method: "GET", path: "/api/v1/traces/x", token: readerToken, tenant: tenantA})
	if rec.Code != 404 && rec.Code != 503 {
		t.Fatalf("trace read after close: %d %s", rec.Code, rec.Body)
	}
}
