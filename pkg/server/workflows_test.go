package server_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// newWorkflowAPIEnv is an API with the workflow routes, its clock fixed at
// now (the fixture events occur at 2026-01-02T03:04:05Z).
func newWorkflowAPIEnv(t *testing.T, now string) *apiEnv {
	at, err := time.Parse(time.RFC3339, now)
	if err != nil {
		t.Fatal(err)
	}
	var e *apiEnv
	e = newAPIEnv(t, func(cfg *server.APIConfig) {})
	svc := workflow.New(e.store.Pool(), e.store, workflow.Config{Now: func() time.Time { return at }}, workflow.Options{})
	// Rebuild the server with the workflow service.
	e2 := newAPIEnvOnStore(t, e, svc)
	return e2
}

func newAPIEnvOnStore(t *testing.T, e *apiEnv, svc *workflow.Service) *apiEnv {
	cfg := &server.APIConfig{Log: e.store, Accounts: testAccounts(), RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1}, Workflows: svc}
	srv := server.New(server.Config{Env: "dev", API: cfg, Logger: discardLogger()})
	return &apiEnv{t: t, store: e.store, srv: srv, h: srv.Handler(), logs: e.logs}
}

func mustOK(t *testing.T, e *apiEnv, r req, status int) map[string]any {
	t.Helper()
	rec := e.do(r)
	if rec.Code != status {
		t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, rec.Code, status, rec.Body)
	}
	data, _, _ := envelope(t, rec)
	return data
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func exceptionPayload() map[string]any {
	return map[string]any{"exception_id": "ex-42", "reason": "discount above limit",
		"policy": map[string]any{"policy_id": "discount_limit", "policy_version": "v3"}}
}

// End to end over HTTP: append an exception request, see it in the inbox,
// approve it, see ApprovalRecorded in the trace and the item approved.
func TestWorkflowEndToEndOverHTTP(t *testing.T) {
	e := newWorkflowAPIEnv(t, "2026-01-02T04:00:00Z")
	trace := newTraceID("wf")
	mustOK(t, e, req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA, body: traceStarted(trace)}, 201)
	mustOK(t, e, req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA,
		body: eventJSON(trace, 1, "ExceptionRequested", exceptionPayload(), nil)}, 201)
	wid := trace + ":exception:ex-42"

	inbox := mustOK(t, e, req{method: "GET", path: "/api/v1/workflows?priority=HIGH&limit=500", token: readerToken, tenant: tenantA}, 200)
	items := inbox["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["workflow_id"] != wid {
		t.Fatalf("inbox items = %v", items)
	}
	sum := inbox["summary"].(map[string]any)
	if sum["open_count"] != json.Number("1") || sum["requested_count"] != json.Number("1") || sum["notification_count"] != json.Number("1") {
		t.Errorf("summary = %v", sum)
	}
	f := inbox["filters"].(map[string]any)
	if f["priority"] != "high" || f["limit"] != json.Number("50") || f["only_open"] != true {
		t.Errorf("filters = %v", f)
	}

	path := "/api/v1/workflows/" + url.PathEscape(wid) + "/actions"
	act := mustOK(t, e, req{method: "POST", path: path, token: writerToken, tenant: tenantA,
		body: jsonBody(map[string]any{"action": "APPROVE", "reason": "within quarterly budget", "evidence": []any{"crm://opp/1", map[string]any{"locator": "policy://x"}}})}, 200)
	a := act["action"].(map[string]any)
	appended, _ := a["appended_event_id"].(string)
	if a["outcome"] != "approve" || appended == "" {
		t.Fatalf("action = %v", a)
	}
	if act["workflow"].(map[string]any)["status"] != "approved" {
		t.Errorf("workflow after approve = %v", act["workflow"])
	}

	tr := mustOK(t, e, req{method: "GET", path: "/api/v1/traces/" + trace, token: readerToken, tenant: tenantA}, 200)
	found := false
	for _, ev := range tr["events"].([]any) {
		m := ev.(map[string]any)
		if m["event_type"] == "ApprovalRecorded" && m["event_id"] == appended {
			found = true
			p := m["payload"].(map[string]any)
			if p["decision"] != "approved" || p["approver"].(map[string]any)["actor_id"] != "writer-test" {
				t.Errorf("approval payload = %v", p)
			}
			if ev := p["evidence"].([]any); len(ev) != 2 || ev[0].(map[string]any)["value"] != "crm://opp/1" {
				t.Errorf("evidence = %v", ev)
			}
		}
	}
	if !found {
		t.Fatalf("ApprovalRecorded %s not in the trace", appended)
	}

	det := mustOK(t, e, req{method: "GET", path: "/api/v1/workflows/" + url.PathEscape(wid), token: readerToken, tenant: tenantA}, 200)
	if det["workflow"].(map[string]any)["status"] != "approved" || len(det["actions"].([]any)) != 2 {
		t.Errorf("detail = %v", det)
	}
	if ref := det["trace_reference"].(map[string]any); ref["trace_id"] != trace || ref["tenant_id"] != tenantA {
		t.Errorf("trace_reference = %v", ref)
	}
	if det["review_context"] == nil {
		t.Error("review_context is null for a readable trace")
	}
	// The approved item left the default (open) inbox.
	inbox = mustOK(t, e, req{method: "GET", path: "/api/v1/workflows", token: readerToken, tenant: tenantA}, 200)
	if len(inbox["items"].([]any)) != 0 || inbox["summary"].(map[string]any)["approved_count"] != json.Number("1") {
		t.Errorf("inbox after approval = %v", inbox)
	}
}

func TestWorkflowRouteErrorsAndIdempotency(t *testing.T) {
	e := newWorkflowAPIEnv(t, "2026-01-02T04:00:00Z")
	trace := newTraceID("wf")
	mustOK(t, e, req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA, body: traceStarted(trace)}, 201)
	mustOK(t, e, req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA,
		body: eventJSON(trace, 1, "ExceptionRequested", exceptionPayload(), nil)}, 201)
	wid := trace + ":exception:ex-42"
	path := "/api/v1/workflows/" + url.PathEscape(wid) + "/actions"
	check := func(r req, status int, code, msg string) {
		t.Helper()
		rec := e.do(r)
		_, c, _ := envelope(t, rec)
		if rec.Code != status || c != code || !strings.Contains(rec.Body.String(), msg) {
			t.Errorf("%s %s: %d %s %s, want %d %s %q", r.method, r.path, rec.Code, c, rec.Body, status, code, msg)
		}
	}
	check(req{method: "GET", path: "/api/v1/workflows?priority=soon", token: readerToken, tenant: tenantA}, 400, "invalid_argument", "Unsupported priority")
	check(req{method: "GET", path: "/api/v1/workflows/nope", token: readerToken, tenant: tenantA}, 404, "not_found", "Workflow not found: nope")
	check(req{method: "POST", path: path, token: readerToken, tenant: tenantA, body: jsonBody(map[string]any{"action": "comment", "note": "n"})}, 403, "forbidden", "role")
	check(req{method: "POST", path: path, token: writerToken, tenant: tenantA, body: jsonBody(map[string]any{"action": "reassign", "assigned_role": "admin"})}, 403, "forbidden", "lacks workflow_assign permission")
	check(req{method: "POST", path: path, token: writerToken, tenant: tenantA, body: jsonBody(map[string]any{"action": "fly"})}, 400, "invalid_argument", `Unsupported workflow action \"fly\"`)
	check(req{method: "POST", path: path, token: writerToken, tenant: tenantA, body: jsonBody(map[string]any{"action": "approve"})}, 400, "invalid_argument", "approve requires a reason")
	check(req{method: "POST", path: path, token: adminToken, tenant: tenantA, body: jsonBody(map[string]any{"action": "override", "reason": "r", "confirm_text": "yes"})}, 400, "invalid_argument", "OVERRIDE "+strings.ToUpper(wid))
	check(req{method: "GET", path: "/api/v1/admin/workflows/" + url.PathEscape(wid) + "/export", token: writerToken, tenant: tenantA}, 403, "forbidden", "role")

	// Idempotency-Key: the retry is answered from the first answer.
	comment := req{method: "POST", path: path, token: writerToken, tenant: tenantA, headers: map[string]string{"Idempotency-Key": "c-1"},
		body: jsonBody(map[string]any{"action": "comment", "note": "looking"})}
	first := mustOK(t, e, comment, 200)
	rec := e.do(comment)
	if rec.Code != 200 || rec.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %s", rec.Code, rec.Body)
	}
	second, _, _ := envelope(t, rec)
	if first["workflow"].(map[string]any)["updated_at"] != second["workflow"].(map[string]any)["updated_at"] {
		t.Error("retry answer differs from the first")
	}
	comment.body = jsonBody(map[string]any{"action": "comment", "note": "other"})
	check(comment, 409, "idempotency_conflict", "different request")
	det := mustOK(t, e, req{method: "GET", path: "/api/v1/workflows/" + url.PathEscape(wid), token: readerToken, tenant: tenantA}, 200)
	if n := len(det["actions"].([]any)); n != 2 {
		t.Errorf("%d actions after a retried comment, want 2", n)
	}

	// Export: admin with workflow_export; every notification, paginated.
	exp := mustOK(t, e, req{method: "GET", path: "/api/v1/admin/workflows/" + url.PathEscape(wid) + "/export", token: adminToken, tenant: tenantA}, 200)
	as := exp["audit_summary"].(map[string]any)
	if exp["export_version"] != json.Number("1") || as["closed?"] != false || as["action_count"] != json.Number("2") || as["notification_count"] != json.Number("1") {
		t.Errorf("export = %v", exp)
	}
	// Approving on a finished trace is a conflict, up front.
	mustOK(t, e, req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA,
		body: eventJSON(trace, 2, "TraceFinished", finishPayload(), nil)}, 201)
	check(req{method: "POST", path: path, token: writerToken, tenant: tenantA, body: jsonBody(map[string]any{"action": "approve", "reason": "late"})}, 409, "conflict", "already finished")
}

func TestStudioRoutes(t *testing.T) {
	e := newWorkflowAPIEnv(t, "2026-01-02T04:00:00Z")
	tpl := mustOK(t, e, req{method: "GET", path: "/api/v1/workflow-studio/templates", token: readerToken, tenant: tenantA}, 200)
	if n := len(tpl["templates"].([]any)); n != 3 {
		t.Fatalf("%d templates", n)
	}
	trace := newTraceID("studio")
	mustOK(t, e, req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA, body: traceStarted(trace)}, 201)
	mustOK(t, e, req{method: "POST", path: "/api/v1/events", token: writerToken, tenant: tenantA,
		body: eventJSON(trace, 1, "ExceptionRequested", exceptionPayload(), nil)}, 201)
	ov := mustOK(t, e, req{method: "GET", path: "/api/v1/workflow-studio/traces/" + trace, token: readerToken, tenant: tenantA}, 200)
	if ov["template"].(map[string]any)["template_id"] != "exception_follow_up" {
		t.Errorf("default template = %v", ov["template"])
	}
	draft := ov["draft"].(map[string]any)
	if draft["workflow_id"] != trace+":trace_review:exception_follow_up" || draft["priority"] != "urgent" {
		t.Errorf("draft = %v", draft)
	}
	sim := ov["simulation"].(map[string]any)
	signals := sim["risk_signals"].([]any)
	if len(signals) == 0 || signals[0] != "exception requested" {
		t.Errorf("risk signals = %v", signals)
	}
	if e.do(req{method: "GET", path: "/api/v1/workflow-studio/traces/missing", token: readerToken, tenant: tenantA}).Code != 404 {
		t.Error("unknown trace is not 404")
	}
	start := req{method: "POST", path: "/api/v1/workflow-studio/traces/" + trace + "/reviews", token: adminToken, tenant: tenantA,
		body: jsonBody(map[string]any{"template_id": "incident_triage", "reason": "look at this"})}
	rec := e.do(req{method: start.method, path: start.path, token: adminToken, tenant: tenantA, body: jsonBody(map[string]any{"template_id": "incident_triage"})})
	if _, c, _ := envelope(t, rec); rec.Code != 400 || !strings.Contains(rec.Body.String(), "start_review requires a reason") {
		t.Errorf("no reason: %d %s", rec.Code, c)
	}
	rec = e.do(req{method: start.method, path: start.path, token: writerToken, tenant: tenantA, body: start.body})
	if rec.Code != 403 {
		t.Errorf("writer without workflow_assign: %d", rec.Code)
	}
	created := mustOK(t, e, start, 201)
	if created["created"] != true || created["action"].(map[string]any)["appended_event_id"] == nil {
		t.Fatalf("start review = %v", created)
	}
	wf := created["workflow"].(map[string]any)
	if wf["workflow_kind"] != "incident_review" || wf["workflow_name"] != "incident_triage" || wf["sla_due_at"] != "2026-01-02T06:00:00Z" {
		t.Errorf("review item = %v", wf)
	}
	again := mustOK(t, e, start, 201)
	if again["created"] != false || again["action"].(map[string]any)["appended_event_id"] != nil {
		t.Errorf("second start = %v", again)
	}
}
