package workflow_test

import (
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/workflow"
)

func TestImportExceptionRequested(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	e.clock.Set(mustTime("2026-03-02T09:30:00Z"))
	wid := e.openException("default", "tr-1")
	d := e.get("default", wid)
	it := d.Item
	if it.Status != "requested" || it.Kind != "exception_review" || it.Name != "deal_approval" || it.Title != "Deal tr-1" {
		t.Errorf("item = %+v", it)
	}
	if it.SubjectType != "exception" || it.SubjectID != "ex-1" || it.AssignedRole != "admin" || it.Priority != "high" {
		t.Errorf("subject/assignment/priority = %s %s %s %s", it.SubjectType, it.SubjectID, it.AssignedRole, it.Priority)
	}
	if !it.SLADueAt.Equal(mustTime(t0).Add(4*time.Hour)) || !it.RequestedAt.Equal(mustTime(t0)) {
		t.Errorf("requested %v due %v", it.RequestedAt, it.SLADueAt)
	}
	if it.PolicyID != "discount_limit" || it.CurrentReason != "discount above limit" || it.CreatedFromEventID != "tr-1-1" {
		t.Errorf("policy/reason/created_from = %s %s %s", it.PolicyID, it.CurrentReason, it.CreatedFromEventID)
	}
	if len(d.Actions) != 1 || d.Actions[0].Type != "requested" || d.Actions[0].ActionID != "wfa:event:tr-1-1" || d.Actions[0].SourceEventID != "tr-1-1" {
		t.Fatalf("actions = %+v", d.Actions)
	}
	if len(d.Notifications) != 1 || d.Notifications[0].Category != "assignment" || d.Notifications[0].DedupeKey != "assignment:"+wid+":admin" {
		t.Fatalf("notifications = %+v", d.Notifications)
	}
	j := it.JSON(e.clock.Now())
	if j["sla_due_at"] != "2026-03-02T13:00:00Z" || j["overdue"] != false {
		t.Errorf("json due %v overdue %v", j["sla_due_at"], j["overdue"])
	}
	// Re-reading imports nothing new.
	d2 := e.get("default", wid)
	if len(d2.Actions) != 1 || len(d2.Notifications) != 1 {
		t.Errorf("a second read duplicated rows: %d actions, %d notifications", len(d2.Actions), len(d2.Notifications))
	}
	// "urgent" in the reason makes the item urgent (rule P).
	e.start("default", "tr-2", t0)
	e.exception("default", "tr-2", "ex-9", t0, "URGENT: quarter closes")
	if d := e.get("default", "tr-2:exception:ex-9"); d.Item.Priority != "urgent" {
		t.Errorf("priority = %s, want urgent", d.Item.Priority)
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Every action through the service, with its resulting status and its
// record: decisions as ApprovalRecorded events, the rest as action rows.
func TestActionsApply(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	e.clock.Set(mustTime("2026-03-02T09:10:00Z"))
	cases := []struct {
		name   string
		steps  []workflow.ActionRequest
		status string
		event  bool
	}{
		{"approve", []workflow.ActionRequest{{Action: "approve", Reason: "within budget"}}, "approved", true},
		{"reject", []workflow.ActionRequest{{Action: "Reject", Reason: "too deep"}}, "rejected", true},
		{"request_change", []workflow.ActionRequest{{Action: "request_change", Reason: "need CFO note"}}, "changes_requested", false},
		{"comment", []workflow.ActionRequest{{Action: "comment", Note: "looking"}}, "requested", false},
		{"reassign", []workflow.ActionRequest{{Action: "reassign", AssignedAccountID: "alice"}}, "requested", false},
		{"escalate", []workflow.ActionRequest{{Action: "escalate", Reason: "customer waiting"}}, "escalated", false},
		{"override", []workflow.ActionRequest{{Action: "override", Reason: "CEO call", ConfirmText: "OVERRIDE TR-OVERRIDE:EXCEPTION:EX-1"}}, "overridden", true},
		{"claim", []workflow.ActionRequest{{Action: "claim"}}, "in_review", false},
		{"release", []workflow.ActionRequest{{Action: "claim"}, {Action: "release"}}, "requested", false},
		{"approve after changes", []workflow.ActionRequest{{Action: "request_change", Reason: "x"}, {Action: "approve", Reason: "fixed"}}, "approved", true},
		{"comment on terminal", []workflow.ActionRequest{{Action: "reject", Reason: "no"}, {Action: "comment", Reason: "noted"}}, "rejected", true},
	}
	for _, tc := range cases {
		trace := "tr-" + strings.ReplaceAll(tc.name, " ", "-")
		wid := e.openException("default", trace)
		var res *workflow.ActionResult
		for _, step := range tc.steps {
			var err error
			if res, err = act(e, "default", wid, admin, step); err != nil {
				t.Fatalf("%s: %s: %v", tc.name, step.Action, err)
			}
		}
		if res.Item.Status != tc.status {
			t.Errorf("%s: status %s, want %s", tc.name, res.Item.Status, tc.status)
		}
		approvals := e.count(`SELECT count(*) FROM dg_event_log WHERE trace_id = $1 AND event_type = 'ApprovalRecorded'`, trace)
		if (approvals > 0) != tc.event {
			t.Errorf("%s: %d ApprovalRecorded events, want event=%v", tc.name, approvals, tc.event)
		}
		if tc.event && res.AppendedEventID == "" && tc.steps[len(tc.steps)-1].Action != "comment" {
			t.Errorf("%s: no appended_event_id", tc.name)
		}
		d := e.get("default", wid)
		if got := len(d.Actions); got != 1+len(tc.steps) {
			t.Errorf("%s: %d action rows, want %d", tc.name, got, 1+len(tc.steps))
		}
	}
	// Details of a few effects.
	d := e.get("default", "tr-override:exception:ex-1")
	if d.Item.CurrentDecision != "override_approved" || d.Item.SubjectType != "override" || d.Item.SubjectID != "tr-override:exception:ex-1" || d.Item.Kind != "exception_review" {
		t.Errorf("override item = %+v", d.Item)
	}
	d = e.get("default", "tr-claim:exception:ex-1")
	if d.Item.AssignedAccountID != "ops-admin" {
		t.Errorf("claim assigned %q", d.Item.AssignedAccountID)
	}
	d = e.get("default", "tr-release:exception:ex-1")
	if d.Item.AssignedAccountID != "" || d.Item.AssignedRole != "admin" {
		t.Errorf("release left %q/%q", d.Item.AssignedAccountID, d.Item.AssignedRole)
	}
	d = e.get("default", "tr-escalate:exception:ex-1")
	if d.Item.EscalationCount() != 1 || d.Item.Metadata["escalation_reason"] != "customer waiting" {
		t.Errorf("escalate metadata = %v", d.Item.Metadata)
	}
	d = e.get("default", "tr-approve:exception:ex-1")
	last := d.Actions[len(d.Actions)-1]
	if last.Type != "approve" || last.ActorID != "ops-admin" || !strings.HasPrefix(last.SourceEventID, "tr-approve-approval-recorded-2-") {
		t.Errorf("approve action = %+v", last)
	}
	if e.notes("default", d.Item.WorkflowID, "approval") != 1 {
		t.Error("approve produced no approval notification")
	}
}

// Refused transitions through the service, with their errors, leave the
// item untouched and write no action row.
func TestRefusedTransitionsThroughService(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	wid := e.openException("default", "tr-1")
	if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "approve", Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []workflow.ActionRequest{
		{Action: "approve", Reason: "again"}, {Action: "reject", Reason: "r"}, {Action: "request_change", Reason: "r"},
		{Action: "reassign", AssignedRole: "writer"}, {Action: "escalate", Reason: "r"},
		{Action: "override", Reason: "r", ConfirmText: workflow.OverridePhrase(wid)}, {Action: "claim"}, {Action: "release"},
	} {
		_, err := act(e, "default", wid, admin, a)
		if code(err) != "invalid_argument" || !strings.Contains(err.Error(), "Workflow "+wid+" is already approved") {
			t.Errorf("%s on approved: %v", a.Action, err)
		}
	}
	wid2 := e.openException("default", "tr-2")
	if _, err := act(e, "default", wid2, admin, workflow.ActionRequest{Action: "escalate", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := act(e, "default", wid2, admin, workflow.ActionRequest{Action: "escalate", Reason: "again"}); err == nil || !strings.Contains(err.Error(), "already escalated") {
		t.Errorf("escalate twice: %v", err)
	}
	if n := len(e.get("default", wid).Actions); n != 2 {
		t.Errorf("refused actions wrote rows: %d actions", n)
	}
	if _, err := act(e, "default", "tr-1:exception:nope", admin, workflow.ActionRequest{Action: "comment", Note: "x"}); code(err) != "not_found" {
		t.Errorf("unknown item: %v", err)
	}
}

func TestPermissionsPerAction(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	reqs := map[string]workflow.ActionRequest{
		"approve": {Action: "approve", Reason: "r"}, "reject": {Action: "reject", Reason: "r"},
		"request_change": {Action: "request_change", Reason: "r"}, "comment": {Action: "comment", Note: "n"},
		"reassign": {Action: "reassign", AssignedRole: "writer"}, "claim": {Action: "claim"},
		"escalate": {Action: "escalate", Reason: "r"}, "override": {Action: "override", Reason: "r"},
	}
	perms := []string{"workflow_review", "workflow_assign", "workflow_escalate", "workflow_override", "workflow_export"}
	n := 0
	for a, req := range reqs {
		for _, p := range perms {
			n++
			trace := "tr-" + a + "-" + p
			wid := e.openException("default", trace)
			if req.Action == "override" {
				req.ConfirmText = workflow.OverridePhrase(wid)
			}
			c := &workflow.Caller{AccountID: "acct", Permissions: []string{p}}
			_, err := act(e, "default", wid, c, req)
			allowed := workflow.ActionPermission[a] == p
			switch {
			case allowed && err != nil:
				t.Errorf("%s with %s: %v", a, p, err)
			case !allowed && (code(err) != "forbidden" || !strings.Contains(err.Error(), "Service account lacks "+workflow.ActionPermission[a]+" permission")):
				t.Errorf("%s with %s: %v, want forbidden", a, p, err)
			}
		}
	}
	// No account at all is forbidden too.
	if _, err := act(e, "default", "x", nil, workflow.ActionRequest{Action: "comment", Note: "n"}); code(err) != "forbidden" {
		t.Errorf("no caller: %v", err)
	}
}

func TestReasonsRequiredAndOverridePhrase(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	wid := e.openException("default", "tr-1")
	for _, a := range []string{"approve", "reject", "request_change", "escalate", "override"} {
		_, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: a, Reason: "  ", ConfirmText: workflow.OverridePhrase(wid)})
		if code(err) != "invalid_argument" || !strings.Contains(err.Error(), a+" requires a reason") {
			t.Errorf("%s without reason: %v", a, err)
		}
	}
	if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "comment"}); err == nil || !strings.Contains(err.Error(), "Comment note is required") {
		t.Errorf("comment without note: %v", err)
	}
	if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "reassign"}); err == nil || !strings.Contains(err.Error(), "reassign requires") {
		t.Errorf("reassign without target: %v", err)
	}
	if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "comment", Note: "n", Evidence: "not a list"}); err == nil || !strings.Contains(err.Error(), "evidence must be a list") {
		t.Errorf("evidence not a list: %v", err)
	}
	for _, phrase := range []string{"", "override " + wid, "OVERRIDE " + wid, "OVERRIDE TR-1:EXCEPTION:EX-1 "} {
		_, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "override", Reason: "r", ConfirmText: phrase})
		if code(err) != "invalid_argument" || !strings.Contains(err.Error(), `"OVERRIDE TR-1:EXCEPTION:EX-1"`) {
			t.Errorf("phrase %q: %v", phrase, err)
		}
	}
	if e.count(`SELECT count(*) FROM dg_event_log WHERE event_type = 'ApprovalRecorded'`) != 0 {
		t.Error("a refused action appended an event")
	}
	res, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "override", Reason: "r", ConfirmText: "OVERRIDE TR-1:EXCEPTION:EX-1"})
	if err != nil || res.Item.Status != "overridden" {
		t.Fatalf("override with the phrase: %v", err)
	}
}

// A retried action with the same Idempotency-Key is applied once and gets
// the first answer; a different request under the key is a conflict.
func TestIdempotentActionRetries(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	wid := e.openException("default", "tr-1")
	req := workflow.ActionRequest{Action: "comment", Note: "first look", IdempotencyKey: "k-1"}
	r1, err := act(e, "default", wid, admin, req)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := act(e, "default", wid, admin, req)
	if err != nil || !r2.Replayed {
		t.Fatalf("retry: %v replayed=%v", err, r2 != nil && r2.Replayed)
	}
	if len(e.get("default", wid).Actions) != 2 {
		t.Errorf("retry applied the comment twice")
	}
	if r1.JSON()["action"].(map[string]any)["outcome"] != r2.JSON()["action"].(map[string]any)["outcome"] {
		t.Error("retry answer differs")
	}
	req.Note = "something else"
	if _, err := act(e, "default", wid, admin, req); code(err) != "idempotency_conflict" {
		t.Errorf("same key, other body: %v", err)
	}
	// A retried approve appends one event.
	ap := workflow.ActionRequest{Action: "approve", Reason: "ok", IdempotencyKey: "k-approve"}
	a1, err := act(e, "default", wid, admin, ap)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := act(e, "default", wid, admin, ap)
	if err != nil {
		t.Fatalf("approve retry: %v", err)
	}
	if e.count(`SELECT count(*) FROM dg_event_log WHERE event_type = 'ApprovalRecorded'`) != 1 {
		t.Error("approve retry appended a second event")
	}
	id1 := a1.JSON()["action"].(map[string]any)["appended_event_id"]
	id2 := a2.JSON()["action"].(map[string]any)["appended_event_id"]
	if id1 == nil || id1 != id2 {
		t.Errorf("appended ids %v / %v", id1, id2)
	}
	// Another account's key space is separate.
	other := &workflow.Caller{AccountID: "other", Permissions: []string{"*"}}
	if _, err := act(e, "default", wid, other, workflow.ActionRequest{Action: "comment", Note: "n", IdempotencyKey: "k-1"}); err != nil {
		t.Errorf("other account with the same key: %v", err)
	}
}

// Approving an item whose trace is finished is refused up front with a
// conflict and a failure notification (the reference fails in the append).
func TestDecisionOnFinishedTraceIsConflict(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	wid := e.openException("default", "tr-1")
	e.add("default", "tr-1", event.TypeTraceFinished, t0, map[string]any{"outcome": "success"})
	_, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "approve", Reason: "late", RequestID: "req-1"})
	if code(err) != "conflict" || !strings.Contains(err.Error(), "already finished") {
		t.Fatalf("approve on finished trace: %v", err)
	}
	if e.notes("default", wid, "failure") != 1 {
		t.Error("no failure notification")
	}
	if n := e.count(`SELECT count(*) FROM dg_workflow_notifications WHERE dedupe_key = $1`, "failure:"+wid+":approve:req-1"); n != 1 {
		t.Errorf("failure dedupe key missing (%d)", n)
	}
	if e.get("default", wid).Item.Status != "requested" {
		t.Error("item changed")
	}
	// Non-decision actions still work on finished traces.
	if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "request_change", Reason: "r"}); err != nil {
		t.Errorf("request_change on finished trace: %v", err)
	}
}

// A malformed managed event is recorded as a failure and skipped; reads
// keep working and the cursor moves past it.
func TestMalformedManagedEventIsSkipped(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	wid := e.openException("default", "tr-1")
	bad := e.add("default", "tr-1", event.TypeApprovalRecorded, t0, map[string]any{"approval_id": "a1",
		"subject":  map[string]any{"subject_type": "exception", "subject_id": "ex-1"},
		"approver": map[string]any{"actor_type": "person", "actor_id": "p"}, "decision": "maybe"})
	d := e.get("default", wid)
	if d.Item.Status != "requested" {
		t.Errorf("status %s", d.Item.Status)
	}
	if e.notes("default", wid, "failure") != 1 {
		t.Error("no failure notification for the malformed event")
	}
	if c := e.count(`SELECT last_log_seq FROM dg_workflow_runtime WHERE tenant_id = 'default'`); int64(c) != bad.LogSeq {
		t.Errorf("cursor %d, want %d", c, bad.LogSeq)
	}
	// The next valid event is imported.
	e.add("default", "tr-1", event.TypeApprovalRecorded, t0, map[string]any{"approval_id": "a2",
		"subject":  map[string]any{"subject_type": "exception", "subject_id": "ex-1"},
		"approver": map[string]any{"actor_type": "person", "actor_id": "p"}, "decision": "approved"})
	if st := e.get("default", wid).Item.Status; st != "approved" {
		t.Errorf("status after a valid approval %s", st)
	}
}

// Two tenants with the same trace and subject ids keep separate items,
// actions and notifications.
func TestTenantsDoNotCollide(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	widA := e.openException("acme", "tr-1")
	widB := e.openException("globex", "tr-1")
	if widA != widB {
		t.Fatal("ids differ")
	}
	if _, err := act(e, "acme", widA, admin, workflow.ActionRequest{Action: "approve", Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	a, b := e.get("acme", widA), e.get("globex", widB)
	if a.Item.Status != "approved" || b.Item.Status != "requested" {
		t.Errorf("acme %s globex %s", a.Item.Status, b.Item.Status)
	}
	if len(a.Actions) != 2 || len(b.Actions) != 1 || len(b.Notifications) != 1 {
		t.Errorf("acme %d actions, globex %d actions %d notes", len(a.Actions), len(b.Actions), len(b.Notifications))
	}
	in, err := e.svc.List(ctxT(t), "globex", workflow.Filter{OnlyOpen: true, Limit: 12})
	if err != nil || len(in.Items) != 1 || in.Summary.TotalCount != 1 || in.Summary.ApprovedCount != 0 {
		t.Errorf("globex inbox %v %+v", err, in.Summary)
	}
}

// Concurrent decisions on one item, from two services (as from two dg
// processes): exactly one is recorded, the other is refused.
func TestConcurrentDecisionsRecordOne(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	wid := e.openException("default", "tr-1")
	other := workflow.New(e.pool, e.st, workflow.Config{Now: e.clock.Now}, workflow.Options{})
	type out struct{ err error }
	results := make(chan out, 2)
	go func() {
		_, err := e.svc.Act(ctxT(t), "default", wid, admin, workflow.ActionRequest{Action: "approve", Reason: "yes"})
		results <- out{err}
	}()
	go func() {
		_, err := other.Act(ctxT(t), "default", wid, admin, workflow.ActionRequest{Action: "reject", Reason: "no"})
		results <- out{err}
	}()
	var ok, refused int
	for i := 0; i < 2; i++ {
		r := <-results
		switch {
		case r.err == nil:
			ok++
		case strings.Contains(r.err.Error(), "is already"):
			refused++
		default:
			t.Errorf("unexpected error: %v", r.err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Errorf("%d recorded, %d refused", ok, refused)
	}
	if n := e.count(`SELECT count(*) FROM dg_event_log WHERE event_type = 'ApprovalRecorded'`); n != 1 {
		t.Errorf("%d ApprovalRecorded events, want 1", n)
	}
}
