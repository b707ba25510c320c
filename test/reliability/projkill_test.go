package reliability_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// fillLog appends traces whole traces (5 events each) to tenant through
// the store's real append path, 8 at a time.
func fillLog(t *testing.T, pool *pgxpool.Pool, tenant, prefix string, traces int) {
	t.Helper()
	st, err := store.New(context.Background(), pool, store.Options{})
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	defer st.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := w; k < traces; k += 8 {
				for _, env := range traceEvents(fmt.Sprintf("%s-%05d", prefix, k)) {
					env.ApplyDefaults()
					if _, err := st.Append(context.Background(), tenant, env); err != nil {
						errs <- fmt.Errorf("append %s: %w", env.EventID, err)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// TestRebuildKilled kills `dg projections rebuild` with SIGKILL at random
// moments; after each kill the live projections still verify, a new
// rebuild is not locked out and ends with the digests of a clean rebuild.
func TestRebuildKilled(t *testing.T) {
	track(t)
	dburl := pgtest.NewURL(t)
	pool := openPool(t, dburl)
	traces := 600
	if P.Full {
		traces = 3000
	}
	fillLog(t, pool, "default", "rebuild", traces)
	bin := dgBinary(t)

	rebuild := func() (int, string, time.Duration) {
		t0 := time.Now()
		code, out := runDG(t, 5*time.Minute, "projections", "rebuild", "--database-url", dburl, "--tenant", "default")
		return code, out, time.Since(t0)
	}
	code, out, clean := rebuild()
	if code != 0 {
		t.Fatalf("clean rebuild: exit %d\n%s", code, out)
	}
	want := digests(t, pool, "default")

	var killedAt []string
	attempts := 0
	for round := 0; round < P.ProjKillRounds; round++ {
		// Kill at a random moment inside the rebuild; when the rebuild
		// had already finished, try again with a shorter delay, so every
		// round really kills a rebuild mid-run.
		frac := 0.9
		for attempt := 0; ; attempt++ {
			cmd := exec.Command(bin, "projections", "rebuild", "--database-url", dburl, "--tenant", "default")
			cmd.Env = append(os.Environ(), "DATABASE_URL=")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			var buf strings.Builder
			cmd.Stdout, cmd.Stderr = &buf, &buf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			delay := time.Duration(rand.Float64()*frac*float64(clean)) + clean/20
			time.Sleep(delay)
			_ = cmd.Process.Kill()
			err := cmd.Wait()
			if err != nil && strings.Contains(err.Error(), "killed") {
				killedAt = append(killedAt, fmt.Sprintf("%dms", delay.Milliseconds()))
				break
			}
			attempts++
			if attempt == 20 {
				t.Fatalf("round %d: every rebuild finished before the kill (clean duration %s)", round, clean)
			}
			frac *= 0.6
		}

		if code, out := runDG(t, 5*time.Minute, "projections", "verify", "--database-url", dburl, "--tenant", "default"); code != 0 {
			t.Fatalf("round %d: verify after a killed rebuild: exit %d\n%s", round, code, out)
		}
		if got := digests(t, pool, "default"); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("round %d: live digests after a killed rebuild %v, want %v", round, got, want)
		}
		code, out, _ := rebuild()
		if code != 0 {
			t.Fatalf("round %d: rebuild after a killed one: exit %d (4 = locked out)\n%s", round, code, out)
		}
		if got := digests(t, pool, "default"); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("round %d: digests after re-rebuild %v, want %v", round, got, want)
		}
	}
	// No run of a killed rebuild is left "running" for ever: the runs
	// table shows what the killed processes had claimed.
	var running int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status IN ('queued','running')) FROM dg_projection_runs WHERE tenant_id = 'default'`).Scan(&running); err != nil {
		t.Fatalf("read runs: %v", err)
	}
	record("projkill", "events in the log", traces*5)
	record("projkill", "clean rebuild duration", clean.Round(time.Millisecond))
	record("projkill", "kill -9 of dg projections rebuild mid-run", fmt.Sprintf("%d rounds, killed after %s (%d further attempts had finished before the kill)", P.ProjKillRounds, strings.Join(killedAt, ", "), attempts))
	record("projkill", "after each kill", "dg projections verify exit 0, live digests unchanged, next rebuild exit 0 with the clean digests")
	record("projkill", "digests (clean = after kills)", strings.Join(want, ", "))
	if running > 0 {
		t.Errorf("%d projection runs left queued or running by the killed rebuilds", running)
	}
}

// sweepFixture is the events of the SLA test: overdue exception traces and
// traces due soon (deadline risk), with fixed occurred_at times.
func sweepFixture(n int, now time.Time) [][]*event.Envelope {
	var out [][]*event.Envelope
	soon := now.Add(-23*time.Hour - 30*time.Minute).UTC().Format("2006-01-02T15:04:05Z")
	for i := 0; i < n; i++ {
		evs := exceptionTrace(fmt.Sprintf("sla-%03d", i))
		if i%2 == 1 {
			for _, e := range evs {
				e.OccurredAt = soon
			}
		}
		out = append(out, evs)
	}
	return out
}

// workflowState is the comparable state of the workflow tables.
func workflowState(t *testing.T, pool *pgxpool.Pool) (items, notes []string, dupNotes int, events string) {
	t.Helper()
	ctx := context.Background()
	q := func(sql string) []string {
		rows, err := pool.Query(ctx, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	items = q(`SELECT concat_ws('|', workflow_id, status, priority, assigned_role, assigned_account_id, last_action_type, current_decision, sla_due_at::text, deadline_risk_for::text) FROM dg_workflow_items WHERE tenant_id='default' ORDER BY 1`)
	notes = q(`SELECT concat_ws('|', workflow_id, category, dedupe_key, recipient_role, recipient_account_id) FROM dg_workflow_notifications WHERE tenant_id='default' ORDER BY 1`)
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT workflow_id, category, dedupe_key FROM dg_workflow_notifications WHERE tenant_id='default' GROUP BY 1,2,3 HAVING count(*) > 1) d`).Scan(&dupNotes); err != nil {
		t.Fatal(err)
	}
	events = strings.Join(q(`SELECT event_type || '=' || count(*) FROM dg_event_log WHERE tenant_id='default' GROUP BY event_type ORDER BY 1`), " ")
	return
}

// runSweepScenario appends the fixture through a node and waits until the
// workflow state is stable; kills > 0 kills the node with SIGKILL at random
// moments around the SLA sweeps (interval 1s) and restarts it.
func runSweepScenario(t *testing.T, fixture [][]*event.Envelope, kills int) (*pgxpool.Pool, int) {
	dir := t.TempDir()
	dburl := pgtest.NewURL(t)
	port := freePort(t)
	accounts := filepath.Join(dir, "accounts.json")
	writeAccounts(t, accounts, 0, false, false)
	manifest := writeManifest(t, dir, nodeConfig{DatabaseURL: dburl, Port: port, AccountsFile: accounts, SweepInterval: "1s"})
	node := startDG(t, manifest, port)
	for _, evs := range fixture {
		for _, env := range evs {
			if r, err := do(context.Background(), "POST", node.base+"/api/v1/events", tokAdmin, "default", encode(t, env), nil); err != nil || r.Status != 201 {
				t.Fatalf("append %s: %v %d %s", env.EventID, err, r.Status, r.Body)
			}
		}
	}
	done := 0
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(200+rand.IntN(1800)) * time.Millisecond)
		node.kill()
		done++
		node = startDG(t, manifest, port)
	}
	pool := openPool(t, dburl)
	// Stable: the same state on three reads two sweep intervals apart.
	var last string
	same := 0
	deadline := time.Now().Add(90 * time.Second)
	for same < 3 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		items, notes, _, events := workflowState(t, pool)
		cur := strings.Join(items, ";") + "#" + strings.Join(notes, ";") + "#" + events
		if cur == last && len(items) == len(fixture) {
			same++
		} else {
			same = 0
		}
		last = cur
	}
	if same < 3 {
		t.Fatalf("workflow state did not settle within 90s")
	}
	node.stop()
	return pool, done
}

// TestSweepKilled kills the node around SLA sweeps (overdue items get
// escalated, items due soon get a deadline-risk notification) and checks
// that after the restarts the workflow items, notifications and appended
// events equal those of a clean run without kills: nothing duplicated,
// nothing missed.
func TestSweepKilled(t *testing.T) {
	track(t)
	fixture := sweepFixture(20, time.Now())
	clean, _ := runSweepScenario(t, fixture, 0)
	crashed, kills := runSweepScenario(t, fixture, P.SweepKills)
	ci, cn, cd, ce := workflowState(t, clean)
	ki, kn, kd, ke := workflowState(t, crashed)
	if cd != 0 || kd != 0 {
		t.Errorf("duplicated notifications: clean %d, after kills %d", cd, kd)
	}
	if strings.Join(ci, "\n") != strings.Join(ki, "\n") {
		t.Errorf("workflow items differ from a clean run:\nclean:\n%s\nafter kills:\n%s", strings.Join(ci, "\n"), strings.Join(ki, "\n"))
	}
	if strings.Join(cn, "\n") != strings.Join(kn, "\n") {
		t.Errorf("notifications differ from a clean run:\nclean:\n%s\nafter kills:\n%s", strings.Join(cn, "\n"), strings.Join(kn, "\n"))
	}
	if ce != ke {
		t.Errorf("events differ from a clean run: clean %s, after kills %s", ce, ke)
	}
	escalated := 0
	for _, it := range ki {
		if strings.Contains(it, "|escalated|") {
			escalated++
		}
	}
	record("sweepkill", "review items (half overdue, half due within 30 min)", len(fixture))
	record("sweepkill", "kill -9 of the node around 1s SLA sweeps", kills)
	record("sweepkill", "items escalated (clean = after kills)", escalated)
	record("sweepkill", "notifications (clean / after kills), duplicates", fmt.Sprintf("%d / %d, %d", len(cn), len(kn), kd))
	record("sweepkill", "events by type after kills (equal to the clean run)", ke)
}
