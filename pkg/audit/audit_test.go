package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/audit"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestRecordAndList(t *testing.T) {
	pool := pgtest.New(t)
	var logs bytes.Buffer
	l := audit.New(pool, slog.New(slog.NewJSONHandler(&logs, nil)))
	ctx := context.Background()
	before := time.Now().Add(-time.Minute)
	entries := []audit.Entry{
		{Tenant: "t1", ActorID: "admin-main", Action: "start_replay", Outcome: audit.Accepted, TargetType: "replay", TargetID: "replay-1",
			Reason: "nightly catch-up", RequestID: "req-1", Details: map[string]any{"mode": "catch_up", "projection": "all"}},
		{Tenant: "t1", ActorID: "writer-main", Action: "approve", Outcome: audit.Rejected, TargetType: "workflow", TargetID: "wf:1",
			Reason: "Service account lacks workflow_review permission", RequestID: "req-2"},
		{Tenant: "t2", Action: "escalate", Outcome: audit.Accepted, ActorType: "scheduler", TargetType: "workflow", TargetID: "wf:2"},
	}
	for _, e := range entries {
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.List(ctx, audit.Query{Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Action != "start_replay" || got[1].Outcome != audit.Rejected {
		t.Fatalf("t1 entries: %+v", got)
	}
	e := got[0]
	if e.ActorID != "admin-main" || e.ActorType != "service_account" || e.TargetID != "replay-1" || e.Reason != "nightly catch-up" ||
		e.RequestID != "req-1" || e.Details["mode"] != "catch_up" || e.At.Before(before) || e.ID == 0 {
		t.Fatalf("entry: %+v", e)
	}
	got, _ = l.List(ctx, audit.Query{Tenant: "t2"})
	if len(got) != 1 || got[0].ActorID != "" || got[0].ActorType != "scheduler" {
		t.Fatalf("automatic entry: %+v", got)
	}
	got, _ = l.List(ctx, audit.Query{Tenant: "t1", Action: "approve"})
	if len(got) != 1 || got[0].TargetID != "wf:1" {
		t.Fatalf("filter by action: %+v", got)
	}

	// Log lines: audit_<action>_<outcome>, warning on rejection.
	var sawAccepted, sawRejected bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch m["msg"] {
		case "audit_start_replay_accepted":
			sawAccepted = m["level"] == "INFO" && m["request_id"] == "req-1" && m["account_id"] == "admin-main" && m["tenant_id"] == "t1"
		case "audit_approve_rejected":
			sawRejected = m["level"] == "WARN"
		}
	}
	if !sawAccepted || !sawRejected {
		t.Fatalf("log lines:\n%s", logs.String())
	}

	// The table is append-only.
	for _, stmt := range []string{`UPDATE dg_audit_log SET reason = 'x'`, `DELETE FROM dg_audit_log`, `TRUNCATE dg_audit_log`} {
		if _, err := pool.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only guard", stmt, err)
		}
	}

	// Bad entries are refused before anything is written.
	if err := l.Record(ctx, audit.Entry{Tenant: "t1", Outcome: audit.Accepted}); err == nil {
		t.Error("entry without action accepted")
	}
	if err := l.Record(ctx, audit.Entry{Tenant: "t1", Action: "x", Outcome: "maybe"}); err == nil {
		t.Error("entry with unknown outcome accepted")
	}
}
