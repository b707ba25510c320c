package workflow_test

import (
	"testing"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// The studio's dry run: default template, signals, priority, precedents
// (summaries inserted as the projector would write them), and starting a
// review once.
func TestStudioOverviewAndStartReview(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	e.start("default", "tr-1", t0)
	e.add("default", "tr-1", event.TypeTraceFinished, t0, map[string]any{"outcome": "denied"})
	for _, row := range [][]string{{"tr-p1", "denied"}, {"tr-p2", "approved"}, {"tr-other", "denied"}} {
		entity := "opp-tr-1"
		if row[0] == "tr-other" {
			entity = "opp-elsewhere"
		}
		if _, err := e.pool.Exec(ctxT(t), `INSERT INTO dg_trace_summary (tenant_id, trace_id, workflow, title, primary_entity_type, primary_entity_id,
			outcome, started_at, finished_at, event_count, last_log_seq) VALUES ('default', $1, 'deal_approval', 'Deal ' || $1, 'opportunity', $3, $2,
			'2026-03-01T00:00:00Z', '2026-03-01T01:00:00Z', 2, 1)`, row[0], row[1], entity); err != nil {
			t.Fatal(err)
		}
	}
	ov, err := e.svc.TraceOverview(ctxT(t), "default", "tr-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if ov.Template.TemplateID != "incident_triage" {
		t.Errorf("template %s, want incident_triage for an unfavorable outcome", ov.Template.TemplateID)
	}
	hits := ov.Data["precedent_preview"].([]map[string]any)
	if len(hits) != 1 || hits[0]["trace_id"] != "tr-p1" {
		t.Errorf("precedents %v, want the finished same-entity trace with the same outcome", hits)
	}
	sim := ov.Data["simulation"].(map[string]any)
	signals := sim["risk_signals"].([]string)
	if len(signals) != 1 || signals[0] != "unfavorable outcome" || sim["priority"] != "urgent" {
		t.Errorf("simulation %v", sim)
	}
	if ov.Draft["workflow_id"] != "tr-1:trace_review:incident_triage" || ov.Draft["sla_hours"] != 2 {
		t.Errorf("draft %v", ov.Draft)
	}
	if _, err := e.svc.TraceOverview(ctxT(t), "default", "nope", ""); workflow.ErrorCode(err) != "not_found" {
		t.Errorf("unknown trace: %v", err)
	}
	// A finished trace cannot get a review: conflict plus a failure notification.
	_, err = e.svc.StartReview(ctxT(t), "default", "tr-1", admin, "", "look", "req-9")
	if workflow.ErrorCode(err) != "conflict" {
		t.Fatalf("start review on a finished trace: %v", err)
	}
	if e.notes("default", "tr-1:trace_review:incident_triage", "failure") != 1 {
		t.Error("no failure notification")
	}
	// An active trace gets one review; asking again returns it.
	e.start("default", "tr-2", t0)
	r1, err := e.svc.StartReview(ctxT(t), "default", "tr-2", admin, "precedent_gap_review", "check precedents", "")
	if err != nil || !r1.Created || r1.Item.Kind != "incident_review" || r1.Item.AssignedRole != "writer" {
		t.Fatalf("start review: %v %+v", err, r1)
	}
	if !r1.Item.SLADueAt.Equal(mustTime(t0).Add(6 * 60 * 60 * 1e9)) {
		t.Errorf("due %v, want the template's 6 hours after the request", r1.Item.SLADueAt)
	}
	r2, err := e.svc.StartReview(ctxT(t), "default", "tr-2", admin, "precedent_gap_review", "again", "")
	if err != nil || r2.Created || r2.Item.WorkflowID != r1.Item.WorkflowID {
		t.Errorf("second start: %v %+v", err, r2)
	}
	if n := e.count(`SELECT count(*) FROM dg_event_log WHERE event_type = 'WorkflowReviewRequested'`); n != 1 {
		t.Errorf("%d review requests appended", n)
	}
	reviewer := &workflow.Caller{AccountID: "r", Permissions: []string{"workflow_review"}}
	if _, err := e.svc.StartReview(ctxT(t), "default", "tr-2", reviewer, "", "x", ""); workflow.ErrorCode(err) != "forbidden" {
		t.Errorf("without workflow_assign: %v", err)
	}
	if _, err := e.svc.StartReview(ctxT(t), "default", "tr-2", admin, "", " ", ""); workflow.ErrorCode(err) != "invalid_argument" {
		t.Errorf("without reason: %v", err)
	}
}
