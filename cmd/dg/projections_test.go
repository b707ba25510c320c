package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// runDG runs the whole CLI with DATABASE_URL set and returns exit code,
// stdout and stderr.
func runProjDG(t *testing.T, dbURL string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) (string, bool) {
		if k == "DATABASE_URL" {
			return dbURL, true
		}
		return "", false
	}
	code := runContext(context.Background(), args, &out, &errb, env)
	return code, out.String(), errb.String()
}

// seedGolden appends a golden scenario to a fresh database.
func seedGolden(t *testing.T, scenario string) string {
	t.Helper()
	url := pgtest.NewURL(t)
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	envs := decodeFile(t, filepath.Join(goldenDir(t), scenario, "events.json"))
	for i := range envs {
		if _, err := st.Append(ctx, "default", &envs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return url
}

func decodeFile(t *testing.T, path string) []event.Envelope {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := event.DecodeEvents(data)
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func TestProjectionsRebuildVerifyStatus(t *testing.T) {
	url := seedGolden(t, "support")
	// Nothing projected yet: verify compares empty tables with an empty
	// rebuild at checkpoint 0 and passes; status shows the lag.
	code, out, errs := runProjDG(t, url, "projections", "status", "-o", "json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	var st struct {
		Projections []struct {
			Tenant     string `json:"tenant"`
			Projection string `json:"projection"`
			Checkpoint int64  `json:"checkpoint"`
			Head       int64  `json:"head"`
			Lag        int64  `json:"lag_events"`
		} `json:"projections"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Projections) != 3 || st.Projections[0].Lag != 8 || st.Projections[0].Head != 8 {
		t.Errorf("status before rebuild: %s", out)
	}
	code, out, errs = runProjDG(t, url, "projections", "rebuild")
	if code != 0 {
		t.Fatalf("rebuild: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "swapped in") {
		t.Errorf("rebuild output: %s", out)
	}
	code, out, errs = runProjDG(t, url, "projections", "verify")
	if code != 0 {
		t.Fatalf("verify after rebuild: exit %d: %s %s", code, out, errs)
	}
	// Damage a live row: verify must exit 1 and name it.
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), `UPDATE dg_cg_nodes SET created_at = 'tampered' WHERE node_id = 'input:input:crm.arr'`); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runProjDG(t, url, "projections", "verify", "--projection", "context_graph")
	if code != exitCheckFailed || !strings.Contains(out, "context_graph: first differing row: node") || !strings.Contains(out, "tampered") {
		t.Errorf("verify of damaged graph: exit %d\n%s", code, out)
	}
	code, out, _ = runProjDG(t, url, "projections", "status")
	if code != 0 || !strings.Contains(out, "sha256:") {
		t.Errorf("status after rebuild: exit %d\n%s", code, out)
	}
	if code, _, _ := runProjDG(t, url, "projections", "rebuild", "--projection", "nope"); code != exitUsage {
		t.Errorf("bad --projection: exit %d, want %d", code, exitUsage)
	}
}

// TestProjectionsStatusShowsPoison: an event whose stored payload does not
// match its payload_hash (written with raw SQL) stops the live workers of
// its tenant just before it; status shows the failure, and the other
// tenant is fully projected.
func TestProjectionsStatusShowsPoison(t *testing.T) {
	url := seedGolden(t, "support")
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Pool().Exec(ctx, `INSERT INTO dg_event_log (log_seq, tenant_id, event_id, trace_id, trace_seq, event_type,
			occurred_at, recorded_at, producer_id, source_system, actor_type, actor_id, idempotency_key, schema_version,
			tags, payload, payload_hash, event_hash, chain_hash)
		SELECT max(log_seq) + 1, 'bad', 'poison', 'p1', 0, 'TraceStarted', '2026-01-01T00:00:00Z', now(), 'raw', 'raw', 'agent', 'x',
			'poison', 1, '[]', '{"workflow":"w","title":"t","primary_entity":{"entity_type":"a","entity_id":"b"}}',
			'sha256:0000000000000000000000000000000000000000000000000000000000000000', 'sha256:0', 'sha256:0' FROM dg_event_log`); err != nil {
		t.Fatal(err)
	}
	rt := projection.NewRuntime(st, projection.RuntimeOptions{Poll: 50 * time.Millisecond})
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rt.Stop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out, errs := runProjDG(t, url, "projections", "status")
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, errs)
		}
		if strings.Count(out, "failure: bad") == 3 && strings.Count(out, "default ") == 3 && !strings.Contains(out, "default  context_graph    0") {
			if !strings.Contains(out, "at log_seq 9 (event poison, trace p1") || !strings.Contains(out, "DG_ERR_CONFLICT") {
				t.Errorf("status does not describe the poison event:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the failures:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out, _ := runProjDG(t, url, "projections", "status", "-o", "json", "--tenant", "default")
	var res struct {
		Projections []struct {
			Checkpoint int64 `json:"checkpoint"`
			Lag        int64 `json:"lag_events"`
		} `json:"projections"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || len(res.Projections) != 3 {
		t.Fatalf("status json: exit %d, %v: %s", code, err, out)
	}
	for _, p := range res.Projections {
		if p.Checkpoint != 8 || p.Lag != 0 {
			t.Errorf("tenant default not caught up: %+v", p)
		}
	}
}

// TestProjectionsRebuildLocked: a second rebuild of a tenant exits 4.
func TestProjectionsRebuildLocked(t *testing.T) {
	url := seedGolden(t, "support")
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// Hold the lock a running rebuild of tenant default would hold.
	if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_lock(x'64670001'::int, hashtext('default:shadow'))`); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runProjDG(t, url, "projections", "rebuild", "--tenant", "default")
	if code != exitLocked || !strings.Contains(errs, "another rebuild") {
		t.Errorf("rebuild while locked: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := runProjDG(t, url, "projections", "verify", "--tenant", "default"); code != exitLocked {
		t.Errorf("verify while locked: exit %d", code)
	}
	if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runProjDG(t, url, "projections", "rebuild", "--tenant", "default"); code != 0 {
		t.Errorf("rebuild after the lock was released: exit %d: %s", code, errs)
	}
}
