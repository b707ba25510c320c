package projection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

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
