package workflow_test

import (
	"strings"
	"testing"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// Importing in many small batches (pipelined: batch k is applied while
// batch k-1 is written), with or without COPY, must store exactly what one
// big batch stores,
// including items created by one batch and changed by the next, items
// stored by an earlier refresh, malformed events and webhook deliveries.
func TestImportBatchSizeDoesNotChangeTheResult(t *testing.T) {
	hooks := []workflow.Webhook{{URL: "http://127.0.0.1:1/all"}, {URL: "http://127.0.0.1:1/approvals", Categories: []string{"approval", "failure"}}}
	small := newEnv(t, workflow.Config{ImportBatchSize: 2, Webhooks: hooks})
	big := newEnv(t, workflow.Config{ImportBatchSize: 5000, Webhooks: hooks})
	noCopy := newEnv(t, workflow.Config{ImportBatchSize: 3, Webhooks: hooks})
	workflow.DisableCopy(noCopy.svc)
	for _, e := range []*env{small, big, noCopy} {
		ctx := ctxT(t)
		e.start("default", "tr-1", t0)
		e.exception("default", "tr-1", "ex-1", t0, "discount above limit")
		e.start("default", "tr-2", t0)
		e.exception("default", "tr-2", "ex-2", t0, "urgent: quarter end")
		e.start("default", "tr-3", t0)
		// An earlier refresh stores some items; the next one upserts them.
		if _, err := e.svc.Refresh(ctx, "default"); err != nil {
			t.Fatal(err)
		}
		raw(e, "tr-1", event.TypeApprovalRecorded, "2026-03-02T09:05:00Z", map[string]any{"decision": "approved", "reason": "ok",
			"subject": map[string]any{"subject_type": "exception", "subject_id": "ex-1"}, "approver": map[string]any{"actor_type": "person", "actor_id": "finance"}})
		raw(e, "tr-1", event.TypeExceptionRequested, "2026-03-02T09:06:00Z", map[string]any{"exception_id": "ex-1"}) // re-request of a terminal item
		raw(e, "tr-3", event.TypeExceptionRequested, "2026-03-02T09:07:00Z", map[string]any{"exception_id": "ex-3", "reason": "first", "evidence": []any{"a"}})
		raw(e, "tr-3", event.TypeExceptionRequested, "2026-03-02T09:08:00Z", map[string]any{"exception_id": "ex-3", "reason": "second", "priority": "low"}) // same item, next batch
		raw(e, "tr-3", event.TypeExceptionRequested, "2026-03-02T09:09:00Z", map[string]any{"reason": "no id"})
		raw(e, "tr-2", event.TypeApprovalRecorded, "2026-03-02T09:10:00Z", map[string]any{"decision": "maybe",
			"subject": map[string]any{"subject_id": "ex-2"}})
		raw(e, "tr-2", event.TypeApprovalRecorded, "2026-03-02T09:11:00Z", map[string]any{"decision": "rejected", "rationale": "too deep",
			"subject": map[string]any{"subject_id": "ex-2"}, "evidence": []any{}})
		raw(e, "tr-3", event.TypeWorkflowReviewRequested, "2026-03-02T09:12:00Z", map[string]any{"template_id": "incident_triage",
			"priority": "Normal", "sla_hours": 6, "assignee": map[string]any{"role": "sre"}, "simulation": map[string]any{"runs": 3}})
		raw(e, "tr-3", event.TypeWorkflowReviewRequested, "2026-03-02T09:13:00Z", map[string]any{"template_id": "incident_triage",
			"assignee": map[string]any{"account_id": "acct-9"}, "reason": "again"})
		raw(e, "tr-1", event.TypeApprovalRecorded, "2026-03-02T09:14:00Z", map[string]any{"decision": "approved",
			"subject": map[string]any{"subject_type": "override", "subject_id": "tr-1:exception:ex-1"}})
		raw(e, "tr-4", event.TypeApprovalRecorded, "2026-03-02T09:15:00Z", map[string]any{"decision": "approved",
			"subject": map[string]any{"subject_id": "ex-4"}}) // born terminal
		raw(e, "tr-3", event.TypeApprovalRecorded, "not a time", map[string]any{"decision": "approved",
			"subject": map[string]any{"subject_id": "ex-3"}})
		res, err := e.svc.Refresh(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		if res.Imported != 9 || res.Failed != 3 {
			t.Errorf("imported %d, failed %d; want 9 and 3", res.Imported, res.Failed)
		}
		if res, err := e.svc.Refresh(ctx, "default"); err != nil || res.Imported+res.Failed != 0 {
			t.Fatalf("second refresh: %+v %v", res, err)
		}
	}
	for _, q := range []string{
		`SELECT to_jsonb(i)::text FROM dg_workflow_items i ORDER BY tenant_id, workflow_id`,
		`SELECT to_jsonb(a)::text FROM dg_workflow_actions a ORDER BY tenant_id, action_id`,
		`SELECT to_jsonb(n)::text FROM dg_workflow_notifications n ORDER BY tenant_id, dedupe_key`,
		`SELECT to_jsonb(d)::text FROM dg_workflow_deliveries d ORDER BY tenant_id, notification_id, target_url`,
		`SELECT to_jsonb(c)::text FROM dg_workflow_status_counts c ORDER BY tenant_id, status`,
		`SELECT last_log_seq::text FROM dg_workflow_runtime`,
	} {
		a, b, c := dump(t, small, q), dump(t, big, q), dump(t, noCopy, q)
		if a != b {
			t.Errorf("%s differs:\nbatch 2:\n%s\nbatch 5000:\n%s", q, a, b)
		}
		if c != b {
			t.Errorf("%s differs:\nbatch 3 without COPY:\n%s\nbatch 5000:\n%s", q, c, b)
		}
		if a == "" {
			t.Errorf("%s: no rows", q)
		}
	}
	if n := small.count(`SELECT count(*) FROM dg_workflow_items`); n != 5 {
		t.Errorf("%d items, want 5", n)
	}
}

// raw writes a managed event straight into the log (no schema check, so
// malformed events can be written too).
func raw(e *env, trace, typ, at string, payload map[string]any) {
	e.t.Helper()
	k := "default/" + trace
	seq := e.seqs[k]
	e.seqs[k] = seq + 1
	_, err := e.pool.Exec(ctxT(e.t), `INSERT INTO dg_event_log (log_seq, tenant_id, event_id, trace_id, trace_seq, event_type, occurred_at,
		recorded_at, producer_id, source_system, actor_type, actor_id, idempotency_key, schema_version, payload, payload_hash, event_hash, chain_hash)
		SELECT coalesce(max(log_seq), 0) + 1, 'default', $1 || '-' || $2::bigint, $1, $2::bigint, $3, $4, now(), 'agent', 'deal-desk', 'agent', 'agent-7',
			$1 || ':' || $2::bigint, 1, $5, 'h', 'h', 'h' FROM dg_event_log`, trace, seq, typ, at, payload)
	if err != nil {
		e.t.Fatal(err)
	}
}

func dump(t *testing.T, e *env, q string) string {
	t.Helper()
	rows, err := e.pool.Query(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

// The import cursor keeps imported events from being imported again; if
// it is ever rewound anyway, the COPY of their action rows meets a unique
// violation: that one refresh fails, COPY is turned off and the next
// refresh re-imports idempotently with ON CONFLICT.
func TestRewoundCursorHealsAfterOneFailedRefresh(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	ctx := ctxT(t)
	wid := e.openException("default", "tr-1")
	before := e.get("default", wid)
	if _, err := e.pool.Exec(ctx, `UPDATE dg_workflow_runtime SET last_log_seq = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Refresh(ctx, "default"); err == nil || !strings.Contains(err.Error(), "23505") {
		t.Fatalf("refresh over a rewound cursor: %v, want a unique violation", err)
	}
	res, err := e.svc.Refresh(ctx, "default")
	if err != nil || res.Imported != 1 {
		t.Fatalf("second refresh: %+v %v", res, err)
	}
	after := e.get("default", wid)
	if len(after.Actions) != len(before.Actions) || len(after.Notifications) != len(before.Notifications) || after.Item.Status != before.Item.Status {
		t.Errorf("re-import changed the item: %d/%d actions, %d/%d notifications, status %s/%s",
			len(after.Actions), len(before.Actions), len(after.Notifications), len(before.Notifications), after.Item.Status, before.Item.Status)
	}
}
