package seed_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/internal/fixtures"
	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/seed"
	"github.com/decisiongraph/dg/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openStore(t *testing.T, pool *pgxpool.Pool) *store.Store {
	t.Helper()
	st, err := store.New(context.Background(), pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

var at = time.Date(2030, 5, 14, 9, 30, 0, 0, time.UTC)

func statusOf(rep *seed.Report) map[string]string {
	out := map[string]string{}
	for _, w := range rep.Workflows {
		out[w.WorkflowID] = w.Status
	}
	return out
}

func TestSeedReleaseDemoCounts(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	st := openStore(t, pool)
	rep, err := seed.Run(ctx, st, seed.Options{Tenant: "release-demo", At: at})
	if err != nil {
		t.Fatal(err)
	}
	if rep.EventCount != seed.TotalEvents || rep.Appended != seed.TotalEvents || rep.AlreadyPresent != 0 {
		t.Fatalf("events: count %d appended %d present %d, want %d", rep.EventCount, rep.Appended, rep.AlreadyPresent, seed.TotalEvents)
	}
	// The reference dataset's 22 events are in the log under their ids.
	if n := count(t, pool, `SELECT count(*) FROM dg_event_log WHERE tenant_id = 'release-demo' AND trace_id <> $1`, seed.AtRiskTrace); n != seed.DatasetEvents {
		t.Fatalf("dataset events = %d, want 22", n)
	}
	want := map[string]string{
		seed.PrecedentWorkflow: "approved", seed.IncidentException: "rejected",
		seed.IncidentWorkflow: "escalated", seed.LiveWorkflow: "escalated", seed.AtRiskWorkflow: "requested",
	}
	if got := statusOf(rep); !reflect.DeepEqual(got, want) {
		t.Fatalf("workflow states = %v, want %v", got, want)
	}
	// Overdue first: the two escalated reviews lead the inbox.
	ids := rep.Inbox["item_ids"].([]string)
	if ids[0] != seed.IncidentWorkflow || ids[1] != seed.LiveWorkflow {
		t.Fatalf("inbox order = %v", ids)
	}
	if rep.Inbox["overdue_count"].(int64) != 2 || rep.Inbox["open_count"].(int64) != 3 {
		t.Fatalf("inbox counts = %v", rep.Inbox)
	}
	// 4 reference items give 8 notifications (2 assignments + 2 approvals
	// of the closed ones, 2 assignments + 2 escalations of the open ones);
	// the at-risk item adds its assignment and a deadline_risk.
	if rep.Notifications != 10 {
		t.Fatalf("notifications = %d, want 10", rep.Notifications)
	}
	if n := count(t, pool, `SELECT count(*) FROM dg_workflow_notifications WHERE tenant_id = 'release-demo' AND category = 'deadline_risk' AND workflow_id = $1`, seed.AtRiskWorkflow); n != 1 {
		t.Fatalf("deadline_risk notifications of the at-risk item = %d", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM dg_workflow_items WHERE tenant_id = 'release-demo' AND workflow_id <> $1`, seed.AtRiskWorkflow); n != 4 {
		t.Fatalf("reference workflow items = %d, want 4", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM dg_workflow_notifications WHERE tenant_id = 'release-demo' AND workflow_id <> $1`, seed.AtRiskWorkflow); n != 8 {
		t.Fatalf("notifications of the reference items = %d, want 8", n)
	}
	// By category: assignments for all four, approvals for the two closed
	// ones, escalations for the two overdue ones.
	for cat, want := range map[string]int64{"assignment": 5, "approval": 2, "escalation": 2, "deadline_risk": 1} {
		if n := count(t, pool, `SELECT count(*) FROM dg_workflow_notifications WHERE tenant_id = 'release-demo' AND category = $1`, cat); n != want {
			t.Fatalf("%s notifications = %d, want %d", cat, n, want)
		}
	}
	for _, p := range rep.Projections {
		if p.Pending != 0 || p.LastLogSeq != seed.TotalEvents || p.Processed != seed.TotalEvents {
			t.Fatalf("projection %+v not current", p)
		}
	}
	if rep.Digests.FullProjection == "" || rep.Digests.ContextGraph == "" {
		t.Fatalf("digests missing: %+v", rep.Digests)
	}
	if rep.LiveTrace["event_count"].(int64) != 6 || rep.LiveTrace["workflow_status"] != "escalated" {
		t.Fatalf("live trace = %v", rep.LiveTrace)
	}
	if p := rep.LiveTrace["precedent_trace_ids"].([]string); len(p) == 0 || p[0] != seed.PrecedentTrace {
		t.Fatalf("precedents of the live trace = %v", p)
	}
	if rep.RecentTraceIDs[0] != seed.AtRiskTrace || rep.RecentTraceIDs[1] != seed.LiveTrace {
		t.Fatalf("recent traces = %v", rep.RecentTraceIDs)
	}
	if rep.SeededAt != "2030-05-14T09:30:00Z" {
		t.Fatalf("seeded_at = %s", rep.SeededAt)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
}

func TestSeedIsIdempotent(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	st := openStore(t, pool)
	first, err := seed.Run(ctx, st, seed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// No --at the second time: the stored seeding time is reused, so the
	// envelopes are exact retries.
	second, err := seed.Run(ctx, st, seed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if second.Appended != 0 || second.AlreadyPresent != seed.TotalEvents {
		t.Fatalf("second run appended %d (present %d)", second.Appended, second.AlreadyPresent)
	}
	if second.SeededAt != first.SeededAt || second.Digests != first.Digests {
		t.Fatalf("second run changed the seed: %s/%s %+v/%+v", first.SeededAt, second.SeededAt, first.Digests, second.Digests)
	}
	if n := count(t, pool, `SELECT count(*) FROM dg_event_log`); n != seed.TotalEvents {
		t.Fatalf("events = %d", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM dg_workflow_notifications`); n != 10 {
		t.Fatalf("notifications = %d", n)
	}
	// An explicit different --at does not re-seed either.
	third, err := seed.Run(ctx, st, seed.Options{At: at})
	if err != nil {
		t.Fatal(err)
	}
	if third.Appended != 0 || third.SeededAt != first.SeededAt {
		t.Fatalf("--at on a seeded tenant: appended %d at %s", third.Appended, third.SeededAt)
	}
}

func TestResetRemovesOnlyThatTenant(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	st := openStore(t, pool)
	if _, err := seed.Run(ctx, st, seed.Options{Tenant: "alpha", At: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Run(ctx, st, seed.Options{Tenant: "beta", At: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Run(ctx, st, seed.Options{Tenant: "alpha", Reset: true}); err == nil {
		t.Fatal("reset without confirmation succeeded")
	}
	later := at.Add(48 * time.Hour)
	rep, err := seed.Run(ctx, st, seed.Options{Tenant: "alpha", Reset: true, ResetConfirmed: true, At: later})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deleted["dg_event_log"] != seed.TotalEvents || rep.Deleted["dg_workflow_items"] != 5 || rep.Deleted["dg_workflow_notifications"] != 10 {
		t.Fatalf("deleted = %v", rep.Deleted)
	}
	if rep.Appended != seed.TotalEvents || rep.SeededAt != "2030-05-16T09:30:00Z" {
		t.Fatalf("reseed appended %d at %s", rep.Appended, rep.SeededAt)
	}
	for _, tenant := range []string{"alpha", "beta"} {
		if n := count(t, pool, `SELECT count(*) FROM dg_event_log WHERE tenant_id = $1`, tenant); n != seed.TotalEvents {
			t.Fatalf("%s has %d events", tenant, n)
		}
		if n := count(t, pool, `SELECT count(*) FROM dg_workflow_items WHERE tenant_id = $1`, tenant); n != 5 {
			t.Fatalf("%s has %d items", tenant, n)
		}
	}
	// Beta kept its original time; alpha's events are the new ones.
	var occurred string
	if err := pool.QueryRow(ctx, `SELECT occurred_at FROM dg_event_log WHERE tenant_id = 'beta' AND trace_seq = 0 AND trace_id = $1`, seed.PrecedentTrace).Scan(&occurred); err != nil || occurred != "2030-05-13T02:30:00Z" {
		t.Fatalf("beta's first event occurred_at = %q (%v)", occurred, err)
	}
	// The guard is back on: a plain DELETE is still refused.
	if _, err := pool.Exec(ctx, `DELETE FROM dg_event_log WHERE tenant_id = 'beta'`); err == nil {
		t.Fatal("DELETE on the event log succeeded after a reset")
	}
	// Both tenants' chains verify; the only finding is the documented
	// trace of the reset: the global log_seq range alpha's first seed had.
	vr, err := st.Verify(ctx, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(vr)
	if len(vr.Problems) != 1 || vr.Problems[0].Kind != store.ProblemLogSeqGap || vr.Problems[0].LogSeq != 1 {
		t.Fatalf("verify after reset: %s", b)
	}
	for _, tc := range vr.Tenants {
		if !tc.HeadMatches || tc.Events != seed.TotalEvents {
			t.Fatalf("tenant chain after reset: %s", b)
		}
	}
}

func TestTwoTenantsDoNotCollide(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	st := openStore(t, pool)
	a, err := seed.Run(ctx, st, seed.Options{Tenant: "release-demo", At: at})
	if err != nil {
		t.Fatal(err)
	}
	b, err := seed.Run(ctx, st, seed.Options{Tenant: "second-demo", At: at})
	if err != nil {
		t.Fatal(err)
	}
	if b.Appended != seed.TotalEvents || b.EventCount != seed.TotalEvents || a.EventCount != seed.TotalEvents {
		t.Fatalf("second tenant appended %d, counts %d/%d", b.Appended, a.EventCount, b.EventCount)
	}
	if !reflect.DeepEqual(statusOf(a), statusOf(b)) {
		t.Fatalf("states differ: %v vs %v", statusOf(a), statusOf(b))
	}
	for _, p := range b.Projections {
		if p.Pending != 0 {
			t.Fatalf("second tenant projection %+v", p)
		}
	}
}

func TestSameAtGivesSameDigests(t *testing.T) {
	ctx := context.Background()
	var reps []*seed.Report
	for range 2 {
		st := openStore(t, pgtest.New(t))
		rep, err := seed.Run(ctx, st, seed.Options{At: at})
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	if reps[0].Digests != reps[1].Digests {
		t.Fatalf("same --at, different digests: %+v vs %+v", reps[0].Digests, reps[1].Digests)
	}
	if !reflect.DeepEqual(reps[0].Workflows, reps[1].Workflows) {
		t.Fatalf("same --at, different workflows: %+v vs %+v", reps[0].Workflows, reps[1].Workflows)
	}
	st := openStore(t, pgtest.New(t))
	other, err := seed.Run(ctx, st, seed.Options{At: at.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if other.Digests == reps[0].Digests {
		t.Fatal("a different --at gave the same digests")
	}
}

func TestEnvelopesAreValidAndRelative(t *testing.T) {
	envs := seed.Envelopes(at)
	if len(envs) != seed.TotalEvents {
		t.Fatalf("%d envelopes", len(envs))
	}
	if envs[0].EventID != "trace-precedent-renewal-001-trace_started-0" || envs[12].IdempotencyKey != "exceptionrequested:trace-incident-review-003:3" {
		t.Fatalf("ids: %s %s", envs[0].EventID, envs[12].IdempotencyKey)
	}
	// Compare with the transcription when the shared fixtures are present.
	dir, ok := fixtures.Find()
	if !ok {
		t.Logf("shared fixtures absent at %s: not comparing with the transcription", dir)
		return
	}
	raw, err := os.ReadFile(filepath.Join(dir, "release-demo", "events.transcribed.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	ref := seed.Envelopes(time.Date(2026, 3, 7, 16, 0, 0, 0, time.UTC))
	for k, want := range fx.Events {
		got := ref[k]
		if got.EventID != want["event_id"] || got.OccurredAt != want["occurred_at"] || got.IdempotencyKey != want["idempotency_key"] {
			t.Fatalf("event %d: %s %s differs from the transcription", k, got.EventID, got.OccurredAt)
		}
		gb, _ := json.Marshal(got.Payload)
		wb, _ := json.Marshal(want["payload"])
		var g, w any
		_ = json.Unmarshal(gb, &g)
		_ = json.Unmarshal(wb, &w)
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("event %d payload:\n got %s\nwant %s", k, gb, wb)
		}
	}
}

// An earlier seed that stopped after its appends is completed: the
// events are replays, the projections are rebuilt and the workflows made.
func TestSeedCompletesAnInterruptedSeed(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.New(t)
	st := openStore(t, pool)
	for _, env := range seed.Envelopes(at) {
		if _, err := st.Append(ctx, "release-demo", env); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := seed.Run(ctx, st, seed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Appended != 0 || rep.SeededAt != "2030-05-14T09:30:00Z" || len(rep.Workflows) != 5 {
		t.Fatalf("appended %d at %s, %d workflows", rep.Appended, rep.SeededAt, len(rep.Workflows))
	}
	for _, p := range rep.Projections {
		if p.Pending != 0 || p.LastLogSeq != seed.TotalEvents {
			t.Fatalf("projection not rebuilt: %+v", p)
		}
	}
}
