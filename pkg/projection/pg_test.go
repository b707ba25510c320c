package projection_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newStore returns a store on a fresh migrated database.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.New(ctxT(t), pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func appendPG(t *testing.T, st *store.Store, tenant string, envs []event.Envelope) {
	t.Helper()
	for i := range envs {
		if _, err := st.Append(ctxT(t), tenant, &envs[i]); err != nil {
			t.Fatalf("append %s: %v", envs[i].EventID, err)
		}
	}
}

func catchUpAll(t *testing.T, pg *projection.PG, tenant string, until int64) {
	t.Helper()
	for _, name := range projection.Names() {
		c, err := pg.NewCatcher(tenant, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CatchUp(ctxT(t), until); err != nil {
			t.Fatalf("catch up %s: %v", name, err)
		}
	}
}

func TestGoldenDigestsPostgres(t *testing.T) {
	for name, dir := range goldenScenarios(t) {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "expected_digest.txt"))
			if err != nil {
				t.Fatal(err)
			}
			st := newStore(t)
			appendPG(t, st, "default", readEnvelopes(t, filepath.Join(dir, "events.json")))
			pg := projection.NewPG(st, 3) // small batches: several transactions
			catchUpAll(t, pg, "default", 0)
			d, err := pg.LiveDigests(ctxT(t), "default")
			if err != nil {
				t.Fatal(err)
			}
			if d.Lines() != string(want) {
				t.Errorf("live digests\n%s\nwant\n%s", d.Lines(), want)
			}
			rep, err := pg.Rebuild(ctxT(t), projection.RebuildOptions{Tenant: "default"})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Differences) != 0 || !rep.Swapped || rep.Rebuilt[projection.FullProjection] != d.FullProjection {
				t.Errorf("rebuild report %+v", rep)
			}
			after, err := pg.LiveDigests(ctxT(t), "default")
			if err != nil {
				t.Fatal(err)
			}
			if after != d {
				t.Errorf("digests after the swap %v, before %v", after, d)
			}
			status, err := pg.Status(ctxT(t), "default")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range status {
				if s.Digest != d.Of(s.Projection) || s.DigestLogSeq != s.Head || s.Checkpoint != s.Head {
					t.Errorf("status after rebuild %+v, want digest %s at %d", s, d.Of(s.Projection), s.Head)
				}
			}
		})
	}
}

// TestPostgresMatchesMemory: a multi-trace log (the golden fixtures
// concatenated plus a generated log with unicode, control characters,
// 40-digit integers, open traces, retries and cross-trace citations) gives
// the same digests in memory, through live catch-up split at arbitrary
// points, after a rebuild, and through verify; in two tenants at once.
func TestPostgresMatchesMemory(t *testing.T) {
	var envs []event.Envelope
	for _, dir := range goldenScenarios(t) {
		envs = append(envs, readEnvelopes(t, filepath.Join(dir, "events.json"))...)
	}
	envs = append(envs, projection.Synthetic(projection.SynthOptions{Seed: 42, Traces: 40, Retries: 0.05})...)
	want := projectMemory(t, appendAll(t, "t1", envs), "t1").Digests()

	st := newStore(t)
	appendPG(t, st, "t1", envs)
	appendPG(t, st, "t2", projection.Synthetic(projection.SynthOptions{Seed: 43, Traces: 10}))
	pg := projection.NewPG(st, 7)
	head, err := pg.TenantHead(ctxT(t), "t1")
	if err != nil {
		t.Fatal(err)
	}
	// Catch up in uneven steps, each projection separately.
	for _, until := range []int64{1, 2, 13, head / 3, head/3 + 1, head - 1, head} {
		catchUpAll(t, pg, "t1", until)
	}
	got, err := pg.LiveDigests(ctxT(t), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("postgres digests %+v, memory %+v", got, want)
	}
	ver, err := pg.Verify(ctxT(t), "t1", projection.SetAll)
	if err != nil {
		t.Fatal(err)
	}
	if len(ver.Differences) != 0 || ver.Swapped {
		t.Errorf("verify found differences: %+v", ver.Differences)
	}
	rep, err := pg.Rebuild(ctxT(t), projection.RebuildOptions{Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rebuilt[projection.FullProjection] != want.FullProjection || len(rep.Differences) != 0 {
		t.Errorf("rebuild %+v", rep)
	}
	if after, _ := pg.LiveDigests(ctxT(t), "t1"); after != want {
		t.Errorf("after rebuild %+v, want %+v", after, want)
	}
}

// TestVerifyNamesFirstDifferingRow: a live row changed behind the
// projector's back is found by verify and undone by rebuild.
func TestVerifyNamesFirstDifferingRow(t *testing.T) {
	st := newStore(t)
	dir := goldenScenarios(t)["support"]
	appendPG(t, st, "default", readEnvelopes(t, filepath.Join(dir, "events.json")))
	pg := projection.NewPG(st, 0)
	catchUpAll(t, pg, "default", 0)
	want, _ := pg.LiveDigests(ctxT(t), "default")
	if _, err := st.Pool().Exec(ctxT(t), `UPDATE dg_trace_summary SET title = 'edited' WHERE tenant_id = 'default'`); err != nil {
		t.Fatal(err)
	}
	rep, err := pg.Verify(ctxT(t), "default", projection.SetAll)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Differences) != 1 || rep.Differences[0].Projection != projection.TraceSummary {
		t.Fatalf("differences %+v, want trace_summary only", rep.Differences)
	}
	if fr := rep.Differences[0].FirstRow; fr == "" || !strings.Contains(fr, "edited") {
		t.Errorf("first differing row %q does not show the edited row", fr)
	}
	if _, err := pg.Rebuild(ctxT(t), projection.RebuildOptions{Tenant: "default", DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if d, _ := pg.LiveDigests(ctxT(t), "default"); d == want {
		t.Error("dry-run rebuild changed the live tables")
	}
	if _, err := pg.Rebuild(ctxT(t), projection.RebuildOptions{Tenant: "default"}); err != nil {
		t.Fatal(err)
	}
	if d, _ := pg.LiveDigests(ctxT(t), "default"); d != want {
		t.Errorf("rebuild did not restore the digests: %+v", d)
	}
}

// insertPoison writes an event whose payload does not match its stored
// payload_hash, with raw SQL as an attacker or a broken tool would.
func insertPoison(t *testing.T, st *store.Store, tenant, traceID string, traceSeq int64) int64 {
	t.Helper()
	var seq int64
	err := st.Pool().QueryRow(ctxT(t), `INSERT INTO dg_event_log (log_seq, tenant_id, event_id, trace_id, trace_seq, event_type,
			occurred_at, recorded_at, producer_id, source_system, actor_type, actor_id, idempotency_key, schema_version,
			tags, payload, payload_hash, event_hash, chain_hash)
		SELECT COALESCE(max(log_seq), 0) + 1, $1, 'poison-' || $2, $2, $3, 'InputObserved', '2026-01-01T00:00:00Z', now(),
			'raw_sql', 'raw', 'agent', 'x', 'poison-' || $2, 1, '[]',
			'{"input_id":"i","source":{"system":"s","object_type":"o","object_id":"x"},"facts":[]}',
			'sha256:0000000000000000000000000000000000000000000000000000000000000000', 'sha256:0', 'sha256:0'
		FROM dg_event_log RETURNING log_seq`, tenant, traceID, traceSeq).Scan(&seq)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func TestPoisonEventStopsCheckpoint(t *testing.T) {
	st := newStore(t)
	b := newTrace("p1").start("a1")
	appendPG(t, st, "bad", b.evs)
	poison := insertPoison(t, st, "bad", "p1", 1)
	appendPG(t, st, "good", newTrace("g1").start("a1").finish("success").evs)
	pg := projection.NewPG(st, 0)
	c, err := pg.NewCatcher("bad", projection.ContextGraph)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.CatchUp(ctxT(t), 0)
	var se *projection.StepError
	if !errors.As(err, &se) || se.LogSeq != poison {
		t.Fatalf("catch-up error %v, want a StepError at log_seq %d", err, poison)
	}
	if code, _ := event.CodeOf(err); code != event.CodeConflict {
		t.Errorf("code %s, want conflict", code)
	}
	if res.LastLogSeq != poison-1 {
		t.Errorf("checkpoint %d, want %d (just before the poison)", res.LastLogSeq, poison-1)
	}
	cur, _ := pg.Cursor(ctxT(t), st.Pool(), "bad", projection.ContextGraph)
	if cur != poison-1 {
		t.Errorf("durable checkpoint %d, want %d", cur, poison-1)
	}
	catchUpAll(t, pg, "good", 0)
	if d, _ := pg.LiveDigests(ctxT(t), "good"); d.TraceSummary == "" {
		t.Error("the other tenant was not projected")
	}
}

// TestRebuildRecordsRuns: rebuilds and verifies leave run rows, and a run
// left "running" by a process that died is closed by the next one.
func TestRebuildRecordsRuns(t *testing.T) {
	st := newStore(t)
	appendPG(t, st, "default", newTrace("t1").start("a1").finish("success").evs)
	pool := st.Pool()
	if _, err := pool.Exec(ctxT(t), `INSERT INTO dg_projection_runs (job_id, tenant_id, projection_name, mode, status)
		VALUES ('dead', 'default', 'all', 'rebuild', 'running')`); err != nil {
		t.Fatal(err)
	}
	pg := projection.NewPG(st, 0)
	rep, err := pg.Rebuild(ctxT(t), projection.RebuildOptions{Tenant: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Verify(ctxT(t), "default", projection.SetAll); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctxT(t), `SELECT job_id, mode, status, COALESCE(error_code, ''), processed_events, last_log_seq FROM dg_projection_runs ORDER BY requested_at, job_id`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var job, mode, status, code string
	var n, last int64
	for rows.Next() {
		if err := rows.Scan(&job, &mode, &status, &code, &n, &last); err != nil {
			t.Fatal(err)
		}
		got[job] = fmt.Sprintf("%s %s %s %d %d", mode, status, code, n, last)
	}
	if got["dead"] != "rebuild failed orphaned 0 0" {
		t.Errorf("orphaned run: %q", got["dead"])
	}
	if got[rep.JobID] != "rebuild completed  2 2" {
		t.Errorf("rebuild run %s: %q", rep.JobID, got[rep.JobID])
	}
	if len(got) != 3 {
		t.Errorf("runs %v, want the orphan, the rebuild and the verify", got)
	}
}
