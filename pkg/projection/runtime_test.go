package projection_test

import (
	"context"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startRuntime(t *testing.T, st *store.Store) *projection.Runtime {
	t.Helper()
	rt := projection.NewRuntime(st, projection.RuntimeOptions{BatchSize: 16, Poll: 50 * time.Millisecond, RetryBase: 10 * time.Millisecond, DigestEvery: 100 * time.Millisecond})
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)
	return rt
}

func caughtUp(t *testing.T, pg *projection.PG, tenant string) bool {
	st, err := pg.Status(ctxT(t), tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Lag != 0 || s.Checkpoint != s.Head {
			return false
		}
	}
	return len(st) == 3
}

// TestRuntimeTwoProcesses: two runtimes on one database (as two dg
// processes would be) follow appends made while they run; each projection
// of each tenant has exactly one owner, and the result equals the
// in-memory projection of the same log.
func TestRuntimeTwoProcesses(t *testing.T) {
	pool := newStore(t).Pool()
	st1, err := store.New(ctxT(t), pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st1.Close()
	st2, err := store.New(ctxT(t), pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	envs := projection.Synthetic(projection.SynthOptions{Seed: 9, Traces: 30, Retries: 0.05})
	appendPG(t, st1, "a", envs[:len(envs)/2])
	rt1 := startRuntime(t, st1)
	rt2 := startRuntime(t, st2)
	appendPG(t, st1, "a", envs[len(envs)/2:])
	appendPG(t, st2, "b", projection.Synthetic(projection.SynthOptions{Seed: 10, Traces: 5}))
	waitFor(t, "tenant a caught up", func() bool { return caughtUp(t, rt1.PG(), "a") })
	waitFor(t, "tenant b caught up", func() bool { return caughtUp(t, rt1.PG(), "b") })
	owners := map[string]int{}
	waitFor(t, "every scope owned", func() bool {
		owners = map[string]int{}
		for _, ws := range append(rt1.Workers(), rt2.Workers()...) {
			if ws.State != projection.StateStandby {
				owners[ws.Tenant+":"+ws.Projection]++
			}
		}
		return len(owners) == 6
	})
	for k, n := range owners {
		if n != 1 {
			t.Errorf("%s has %d owners, want exactly 1", k, n)
		}
	}
	want := projectMemory(t, appendAll(t, "a", envs), "a").Digests()
	got, err := rt1.PG().LiveDigests(ctxT(t), "a")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("live digests %+v, memory %+v", got, want)
	}
	waitFor(t, "digest rows refreshed", func() bool {
		s, _ := rt1.PG().Status(ctxT(t), "a")
		return len(s) == 3 && s[0].Digest == want.ContextGraph && s[0].DigestLogSeq == s[0].Head
	})
}

// TestRuntimePoison: a poison event yields a failure row per projection,
// stops each checkpoint just before it, shows in status, and does not stop
// another tenant.
func TestRuntimePoison(t *testing.T) {
	st := newStore(t)
	appendPG(t, st, "bad", newTrace("p1").start("a1").evs)
	poison := insertPoison(t, st, "bad", "p1", 1)
	rt := startRuntime(t, st)
	appendPG(t, st, "good", newTrace("g1").start("a1").finish("success").evs)
	waitFor(t, "good caught up", func() bool { return caughtUp(t, rt.PG(), "good") })
	waitFor(t, "failures recorded", func() bool {
		s, err := rt.PG().Status(ctxT(t), "bad")
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range s {
			if x.OpenFailures != 1 {
				return false
			}
		}
		return len(s) == 3
	})
	s, _ := rt.PG().Status(ctxT(t), "bad")
	for _, x := range s {
		if x.Checkpoint != poison-1 || x.Lag != 1 || x.FirstFailure == nil || x.FirstFailure.LogSeq != poison ||
			x.FirstFailure.Code != "DG_ERR_CONFLICT" || x.FirstFailure.EventID != "poison-p1" {
			t.Errorf("status %+v, failure %+v", x, x.FirstFailure)
		}
	}
	for _, ws := range rt.Workers() {
		if ws.Tenant == "bad" && ws.State != projection.StateFailed {
			t.Errorf("worker %+v should be failed", ws)
		}
	}
}

// TestRuntimeRecoversLockSession: when the session holding the owner
// locks dies, the runtime opens a new one, its workers win their locks
// again and keep projecting.
func TestRuntimeRecoversLockSession(t *testing.T) {
	st := newStore(t)
	appendPG(t, st, "a", newTrace("t1").start("a1").evs)
	rt := startRuntime(t, st)
	waitFor(t, "caught up", func() bool { return caughtUp(t, rt.PG(), "a") })
	ownerLocks := func() int {
		var n int
		if err := st.Pool().QueryRow(ctxT(t), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND classid = x'64670002'::int::oid AND objsubid = 2`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, "three owner locks", func() bool { return ownerLocks() == 3 })
	var killed int
	if err := st.Pool().QueryRow(ctxT(t), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = x'64670002'::int::oid AND objsubid = 2`).Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminated %d sessions: %v", killed, err)
	}
	waitFor(t, "owner locks won again", func() bool { return ownerLocks() == 3 })
	appendPG(t, st, "a", newTrace("t2").start("a2").finish("success").evs)
	waitFor(t, "caught up after the loss", func() bool { return caughtUp(t, rt.PG(), "a") })
}

// TestRebuildWhileLive: rebuilds and verifies run while live workers
// follow concurrent appends; the swap serialises with their batches and the
// end state equals the in-memory projection of the whole log.
func TestRebuildWhileLive(t *testing.T) {
	st := newStore(t)
	envs := projection.Synthetic(projection.SynthOptions{Seed: 21, Traces: 60})
	appendPG(t, st, "a", envs[:len(envs)/3])
	rt := startRuntime(t, st)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := len(envs) / 3; i < len(envs); i++ {
			if _, err := st.Append(context.Background(), "a", &envs[i]); err != nil {
				t.Errorf("append: %v", err)
				return
			}
		}
	}()
	for i := 0; i < 3; i++ {
		if _, err := rt.PG().Rebuild(ctxT(t), projection.RebuildOptions{Tenant: "a"}); err != nil {
			t.Fatal(err)
		}
		rep, err := rt.PG().Verify(ctxT(t), "a", projection.SetAll)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Differences) != 0 {
			t.Errorf("verify while live found differences: %+v", rep.Differences)
		}
	}
	<-done
	for deadline := time.Now().Add(60 * time.Second); !caughtUp(t, rt.PG(), "a"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			st, _ := rt.PG().Status(ctxT(t), "a")
			t.Fatalf("timed out waiting for caught up:\nstatus %+v\nworkers %+v", st, rt.Workers())
		}
	}
	want := projectMemory(t, appendAll(t, "a", envs), "a").Digests()
	if got, _ := rt.PG().LiveDigests(ctxT(t), "a"); got != want {
		t.Errorf("after rebuilds while live: %+v, want %+v", got, want)
	}
}
