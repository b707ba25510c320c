package workflow_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/workflow"
)

func TestInboxOrderFiltersAndSummary(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	e.clock.Set(mustTime("2026-03-02T09:30:00Z"))
	add := func(trace, at, priority string) {
		e.start("default", trace, at)
		e.add("default", trace, event.TypeExceptionRequested, at, map[string]any{"exception_id": "ex-1", "reason": "r", "priority": priority,
			"policy": map[string]any{"policy_id": "p", "policy_version": "1"}})
	}
	add("tr-a", "2026-03-02T09:00:00Z", "low")
	add("tr-b", "2026-03-02T09:01:00Z", "URGENT")
	add("tr-c", "2026-03-02T09:02:00Z", "normal")
	add("tr-d", "2026-03-02T04:00:00Z", "low") // overdue since 08:00
	add("tr-e", "2026-03-02T09:00:00Z", "high")
	add("tr-f", "2026-03-02T09:00:00Z", "high") // same priority and time as e: workflow_id decides
	add("tr-g", "2026-03-02T09:00:00Z", "high")
	if _, err := act(e, "default", "tr-g:exception:ex-1", admin, workflow.ActionRequest{Action: "approve", Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	ids := func(f workflow.Filter) []string {
		t.Helper()
		in, err := e.svc.List(ctxT(t), "default", f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range in.Items {
			out = append(out, it.TraceID)
		}
		return out
	}
	eq := func(name string, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: %v, want %v", name, got, want)
			return
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: %v, want %v", name, got, want)
				return
			}
		}
	}
	open := workflow.Filter{OnlyOpen: true, Limit: 12}
	eq("default order", ids(open), "tr-d", "tr-b", "tr-e", "tr-f", "tr-c", "tr-a")
	f := open
	f.Limit = 2
	eq("limit", ids(f), "tr-d", "tr-b")
	f = open
	f.Priority = "urgent"
	eq("priority", ids(f), "tr-b")
	f = open
	f.OnlyOverdue = true
	eq("only overdue", ids(f), "tr-d")
	f = open
	f.Status = "escalated"
	eq("status", ids(f), "tr-d")
	f = open
	f.TraceID = "tr-c"
	eq("trace", ids(f), "tr-c")
	eq("all statuses", ids(workflow.Filter{Limit: 12}), "tr-d", "tr-b", "tr-e", "tr-f", "tr-g", "tr-c", "tr-a")
	in, err := e.svc.List(ctxT(t), "default", open)
	if err != nil {
		t.Fatal(err)
	}
	s := in.Summary
	if s.TotalCount != 7 || s.OpenCount != 6 || s.OverdueCount != 1 || s.EscalatedCount != 1 || s.ApprovedCount != 1 || s.RequestedCount != 5 {
		t.Errorf("summary %+v", s)
	}
	if s.NotificationCount != int64(e.count(`SELECT count(*) FROM dg_workflow_notifications`)) {
		t.Errorf("notification count %d", s.NotificationCount)
	}
	// Query parameters: lenient booleans and limits, strict priority.
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	pf, err := workflow.ParseFilter(get(map[string]string{"only_open": "0", "only_overdue": "yes", "limit": "500", "priority": "High"}))
	if err != nil || pf.OnlyOpen || pf.OnlyOverdue || pf.Limit != 50 || pf.Priority != "high" {
		t.Errorf("ParseFilter = %+v, %v", pf, err)
	}
	if pf, _ := workflow.ParseFilter(get(map[string]string{"limit": "x"})); pf.Limit != 12 || !pf.OnlyOpen {
		t.Errorf("defaults = %+v", pf)
	}
	if _, err := workflow.ParseFilter(get(map[string]string{"priority": "asap"})); workflow.ErrorCode(err) != "invalid_argument" {
		t.Errorf("bad priority: %v", err)
	}
}

// The detail shows the newest 12 notifications; the export returns all.
func TestExportReturnsAllNotifications(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	wid := e.openException("default", "tr-1")
	for i := 0; i < 14; i++ {
		e.clock.Advance(time.Second)
		if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "reassign", AssignedAccountID: fmt.Sprintf("acct-%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	d := e.get("default", wid)
	if len(d.Notifications) != 12 || d.Notifications[0].RecipientAccountID != "acct-13" {
		t.Fatalf("detail: %d notifications, newest to %q", len(d.Notifications), d.Notifications[0].RecipientAccountID)
	}
	exp, err := e.svc.Export(ctxT(t), "default", wid, 1)
	if err != nil {
		t.Fatal(err)
	}
	notes := exp["workflow_notifications"].([]any)
	sum := exp["audit_summary"].(map[string]any)
	if len(notes) != 15 || sum["notification_count"] != int64(15) || sum["action_count"] != 15 || sum["closed?"] != false {
		t.Errorf("export: %d notifications, summary %v", len(notes), sum)
	}
	if pg := exp["notifications_page"].(map[string]any); pg["next_page"] != nil || pg["total"] != int64(15) {
		t.Errorf("page %v", pg)
	}
	if _, err := e.svc.Export(ctxT(t), "default", "nope", 1); workflow.ErrorCode(err) != "not_found" {
		t.Errorf("export unknown: %v", err)
	}
}
