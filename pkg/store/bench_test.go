package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/decisiongraph/dg/pkg/store"
)

// BenchmarkAppend measures, from 1, 16 and 64 clients, b.N events per mode:
// Store.Append with one event per call ("dg", one event in flight per
// client), Store.AppendMany with one eight-event trace per call ("dg_trace",
// eight in flight per client), and the raw pgx baselines with eight rows
// per commit ("raw") and one ("raw1"). It reports events/s and p50/p99 of
// each dg mode, the baselines' events/s and the ratios dg_trace/raw (same
// in-flight count), dg/raw and dg/raw1: the figures dg bench append prints.
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
			b.ReportMetric(r.DG.EventsPerSec, "dg-events/s")
			b.ReportMetric(r.DG.P50Ms, "dg-p50-ms")
			b.ReportMetric(r.DG.P99Ms, "dg-p99-ms")
			b.ReportMetric(r.DGTrace.EventsPerSec, "dg_trace-events/s")
			b.ReportMetric(r.DGTrace.P50Ms, "dg_trace-call-p50-ms")
			b.ReportMetric(r.Raw.EventsPerSec, "raw-events/s")
			b.ReportMetric(r.RawSingle.EventsPerSec, "raw1-events/s")
			b.ReportMetric(r.RatioTrace, "dg_trace/raw")
			b.ReportMetric(r.Ratio, "dg/raw")
			b.ReportMetric(r.RatioSingle, "dg/raw1")
			b.Logf("settings %v\n dg       (1 event per call)  %+v\n dg_trace (8 events per call) %+v\n raw      (8 rows per commit) %+v\n raw1     (1 row per commit)  %+v",
				rep.Settings, r.DG, *r.DGTrace, *r.Raw, *r.RawSingle)
		})
	}
}
