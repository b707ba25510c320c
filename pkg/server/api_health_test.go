package server

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/event"
)

// TestHealthzShowsAuth: /api/healthz reports where the accounts came from,
// how many there are and the operator console account, never tokens.
func TestHealthzShowsAuth(t *testing.T) {
	reg, err := auth.Load(auth.Config{DevTokens: true, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Env: "dev", HealthDetails: withAuthHealth(map[string]func(context.Context) (any, error){}, reg)})
	rec := do(s.Handler(), "GET", "/api/healthz", nil)
	if rec.Code != 200 {
		t.Fatalf("healthz: %d", rec.Code)
	}
	a := decode(t, rec)["auth"].(map[string]any)
	if a["bootstrap_source"] != "application_env" || a["configured_accounts"] != float64(3) || a["operator_console_account_id"] != "dev-admin" {
		t.Fatalf("auth section: %v", a)
	}
	if body := rec.Body.String(); strings.Contains(body, auth.DevAdminToken) {
		t.Fatalf("healthz leaks a token: %s", body)
	}
}

// TestQueryListAcceptsBothForms: list filters may be repeated, comma
// separated, or both; blanks and duplicates are dropped, order kept.
func TestQueryListAcceptsBothForms(t *testing.T) {
	cases := map[string][]string{
		"/x?edge_types=a&edge_types=b":                {"a", "b"},
		"/x?edge_types=a,b":                           {"a", "b"},
		"/x?edge_types=a,b&edge_types=c&edge_types=a": {"a", "b", "c"},
		"/x?edge_types=+a+,,b":                        {"a", "b"},
		"/x?other=a":                                  nil,
	}
	for target, want := range cases {
		r := httptest.NewRequest("GET", target, nil)
		got := queryList(r, "edge_types")
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: got %v, want %v", target, got, want)
		}
	}
}

// TestRequirePermission: the second authorization layer answers 403 with
// the permission's name; "*" grants all.
func TestRequirePermission(t *testing.T) {
	s := New(Config{})
	a := &api{s: s, cfg: &APIConfig{}}
	writer := &Principal{Account: auth.NewAccount("w", []string{auth.RoleWriter}, []string{auth.PermWorkflowReview}, []string{"t"}, "tok"), Tenant: "t"}
	star := &Principal{Account: auth.NewAccount("a", []string{auth.RoleAdmin}, []string{"*"}, []string{"t"}, "tok2"), Tenant: "t"}
	r := httptest.NewRequest("POST", "/x", nil)
	rec := httptest.NewRecorder()
	if !a.requirePermission(rec, r, writer, auth.PermWorkflowReview) || !a.requirePermission(rec, r, star, auth.PermProjectionRebuild) {
		t.Fatal("granted permission refused")
	}
	rec = httptest.NewRecorder()
	if a.requirePermission(rec, r, writer, auth.PermWorkflowOverride) || rec.Code != 403 ||
		!strings.Contains(rec.Body.String(), "Service account lacks workflow_override permission") {
		t.Fatalf("missing permission: %d %s", rec.Code, rec.Body)
	}
}

// TestEveryEventCodeHasItsStatus maps each event.Code to §5.3's status and
// name, and an unknown code to 500 internal_error.
func TestEveryEventCodeHasItsStatus(t *testing.T) {
	s := New(Config{})
	a := &api{s: s, cfg: &APIConfig{}}
	cases := map[event.Code]struct {
		status int
		name   string
	}{
		event.CodeInvalidArgument:          {400, "invalid_argument"},
		event.CodeSchemaViolation:          {422, "schema_violation"},
		event.CodePIIPolicyViolation:       {422, "pii_policy_violation"},
		event.CodeIdempotencyConflict:      {409, "idempotency_conflict"},
		event.CodeEventSequenceInvalid:     {409, "event_sequence_invalid"},
		event.CodeConflict:                 {409, "conflict"},
		event.CodeNotFound:                 {404, "not_found"},
		event.CodeProjectionOutOfDate:      {409, "projection_out_of_date"},
		event.CodeStorage:                  {503, "storage"},
		event.Code("DG_ERR_SOMETHING_NEW"): {500, "internal_error"},
	}
	for code, want := range cases {
		rec := httptest.NewRecorder()
		a.writeFailure(rec, httptest.NewRequest("GET", "/x", nil), &event.Error{Code: code, Path: "$.x", Message: "m", Details: map[string]any{"k": 1}})
		m := decode(t, rec)
		e := m["error"].(map[string]any)
		d := e["details"].(map[string]any)
		if rec.Code != want.status || e["code"] != want.name || d["path"] != "$.x" || d["k"] != float64(1) {
			t.Errorf("%s: %d %v, want %d %s", code, rec.Code, e, want.status, want.name)
		}
	}
	// Errors that are not event errors come from storage: 503 storage.
	rec := httptest.NewRecorder()
	a.writeFailure(rec, httptest.NewRequest("GET", "/x", nil), context.DeadlineExceeded)
	if rec.Code != 503 || decode(t, rec)["error"].(map[string]any)["code"] != "storage" {
		t.Errorf("deadline: %d %s", rec.Code, rec.Body)
	}
}
