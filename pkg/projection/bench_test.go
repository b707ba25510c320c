package projection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// TestRunBenchSmall runs the whole benchmark on a small log so its code
// path is exercised by every test run; figures come from the benchmarks
// below and from `dg bench projections`.
func TestRunBenchSmall(t *testing.T) {
	st := newStore(t)
	rep, err := projection.RunBench(ctxT(t), st, projection.BenchOptions{Events: 3000, Burst: 500, Queries: 20, DigestEvents: 500})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rebuild.Events != rep.Load.Events || rep.CatchUp.Events == 0 || rep.Subgraph.Queries != 20 || rep.Precedent.Queries != 20 {
		t.Errorf("report %+v", rep)
	}
	// The bulk-loaded log is a valid log: the store's verifier agrees.
	vr, err := st.Verify(ctxT(t), store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !vr.OK {
		t.Errorf("bulk-loaded log does not verify: %+v", vr)
	}
}

// benchStore returns a store holding a bulk-loaded synthetic log of about
// n events in tenant "bench", projected.
func benchStore(b *testing.B, n int) (*store.Store, *projection.PG, int) {
	b.Helper()
	ctx := context.Background()
	st, err := store.New(ctx, pgtest.New(b), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	l, err := projection.NewBulkLoader(ctx, st.Pool(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	traces := n / 9
	for first := 0; first < traces; first += 2000 {
		if _, err := l.Load(ctx, projection.Synthetic(projection.SynthOptions{Seed: uint64(first), Traces: min(2000, traces-first), FirstTrace: first})); err != nil {
			b.Fatal(err)
		}
	}
	pg := projection.NewPG(st, 0)
	if _, err := pg.Rebuild(ctx, projection.RebuildOptions{Tenant: "bench"}); err != nil {
		b.Fatal(err)
	}
	return st, pg, traces
}

func BenchmarkRebuild20k(b *testing.B) {
	_, pg, _ := benchStore(b, 20000)
	b.ResetTimer()
	var events int
	for b.Loop() {
		rep, err := pg.Rebuild(context.Background(), projection.RebuildOptions{Tenant: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		events += rep.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkRawRead20k(b *testing.B) {
	st, _, _ := benchStore(b, 20000)
	b.ResetTimer()
	var events int
	for b.Loop() {
		if _, err := st.Stream(context.Background(), "bench", 0, 5000, func(evs []*event.StoredEvent) error {
			events += len(evs)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkSubgraphDepth2(b *testing.B) {
	_, pg, traces := benchStore(b, 90000)
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		tr := r.IntN(traces)
		if _, err := pg.ContextSubgraph(context.Background(), "bench", projection.SubgraphQuery{NodeType: "trace",
			NodeID: fmt.Sprintf("%08x-0000-4000-8000-%012x", tr, tr), MaxDepth: 2}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrecedentSearch10kTraces(b *testing.B) {
	_, pg, _ := benchStore(b, 90000)
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		if _, err := pg.FindPrecedents(context.Background(), "bench", projection.PrecedentQuery{PolicyID: fmt.Sprintf("policy_%d", r.IntN(10)), Limit: 100}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOfflineDigest10k(b *testing.B) {
	envs := projection.Synthetic(projection.SynthOptions{Seed: 3, Traces: 1111})
	var events int
	for b.Loop() {
		res, err := projection.DigestOffline("default", []projection.EventFile{{Name: "synthetic", Events: envs}}, event.Options{})
		if err != nil {
			b.Fatal(err)
		}
		events += res.Appended
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkCatchUpBurst10k measures, on a 100k-event log, the lag of live
// runtime workers behind a burst of ~10k events committed at once (the
// catch-up figure of `dg bench projections`), and the CPU seconds the
// PostgreSQL cluster spent per burst (Linux; 0 elsewhere).
func BenchmarkCatchUpBurst10k(b *testing.B) {
	st, pg, traces := benchStore(b, 100000)
	ctx := context.Background()
	loader, err := projection.NewBulkLoader(ctx, st.Pool(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	rt := projection.NewRuntime(st, projection.RuntimeOptions{DigestEvery: -1})
	if err := rt.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer rt.Stop()
	var pid int
	if err := st.Pool().QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	postmaster := parentPID(pid)
	const burstTraces = 1111
	var lag time.Duration
	var pgCPU, goCPU float64
	i := 0
	b.ResetTimer()
	for b.Loop() {
		burst := projection.Synthetic(projection.SynthOptions{Seed: uint64(1<<40 + i), Traces: burstTraces, FirstTrace: traces + i*burstTraces})
		i++
		cpu0, self0 := childrenCPU(postmaster), selfCPU()
		d, _, err := projection.BurstLag(ctx, pg, loader, "bench", burst)
		if err != nil {
			b.Fatal(err)
		}
		pgCPU += childrenCPU(postmaster) - cpu0
		goCPU += selfCPU() - self0
		lag += d
	}
	b.ReportMetric(lag.Seconds()/float64(i), "lag-s/burst")
	b.ReportMetric(pgCPU/float64(i), "pg-cpu-s/burst")
	b.ReportMetric(goCPU/float64(i), "go-cpu-s/burst")
}

// procStat returns the parent pid and user+system CPU seconds of a process
// from /proc (USER_HZ is 100 on Linux); zeros when unreadable.
func procStat(pid int) (ppid int, cpu float64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	if len(f) < 13 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return ppid, (ut + st) / 100
}

// selfCPU is this process's user+system CPU seconds.
func selfCPU() float64 { _, cpu := procStat(os.Getpid()); return cpu }

func parentPID(pid int) int { p, _ := procStat(pid); return p }

// childrenCPU sums the CPU seconds of the live children of a process (the
// backends and workers of a postmaster).
func childrenCPU(parent int) float64 {
	if parent == 0 {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	var sum float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, cpu := procStat(pid); pp == parent {
			sum += cpu
		}
	}
	return sum
}
