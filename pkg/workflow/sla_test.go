package workflow_test

import (
	"context"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// Deadline risk is notified once per due date: inside the warning window,
// not before it, not again on later sweeps, never once past due.
func TestDeadlineRiskOncePerDueDate(t *testing.T) {
	e := newEnv(t, workflow.Config{})
	wid := e.openException("default", "tr-1") // due 13:00
	rt := workflow.NewRuntime(e.svc, nil)
	t.Cleanup(rt.Close)
	e.clock.Set(mustTime("2026-03-02T12:29:59Z"))
	if err := rt.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := e.notes("default", wid, "deadline_risk"); n != 0 {
		t.Fatalf("%d deadline-risk notifications 30m01s before due", n)
	}
	for _, at := range []string{"2026-03-02T12:30:00Z", "2026-03-02T12:45:00Z", "2026-03-02T12:59:59.5Z"} {
		e.clock.Set(mustTime(at))
		if err := rt.Tick(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if n := e.notes("default", wid, "deadline_risk"); n != 1 { // the runtime alone, no read
			t.Fatalf("at %s after the tick: %d deadline-risk notifications, want 1", at, n)
		}
		e.get("default", wid) // reads refresh too
		if n := e.notes("default", wid, "deadline_risk"); n != 1 {
			t.Fatalf("at %s after a read: %d deadline-risk notifications, want 1", at, n)
		}
	}
	n := e.count(`SELECT count(*) FROM dg_workflow_notifications WHERE dedupe_key = $1`, "deadline_risk:"+wid+":2026-03-02T13:00:00Z")
	if n != 1 {
		t.Errorf("dedupe key not found")
	}
	// An item created already past due gets no deadline risk.
	e.start("default", "tr-old", "2026-03-01T00:00:00Z")
	e.exception("default", "tr-old", "ex-1", "2026-03-01T00:00:00Z", "old")
	e.get("default", "tr-old:exception:ex-1")
	if n := e.notes("default", "tr-old:exception:ex-1", "deadline_risk"); n != 0 {
		t.Errorf("overdue item got %d deadline-risk notifications", n)
	}
}

// The runtime escalates at the due time with nobody reading; the count
// and the previous assignment are recorded; escalated items are not
// escalated again.
func TestAutomaticEscalationWithoutReads(t *testing.T) {
	e := newEnv(t, workflow.Config{EscalationRole: "admin", EscalationAccountID: "duty-manager"})
	e.openException("default", "tr-1")
	wid := "tr-1:exception:ex-1"
	rt := workflow.NewRuntime(e.svc, nil)
	t.Cleanup(rt.Close)
	// Import and a reassignment before the due date.
	e.clock.Set(mustTime("2026-03-02T10:00:00Z"))
	if err := rt.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "reassign", AssignedAccountID: "bob", AssignedRole: "writer"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(mustTime("2026-03-02T13:00:00Z")) // exactly due: not yet overdue
	if err := rt.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := e.count(`SELECT count(*) FROM dg_workflow_items WHERE status = 'escalated'`); st != 0 {
		t.Fatal("escalated at the due instant, before it passed")
	}
	e.clock.Set(mustTime("2026-03-02T13:00:00.001Z"))
	if err := rt.Tick(ctxT(t)); err != nil { // no read between
		t.Fatal(err)
	}
	var status, acct, prevAcct, prevRole string
	var count int
	if err := e.pool.QueryRow(ctxT(t), `SELECT status, assigned_account_id, (metadata->>'escalation_count')::int,
		metadata->'previous_assignment'->>'assigned_account_id', metadata->'previous_assignment'->>'assigned_role'
		FROM dg_workflow_items WHERE workflow_id = $1`, wid).Scan(&status, &acct, &count, &prevAcct, &prevRole); err != nil {
		t.Fatal(err)
	}
	if status != "escalated" || acct != "duty-manager" || count != 1 || prevAcct != "bob" || prevRole != "writer" {
		t.Errorf("after the sweep: %s %s count=%d prev=%s/%s", status, acct, count, prevAcct, prevRole)
	}
	if n := e.count(`SELECT count(*) FROM dg_workflow_actions WHERE workflow_id = $1 AND action_type = 'escalate' AND actor_id = 'workflow-sla' AND actor_type = 'system'`, wid); n != 1 {
		t.Errorf("%d automatic escalate actions", n)
	}
	if n := e.count(`SELECT count(*) FROM dg_audit_log WHERE action = 'workflow_escalate' AND actor_id IS NULL AND target_id = $1`, wid); n != 1 {
		t.Errorf("%d audit entries of the automatic escalation", n)
	}
	for i := 0; i < 3; i++ {
		e.clock.Advance(time.Hour)
		if err := rt.Tick(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		e.get("default", wid)
	}
	if n := e.notes("default", wid, "escalation"); n != 1 {
		t.Errorf("%d escalation notifications, want 1 (escalated items are not re-escalated)", n)
	}
	d := e.get("default", wid)
	if d.Item.EscalationCount() != 1 || !d.Item.Overdue(e.clock.Now()) {
		t.Errorf("count %d overdue %v", d.Item.EscalationCount(), d.Item.Overdue(e.clock.Now()))
	}
	// request_change on an overdue item lets the next sweep escalate it
	// again, with the count incremented (A.7.4).
	if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "request_change", Reason: "need more"}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if d := e.get("default", wid); d.Item.Status != "escalated" || d.Item.EscalationCount() != 2 || e.notes("default", wid, "escalation") != 2 {
		t.Errorf("re-escalation: %s count %d", d.Item.Status, d.Item.EscalationCount())
	}
	// A claimed item after an escalation is not escalated again.
	if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "claim"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	if err := rt.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if d := e.get("default", wid); d.Item.Status != "in_review" || d.Item.EscalationCount() != 2 {
		t.Errorf("claimed item: %s count %d", d.Item.Status, d.Item.EscalationCount())
	}
}

// A process that imported and died before the sweep loses nothing: a new
// process on the same database sweeps, and nothing is duplicated.
func TestRestartBetweenImportAndSweep(t *testing.T) {
	pool := pgtest.New(t)
	c := newClock("2026-03-02T09:05:00Z")
	e1 := newEnvOn(t, pool, workflow.Config{}, c)
	for _, tr := range []string{"tr-1", "tr-2", "tr-3"} {
		e1.openException("default", tr)
	}
	if _, err := e1.svc.Refresh(ctxT(t), "default"); err != nil { // imports, nothing to sweep yet
		t.Fatal(err)
	}
	// "Restart": a new service and runtime, later, on the same database.
	c2 := newClock("2026-03-02T14:00:00Z")
	e2 := newEnvOn(t, pool, workflow.Config{}, c2)
	rt := workflow.NewRuntime(e2.svc, nil)
	t.Cleanup(rt.Close)
	for i := 0; i < 3; i++ {
		if err := rt.Tick(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if n := e2.count(`SELECT count(*) FROM dg_workflow_items WHERE status = 'escalated'`); n != 3 {
		t.Errorf("%d escalated items, want 3", n)
	}
	if n := e2.count(`SELECT count(*) FROM dg_workflow_actions`); n != 6 {
		t.Errorf("%d action rows, want 3 requested + 3 escalate", n)
	}
	if n := e2.count(`SELECT count(*) FROM dg_workflow_notifications`); n != 6 {
		t.Errorf("%d notifications, want 3 assignment + 3 escalation", n)
	}
	// The first process comes back with its stale clock: still nothing new.
	if _, err := e1.svc.Refresh(ctxT(t), "default"); err != nil {
		t.Fatal(err)
	}
	if n := e2.count(`SELECT count(*) FROM dg_workflow_actions`); n != 6 {
		t.Errorf("%d action rows after the old process refreshed", n)
	}
}

// One runtime leads a tenant; when it dies its lock is released and the
// other takes over.
func TestLeaderElectionAndTakeover(t *testing.T) {
	pool := pgtest.New(t)
	c := newClock(t0)
	e := newEnvOn(t, pool, workflow.Config{}, c)
	e.openException("default", "tr-1")
	a := workflow.NewRuntime(e.svc, nil)
	t.Cleanup(a.Close)
	b := workflow.NewRuntime(workflow.New(pool, e.st, workflow.Config{Now: c.Now}, workflow.Options{}), nil)
	t.Cleanup(b.Close)
	if err := a.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	_, la := a.Stats()
	_, lb := b.Stats()
	if len(la) != 1 || len(lb) != 0 {
		t.Fatalf("leaders: a=%v b=%v", la, lb)
	}
	a.Kill()
	c.Set(mustTime("2026-03-02T14:00:00Z"))
	if err := b.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sb, lb := b.Stats()
	if len(lb) != 1 || sb.Escalated != 1 {
		t.Errorf("after takeover: b leads %v, escalated %d", lb, sb.Escalated)
	}
	// Run stops on cancel and releases the lock.
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := a.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, la := a.Stats(); len(la) != 1 {
		t.Errorf("a did not take the released lock: %v", la)
	}
}

// Concurrent refreshes from several services (as several dg processes
// would run them) import and escalate each item exactly once, and the
// trigger-kept status counts match the items.
func TestConcurrentRefreshesDoNotDuplicate(t *testing.T) {
	pool := pgtest.New(t)
	c := newClock("2026-03-02T09:05:00Z")
	e := newEnvOn(t, pool, workflow.Config{}, c)
	for i := 0; i < 20; i++ {
		e.openException("default", "tr-"+string(rune('a'+i)))
	}
	c.Set(mustTime("2026-03-02T15:00:00Z"))
	svcs := []*workflow.Service{e.svc, workflow.New(pool, e.st, workflow.Config{Now: c.Now}, workflow.Options{})}
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		go func(g int) {
			svc := svcs[g%2]
			var err error
			if g%3 == 0 {
				_, err = svc.List(ctxT(t), "default", workflow.Filter{OnlyOpen: true, Limit: 50})
			} else {
				_, err = svc.Refresh(ctxT(t), "default")
			}
			errs <- err
		}(g)
	}
	for g := 0; g < 16; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := e.count(`SELECT count(*) FROM dg_workflow_actions WHERE action_type = 'escalate'`); n != 20 {
		t.Errorf("%d escalate actions, want 20", n)
	}
	if n := e.count(`SELECT count(*) FROM dg_workflow_notifications WHERE category = 'escalation'`); n != 20 {
		t.Errorf("%d escalation notifications, want 20", n)
	}
	in, err := e.svc.List(ctxT(t), "default", workflow.Filter{OnlyOpen: true, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	real := e.count(`SELECT count(*) FROM dg_workflow_items WHERE status = 'escalated'`)
	if in.Summary.EscalatedCount != int64(real) || in.Summary.OpenCount != 20 || in.Summary.TotalCount != 20 || in.Summary.RequestedCount != 0 {
		t.Errorf("summary %+v, real escalated %d", in.Summary, real)
	}
	if len(in.Items) != 20 || !in.Items[0].Overdue(c.Now()) {
		t.Errorf("inbox %d items", len(in.Items))
	}
}

// The runtime follows the log: a commit signal (the store's Subscribe)
// makes it import at once, long before the next sweep tick.
func TestRuntimeImportsOnCommit(t *testing.T) {
	e := newEnv(t, workflow.Config{SweepInterval: time.Hour})
	wake, unsubscribe := e.st.Subscribe()
	rt := workflow.NewRuntime(e.svc, wake)
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() {
		cancel()
		unsubscribe()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(100 * time.Millisecond) // the first tick ran on an empty log
	e.openException("default", "tr-1")
	deadline := time.Now().Add(10 * time.Second)
	for e.count(`SELECT count(*) FROM dg_workflow_items`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the runtime did not import after the commit signal")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := rt.Stats(); st.Imported != 1 {
		t.Errorf("stats %+v", st)
	}
}

// When the leader's lock session dies (its backend is terminated, as when
// a process or its connection dies), the lock is released, another
// runtime takes the tenant, and the old leader notices and stands down.
func TestLeaderSessionLossHandsOver(t *testing.T) {
	pool := pgtest.New(t)
	c := newClock(t0)
	e := newEnvOn(t, pool, workflow.Config{}, c)
	e.openException("default", "tr-1")
	a := workflow.NewRuntime(e.svc, nil)
	t.Cleanup(a.Close)
	b := workflow.NewRuntime(workflow.New(pool, e.st, workflow.Config{Now: c.Now}, workflow.Options{}), nil)
	t.Cleanup(b.Close)
	if err := a.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1`, int64(0x64677766)); n != 1 {
		t.Fatalf("terminated %d lock sessions", n)
	}
	// pg_terminate_backend only signals the backend; its advisory locks are
	// released when that process has exited. Wait for that (bounded), so
	// the takeover below is tested against a lock that is really free.
	deadline := time.Now().Add(10 * time.Second)
	for e.count(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1`, int64(0x64677766)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the terminated session still holds its advisory lock after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Tick(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, lb := b.Stats(); len(lb) != 1 {
		t.Fatalf("b did not take over: %v", lb)
	}
	_ = a.Tick(ctxT(t))
	if _, la := a.Stats(); len(la) != 0 {
		t.Errorf("a still believes it leads %v", la)
	}
}
