package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/decisiongraph/dg/pkg/store"
)

// BenchmarkAppend measures Store.Append (validation, rules, hash chain,
// group commit) and the raw pgx baseline from 1, 16 and 64 clients, b.N
// events per run, reporting events/s, p50/p99 latency and dg/raw.
//
// The figures only mean something with fsync=on and synchronous_commit=on:
// point DG_BENCH_DATABASE_URL at such a server (the development cluster
// runs with fsync=off); it defaults to DG_TEST_DATABASE_URL.
//
//	go test ./pkg/store -run '^$' -bench Append -benchtime 20000x
func BenchmarkAppend(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			// The raw baseline's 64 clients each need a connection.
			pool := newBenchDB(b, 80)
			b.ResetTimer()
			rep, err := store.RunAppendBench(context.Background(), pool, store.BenchOptions{Events: b.N, Clients: []int{clients}, Raw: true})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			r := rep.Rows[0]
			b.ReportMetric(r.DG.EventsPerSec, "events/s")
			b.ReportMetric(r.DG.P50Ms, "p50-ms")
			b.ReportMetric(r.DG.P99Ms, "p99-ms")
			b.ReportMetric(r.Raw.EventsPerSec, "raw-events/s")
			b.ReportMetric(r.Ratio, "dg/raw")
			b.ReportMetric(r.RatioSingle, "dg/raw1")
			b.Logf("settings %v; dg %+v; raw %+v; raw1 %+v", rep.Settings, r.DG, *r.Raw, *r.RawSingle)
		})
	}
}
