package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/audit"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/server"
)

func (e *projEnv) startReplay(token, body string) (int, string, map[string]any) {
	e.t.Helper()
	rec := e.do(req{method: "POST", path: "/api/v1/admin/replays", token: token, tenant: tenantA, body: []byte(body)})
	data, code, _ := envelope(e.t, rec)
	var run map[string]any
	if data != nil {
		run, _ = data["run"].(map[string]any)
	}
	return rec.Code, code, run
}

func (e *projEnv) replay(jobID string) map[string]any {
	e.t.Helper()
	rec := e.do(req{method: "GET", path: "/api/v1/admin/replays/" + jobID, token: adminToken, tenant: tenantA})
	data, code, _ := envelope(e.t, rec)
	if rec.Code != 200 {
		e.t.Fatalf("replay status: %d %s", rec.Code, code)
	}
	return data["run"].(map[string]any)
}

// waitReplay polls a job until it reaches one of the states.
func (e *projEnv) waitReplay(jobID string, states ...string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run := e.replay(jobID)
		for _, s := range states {
			if run["status"] == s {
				return run
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s is %v, want one of %v", jobID, run["status"], states)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplayLifecycle: a catch-up job goes queued -> running -> completed
// and brings the projections to the head; the run has the §10.7 shape and
// metadata; start is audited.
func TestReplayLifecycle(t *testing.T) {
	e := newProjEnv(t, server.ReplayOptions{AllowRebuild: true})
	e.seedTraces(3)
	st, code, run := e.startReplay(adminToken, `{"projection":"all","reason":"  catch up after deploy ","metadata":{"ticket":"OPS-1"}}`)
	if st != 202 || run["status"] != "queued" || run["mode"] != "catch_up" || run["projection_name"] != "all" {
		t.Fatalf("start: %d %q %v", st, code, run)
	}
	for _, k := range []string{"job_id", "tenant_id", "requested_at", "started_at", "finished_at", "since_log_seq", "until_log_seq",
		"processed_events", "last_log_seq", "error_code", "error_message", "metadata_json"} {
		if _, ok := run[k]; !ok {
			t.Errorf("run lacks %s", k)
		}
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(run["metadata_json"].(string)), &meta); err != nil {
		t.Fatal(err)
	}
	if meta["reason"] != "catch up after deploy" || meta["ticket"] != "OPS-1" || meta["requested_by_account_id"] != "admin-test" || meta["request_id"] == "" {
		t.Fatalf("metadata: %v", meta)
	}
	jobID := run["job_id"].(string)
	done := e.waitReplay(jobID, "completed", "failed")
	if done["status"] != "completed" || done["started_at"] == nil || done["finished_at"] == nil || done["error_code"] != nil {
		t.Fatalf("done: %v", done)
	}
	if n, _ := done["processed_events"].(json.Number).Int64(); n != 18 { // 6 events x 3 projections
		t.Fatalf("processed_events = %d, want 18", n)
	}
	if st, _, _ := e.get("/api/v1/precedents", nil); st != 200 {
		t.Fatalf("precedents after catch-up: %d", st)
	}
	// Cancelling a finished job is 404, as in the reference.
	rec := e.do(req{method: "POST", path: "/api/v1/admin/replays/" + jobID + "/cancel", token: adminToken, tenant: tenantA})
	if _, code, _ := envelope(t, rec); rec.Code != 404 || code != "not_found" {
		t.Fatalf("cancel finished: %d %q", rec.Code, code)
	}
	// Another tenant's admin cannot see it (404, not 403): tenant-b has no
	// account here, so use a job of tenant-b inserted directly instead.
	if _, err := e.pool.Exec(context.Background(), `INSERT INTO dg_replay_jobs (job_id, tenant_id, projection_name, mode, status) VALUES ('replay-foreign', 'tenant-b', 'all', 'catch_up', 'completed')`); err != nil {
		t.Fatal(err)
	}
	rec = e.do(req{method: "GET", path: "/api/v1/admin/replays/replay-foreign", token: adminToken, tenant: tenantA})
	if _, code, _ := envelope(t, rec); rec.Code != 404 || code != "not_found" {
		t.Fatalf("foreign job: %d %q", rec.Code, code)
	}
	entries, err := e.audit.List(context.Background(), audit.Query{Tenant: tenantA, Action: "start_replay"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Outcome != audit.Accepted || entries[0].TargetID != jobID || entries[0].ActorID != "admin-test" {
		t.Fatalf("audit: %+v", entries)
	}
	cancels, err := e.audit.List(context.Background(), audit.Query{Tenant: tenantA, Action: "cancel_replay"})
	if err != nil || len(cancels) != 1 || cancels[0].Outcome != audit.Rejected {
		t.Fatalf("cancel audit: %+v %v", cancels, err)
	}
}

// TestReplayCancelAndConflict holds the projection's batch lock so a
// catch-up job stays running; a second job of the same scope is 409; the
// cancel answers the cancelled run and the job stays cancelled.
func TestReplayCancelAndConflict(t *testing.T) {
	e := newProjEnv(t, server.ReplayOptions{AllowRebuild: true})
	e.seedTraces(2)
	ctx := context.Background()
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	const batchLockClass = 0x64670001 // pkg/projection's batch lock class
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, batchLockClass, tenantA+":trace_summary"); err != nil {
		t.Fatal(err)
	}
	st, _, run := e.startReplay(adminToken, `{"projection":"trace_summary","mode":"catch_up","reason":"stuck"}`)
	if st != 202 {
		t.Fatalf("start: %d", st)
	}
	jobID := run["job_id"].(string)
	e.waitReplay(jobID, "running")
	if e.replays.Active() != 1 {
		t.Fatalf("active jobs = %d", e.replays.Active())
	}
	if st, code, _ := e.startReplay(adminToken, `{"projection":"trace_summary","reason":"again"}`); st != 409 || code != "conflict" {
		t.Fatalf("second job: %d %q", st, code)
	}
	// "all" is a scope of its own.
	st, _, other := e.startReplay(adminToken, `{"projection":"context_graph","reason":"other scope"}`)
	if st != 202 {
		t.Fatalf("other scope: %d", st)
	}
	rec := e.do(req{method: "POST", path: "/api/v1/admin/replays/" + jobID + "/cancel", token: adminToken, tenant: tenantA})
	data, code, _ := envelope(t, rec)
	if rec.Code != 200 || data["run"].(map[string]any)["status"] != "cancelled" {
		t.Fatalf("cancel: %d %q %v", rec.Code, code, data)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, batchLockClass, tenantA+":trace_summary"); err != nil {
		t.Fatal(err)
	}
	e.waitReplay(other["job_id"].(string), "completed")
	deadline := time.Now().Add(10 * time.Second)
	for e.replays.Active() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if run := e.replay(jobID); run["status"] != "cancelled" || run["finished_at"] == nil {
		t.Fatalf("after cancel: %v", run)
	}
	// The scope is free again.
	if st, _, _ := e.startReplay(adminToken, `{"projection":"trace_summary","reason":"retry"}`); st != 202 {
		t.Fatalf("after cancel, start: %d", st)
	}
}

// TestReplayValidationAndRebuildSwitch: the §8.8 checks in order, rebuild
// refused while projections.allow_rebuild is off and without the
// projection_rebuild permission, and a permitted rebuild completes.
func TestReplayValidationAndRebuildSwitch(t *testing.T) {
	e := newProjEnv(t, server.ReplayOptions{AllowRebuild: false})
	e.seedTraces(1)
	cases := []struct {
		token, body string
		status      int
		code, msg   string
	}{
		{adminToken, `{"projection":"all","mode":"replay","reason":"x"}`, 400, "invalid_argument", "mode must be catch_up or rebuild"},
		{adminToken, `{"reason":"x"}`, 400, "invalid_argument", "projection is required"},
		{adminToken, `{"projection":"all"}`, 400, "invalid_argument", "reason is required"},
		{adminToken, `{"projection":"all","reason":"   "}`, 400, "invalid_argument", "reason is required"},
		{adminToken, `{"projection":"all","reason":"x","metadata":[1]}`, 400, "invalid_argument", "metadata must be an object"},
		{replayOnlyToken, `{"projection":"all","mode":"rebuild","reason":"x"}`, 403, "forbidden", "lacks projection_rebuild permission"},
		{adminToken, `{"projection":"all","mode":"rebuild","reason":"x"}`, 403, "forbidden", "Projection rebuilds are disabled"},
		{adminToken, `{"projection":"nope","reason":"x"}`, 400, "invalid_argument", "Unknown projection 'nope'"},
		{adminToken, `{"projection":"all","reason":"x","since_log_seq":-1}`, 400, "invalid_argument", "non-negative"},
		{adminToken, `{"projection":"all","reason":"x","until_log_seq":"5"}`, 400, "invalid_argument", "non-negative"},
		{adminToken, `{"projection":"all","reason":"x","until_log_seq":1.5}`, 400, "invalid_argument", "non-negative"},
	}
	for _, c := range cases {
		rec := e.do(req{method: "POST", path: "/api/v1/admin/replays", token: c.token, tenant: tenantA, body: []byte(c.body)})
		var m struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		if rec.Code != c.status || m.Error.Code != c.code || !strings.Contains(m.Error.Message, c.msg) {
			t.Errorf("%s: %d %q %q", c.body, rec.Code, m.Error.Code, m.Error.Message)
		}
	}
	// The reason may come from metadata.reason.
	st, _, run := e.startReplay(adminToken, `{"projection":"all","metadata":{"reason":"from metadata"},"until_log_seq":1}`)
	if st != 202 || run["until_log_seq"] == nil {
		t.Fatalf("metadata reason: %d %v", st, run)
	}
	e.waitReplay(run["job_id"].(string), "completed")
	rejected, err := e.audit.List(context.Background(), audit.Query{Tenant: tenantA, Action: "start_replay"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rejected) != len(cases)+1 {
		t.Fatalf("audit entries = %d, want %d", len(rejected), len(cases)+1)
	}

	// With rebuilds allowed, a rebuild job completes and swaps in rows
	// whose digests equal the live ones.
	e2 := newProjEnv(t, server.ReplayOptions{AllowRebuild: true})
	e2.seedTraces(2)
	e2.catchUp()
	before, err := e2.pg.LiveDigests(context.Background(), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	st, _, run = e2.startReplay(adminToken, `{"projection":"all","mode":"rebuild","reason":"verify rebuild"}`)
	if st != 202 {
		t.Fatalf("rebuild: %d", st)
	}
	done := e2.waitReplay(run["job_id"].(string), "completed", "failed")
	if done["status"] != "completed" {
		t.Fatalf("rebuild: %v", done)
	}
	after, err := e2.pg.LiveDigests(context.Background(), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Fatalf("digests changed by the rebuild: %v -> %v", before, after)
	}
	_ = projection.Names
}

// TestReplayOrphanedAtStartup: a job left running by a crashed process is
// failed ("orphaned") when the next runner starts, and no longer blocks
// its scope.
func TestReplayOrphanedAtStartup(t *testing.T) {
	e := newProjEnv(t, server.ReplayOptions{})
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `INSERT INTO dg_replay_jobs (job_id, tenant_id, projection_name, mode, status, started_at)
		VALUES ('replay-crashed', $1, 'trace_summary', 'catch_up', 'running', now())`, tenantA); err != nil {
		t.Fatal(err)
	}
	if st, code, _ := e.startReplay(adminToken, `{"projection":"trace_summary","reason":"x"}`); st != 409 || code != "conflict" {
		t.Fatalf("while the orphan is running: %d %q", st, code)
	}
	if st, _, data := e.get("/api/v1/projections/health", nil); st != 200 || len(data["open_runs"].([]any)) != 1 {
		t.Fatalf("health open_runs: %d %v", st, data)
	}
	n, err := server.NewReplays(e.pool, e.pg, server.ReplayOptions{}).FailOrphaned(ctx)
	if err != nil || n != 1 {
		t.Fatalf("FailOrphaned = %d, %v", n, err)
	}
	run := e.replay("replay-crashed")
	if run["status"] != "failed" || run["error_code"] != "orphaned" || run["finished_at"] == nil {
		t.Fatalf("orphan: %v", run)
	}
	if st, _, _ := e.startReplay(adminToken, `{"projection":"trace_summary","reason":"x"}`); st != 202 {
		t.Fatalf("after start-up: %d", st)
	}
}
