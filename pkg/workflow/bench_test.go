package workflow_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/workflow"
)

// Benchmarks of the speed goals (figures, never assertions):
//
//	go test ./pkg/workflow -run '^$' -bench . -benchtime 1x -count 1
//
// Items and events are generated with SQL so the setup does not dominate.

const benchItems = 10000

// seedItems inserts n open items of tenant directly, due at due (plus i
// seconds), requested at requestedAt.
func seedItems(b *testing.B, e *env, tenant string, n int, requestedAt, due time.Time) {
	b.Helper()
	_, err := e.pool.Exec(ctxT(b), `INSERT INTO dg_workflow_items (tenant_id, workflow_id, trace_id, workflow_kind, workflow_name,
		subject_type, subject_id, status, priority, title, assigned_role, requested_at, sla_due_at, updated_at, created_from_event_id, metadata)
		SELECT $1, 'tr-' || i || ':exception:ex-' || i, 'tr-' || i, 'exception_review', 'deal_approval', 'exception', 'ex-' || i,
			'requested', (ARRAY['urgent','high','normal','low'])[1 + i % 4], 'Deal ' || i, 'admin',
			$2::timestamptz + make_interval(secs => i), $3::timestamptz + make_interval(secs => i), $2, 'ev-' || i, '{}'
		FROM generate_series(1, $4) AS i`, tenant, requestedAt, due, n)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.pool.Exec(ctxT(b), `VACUUM ANALYZE dg_workflow_items`); err != nil { // steady state, as autovacuum leaves it
		b.Fatal(err)
	}
}

// Inbox query latency with 10k open items (target p99 < 10 ms): the
// refresh pre-check, the ordered page and the tenant summary.
func BenchmarkInbox10kOpen(b *testing.B) {
	e := newEnv(b, workflow.Config{})
	now := e.clock.Now()
	// Half overdue already escalated, half due later: the common shape.
	seedItems(b, e, "default", benchItems, now.Add(-time.Hour), now.Add(2*time.Hour))
	ctx := ctxT(b)
	if _, err := e.svc.List(ctx, "default", workflow.Filter{OnlyOpen: true, Limit: 12}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, 1000)
	b.ResetTimer()
	runs := max(b.N, 500)
	for i := 0; i < runs; i++ {
		t := time.Now()
		in, err := e.svc.List(ctx, "default", workflow.Filter{OnlyOpen: true, Limit: 12})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
		if len(in.Items) != 12 || in.Summary.OpenCount != benchItems {
			b.Fatalf("inbox %d items, %d open", len(in.Items), in.Summary.OpenCount)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(calibrate(b, e), "calib-ms")
}

// SLA sweep over 10k overdue items (target < 2 s): each run escalates all
// of them (actions, notifications and audit rows included).
func BenchmarkSweep10kOverdue(b *testing.B) {
	e := newEnv(b, workflow.Config{})
	now := e.clock.Now()
	seedItems(b, e, "default", benchItems, now.Add(-10*time.Hour), now.Add(-6*time.Hour))
	ctx := ctxT(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		if i > 0 {
			b.StopTimer()
			resetOverdue(b, ctx, e)
			b.StartTimer()
		}
		t := time.Now()
		res, err := e.svc.Refresh(ctx, "default")
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(t)
		if res.Escalated != benchItems {
			b.Fatalf("escalated %d", res.Escalated)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/sweep")
	b.ReportMetric(calibrate(b, e), "calib-ms")
}

func resetOverdue(b *testing.B, ctx context.Context, e *env) {
	for _, q := range []string{
		`UPDATE dg_workflow_items SET status = 'requested', metadata = '{}'`,
		`DELETE FROM dg_workflow_actions`, `DELETE FROM dg_workflow_notifications`,
	} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

// Import throughput of managed events (target >= 20,000 events/s): 10k
// traces each with ExceptionRequested then ApprovalRecorded, imported by
// one refresh from a reset cursor.
func BenchmarkImport20kEvents(b *testing.B) {
	e := newEnv(b, workflow.Config{})
	ctx := ctxT(b)
	// Log rows written directly (the hash columns are not checked here).
	_, err := e.pool.Exec(ctx, `INSERT INTO dg_event_log (log_seq, tenant_id, event_id, trace_id, trace_seq, event_type, occurred_at,
		recorded_at, producer_id, source_system, actor_type, actor_id, idempotency_key, schema_version, payload, payload_hash, event_hash, chain_hash)
		SELECT 2 * i - 1 + k, 'default', 'tr-' || i || '-' || k, 'tr-' || i, k + 1,
			CASE k WHEN 0 THEN 'ExceptionRequested' ELSE 'ApprovalRecorded' END, '2026-03-02T08:00:00Z', now(), 'agent', 'deal-desk', 'agent', 'agent-7',
			'k-' || i || '-' || k, 1,
			CASE k WHEN 0 THEN json_build_object('exception_id', 'ex-' || i, 'reason', 'discount above limit',
				'policy', json_build_object('policy_id', 'discount_limit', 'policy_version', 'v3'), 'evidence', json_build_array(json_build_object('locator', 'crm://' || i)))
			ELSE json_build_object('approval_id', 'a-' || i, 'decision', 'approved', 'reason', 'ok',
				'subject', json_build_object('subject_type', 'exception', 'subject_id', 'ex-' || i),
				'approver', json_build_object('actor_type', 'person', 'actor_id', 'finance')) END,
			'h', 'h', 'h'
		FROM generate_series(1, $1) AS i, generate_series(0, 1) AS k`, benchItems)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `ANALYZE dg_event_log`); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for _, q := range []string{`DELETE FROM dg_workflow_runtime`, `DELETE FROM dg_workflow_items`, `DELETE FROM dg_workflow_actions`, `DELETE FROM dg_workflow_notifications`} {
			if _, err := e.pool.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		t := time.Now()
		res, err := e.svc.Refresh(ctx, "default")
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(t)
		if res.Imported != 2*benchItems {
			b.Fatalf("imported %d (failed %d)", res.Imported, res.Failed)
		}
	}
	rate := float64(2*benchItems*b.N) / total.Seconds()
	b.ReportMetric(rate, "events/s")
	cal := calibrate(b, e)
	b.ReportMetric(cal, "calib-ms")
	b.Logf("import throughput: %.0f managed events/s (target >= 20,000; %d events per refresh, %d refreshes; calibration insert %.1f ms)",
		rate, 2*benchItems, b.N, cal)
}

// calibrate times a plain 20,000-row insert into a table with a text
// primary key: the machine's current speed, to read the figures against
// (a few tens of ms on an idle machine).
func calibrate(b *testing.B, e *env) float64 {
	ctx := ctxT(b)
	if _, err := e.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_calibrate (k text PRIMARY KEY, v text, n int)`); err != nil {
		b.Fatal(err)
	}
	t := time.Now()
	if _, err := e.pool.Exec(ctx, `INSERT INTO bench_calibrate SELECT 'key-' || i, 'value ' || i, i FROM generate_series(1, 20000) i`); err != nil {
		b.Fatal(err)
	}
	return float64(time.Since(t).Microseconds()) / 1000
}
