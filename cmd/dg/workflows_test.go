package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// dg workflows list|show|act against a real server on a fresh database.
func TestWorkflowsCLI(t *testing.T) {
	ctx := context.Background()
	st, err := store.New(ctx, pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	now := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	svc := workflow.New(st.Pool(), st, workflow.Config{Now: func() time.Time { return now }}, workflow.Options{})
	accounts := auth.NewRegistry(&auth.Set{Source: "test", Accounts: []*auth.Account{
		auth.NewAccount("cli-admin", []string{auth.RoleAdmin}, []string{"*"}, []string{"acme"}, "cli-admin-token"),
		auth.NewAccount("cli-reader", []string{auth.RoleReader}, nil, []string{"acme"}, "cli-reader-token"),
	}})
	srv := server.New(server.Config{Env: "dev", API: &server.APIConfig{Log: st, Accounts: accounts, Workflows: svc}})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	for seq, typ := range []string{event.TypeTraceStarted, event.TypeExceptionRequested} {
		p := map[string]any{"workflow": "deal_approval", "title": "Deal 7", "primary_entity": map[string]any{"entity_type": "opportunity", "entity_id": "7"}}
		if typ == event.TypeExceptionRequested {
			p = map[string]any{"exception_id": "ex-7", "reason": "discount", "policy": map[string]any{"policy_id": "p", "policy_version": "1"}}
		}
		env := &event.Envelope{EventID: "tr-7-" + typ, TraceID: "tr-7", TraceSeq: int64(seq), EventType: typ, OccurredAt: "2026-01-02T03:00:00Z",
			Source: event.Source{ProducerID: "agent", System: "s"}, Actor: event.Actor{ActorType: "agent", ActorID: "a"},
			IdempotencyKey: "k-" + typ, Payload: p}
		env.ApplyDefaults()
		if _, err := st.Append(ctx, "acme", env); err != nil {
			t.Fatal(err)
		}
	}
	envFor := func(token string) func(string) (string, bool) {
		vals := map[string]string{"DG_SERVER": hs.URL, "DG_TOKEN": token, "DG_TENANT": "acme"}
		return func(k string) (string, bool) { v, ok := vals[k]; return v, ok }
	}
	admin, reader := envFor("cli-admin-token"), envFor("cli-reader-token")

	code, out, errOut := runDG(t, admin, "workflows", "list")
	if code != 0 || !strings.Contains(out, "tr-7:exception:ex-7") || !strings.Contains(out, "1 open") {
		t.Fatalf("list: %d %q %q", code, out, errOut)
	}
	code, out, _ = runDG(t, admin, "workflows", "list", "-o", "json")
	var inbox struct {
		Items   []map[string]any `json:"items"`
		Summary map[string]any   `json:"summary"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &inbox) != nil || len(inbox.Items) != 1 || inbox.Summary["open_count"] != float64(1) {
		t.Fatalf("list -o json: %d %s", code, out)
	}
	code, out, _ = runDG(t, admin, "workflows", "show", "tr-7:exception:ex-7")
	if code != 0 || !strings.Contains(out, "requested") || !strings.Contains(out, "assignment") {
		t.Fatalf("show: %d %s", code, out)
	}
	// Refusals: reader role (2), missing reason (2), unknown item (2).
	if code, _, errOut := runDG(t, reader, "workflows", "act", "tr-7:exception:ex-7", "comment", "--note", "x"); code != 2 || !strings.Contains(errOut, "forbidden") {
		t.Errorf("reader act: %d %s", code, errOut)
	}
	if code, _, errOut := runDG(t, admin, "workflows", "act", "tr-7:exception:ex-7", "approve"); code != 2 || !strings.Contains(errOut, "approve requires a reason") {
		t.Errorf("approve without reason: %d %s", code, errOut)
	}
	if code, _, _ := runDG(t, admin, "workflows", "show", "nope"); code != 2 {
		t.Errorf("show unknown: %d", code)
	}
	code, out, errOut = runDG(t, admin, "workflows", "act", "tr-7:exception:ex-7", "approve", "--reason", "ok", "--evidence", "crm://x", "--idempotency-key", "cli-1", "-o", "json")
	var res map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("approve: %d %s %s", code, out, errOut)
	}
	if res["workflow"].(map[string]any)["status"] != "approved" || res["action"].(map[string]any)["appended_event_id"] == nil {
		t.Errorf("approve answer %v", res)
	}
	// The retried command is answered from the first answer.
	if code, out, _ := runDG(t, admin, "workflows", "act", "tr-7:exception:ex-7", "approve", "--reason", "ok", "--evidence", "crm://x", "--idempotency-key", "cli-1"); code != 0 || !strings.Contains(out, "status approved") {
		t.Errorf("retry: %d %s", code, out)
	}
	// The audit export (admin) is JSON with the whole history.
	code, out, errOut = runDG(t, admin, "workflows", "export", "tr-7:exception:ex-7")
	var exp map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &exp) != nil || exp["audit_summary"].(map[string]any)["closed?"] != true {
		t.Errorf("export: %d %s %s", code, out, errOut)
	}
	if code, _, _ := runDG(t, reader, "workflows", "export", "tr-7:exception:ex-7"); code != 2 {
		t.Errorf("export as reader: %d", code)
	}
	// A refused transition (already approved) is exit 2; no token is exit 2.
	if code, _, errOut := runDG(t, admin, "workflows", "act", "tr-7:exception:ex-7", "reject", "--reason", "no"); code != 2 || !strings.Contains(errOut, "already approved") {
		t.Errorf("reject approved: %d %s", code, errOut)
	}
	if code, _, _ := runDG(t, func(string) (string, bool) { return "", false }, "workflows", "list"); code != 2 {
		t.Errorf("no token: %d", code)
	}
}
