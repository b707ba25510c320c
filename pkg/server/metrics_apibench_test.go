package server_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

// TestAPIBenchSmall runs the API benchmark with tiny numbers, with each
// client: every round completes without errors and reports its figures.
func TestAPIBenchSmall(t *testing.T) {
	for _, client := range []string{server.ClientLean, server.ClientNetHTTP} {
		t.Run(client, func(t *testing.T) { testAPIBenchSmall(t, client) })
	}
	ctx := context.Background()
	st, err := store.New(ctx, pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := server.RunAPIBench(ctx, st, server.APIBenchOptions{Clients: []int{1}, Reads: 4, Appends: 8, Client: "curl"}); err == nil {
		t.Fatal("an unknown client was accepted")
	}
}

func testAPIBenchSmall(t *testing.T, client string) {
	ctx := context.Background()
	st, err := store.New(ctx, pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := server.RunAPIBench(ctx, st, server.APIBenchOptions{Clients: []int{1, 4}, Reads: 40, Appends: 64, TraceEvents: 100, ReadTraces: 4, Client: client,
		ReadRate: 2000, RateClients: []int{4}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Client != client {
		t.Fatalf("report of client %q", rep.Client)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("rows: %+v", rep.Rows)
	}
	for _, r := range rep.Rows {
		for name, run := range map[string]*server.APIBenchRun{"read http": r.ReadHTTP, "read http warm": r.ReadHTTPWarm, "read store": r.ReadStore,
			"read store raw": r.ReadStoreRaw, "append http": r.AppendHTTP, "append store": r.AppendStore} {
			if run == nil || run.Errors != 0 || run.Ops == 0 || run.PerSec <= 0 || run.P99Ms < run.P50Ms {
				t.Errorf("%d clients, %s: %+v", r.Clients, name, run)
			}
		}
		// The paced rounds run only at the client counts asked for.
		paced := map[string]*server.APIBenchRun{"read http paced": r.ReadHTTPPaced, "read http warm paced": r.ReadHTTPWarmPaced}
		for name, run := range paced {
			switch {
			case r.Clients == 1 && run != nil:
				t.Errorf("1 client: %s ran: %+v", name, run)
			case r.Clients == 4 && (run == nil || run.Errors != 0 || run.Ops != 40 || run.P99Ms < run.P50Ms):
				t.Errorf("4 clients, %s: %+v", name, run)
			case r.Clients == 4 && run.Duration < 39.0/2000:
				// The last of 40 reads at 2,000/s is due 19.5 ms after
				// the start: a round that ends sooner was not paced.
				t.Errorf("4 clients, %s: 40 reads at 2000/s took %.4f s", name, run.Duration)
			}
		}
		// Every warm read is validated by a statement (its own or shared,
		// per-trace or tenant mark), and without appends by at most one.
		if st := r.WarmValidations + r.WarmMarkChecks; st <= 0 || st > 1 {
			t.Errorf("%d clients: %.3f per-trace and %.3f tenant mark statements per warm read", r.Clients, r.WarmValidations, r.WarmMarkChecks)
		}
	}
}

// BenchmarkAPITraceRead32 reads a 100-event trace over loopback HTTP from
// 32 clients (b.N reads in all), for profiling the read path:
//
//	go test -run '^$' -bench APITraceRead32 -cpuprofile cpu.out ./pkg/server
func BenchmarkAPITraceRead32(b *testing.B) {
	ctx := context.Background()
	st, err := store.New(ctx, pgtest.New(b), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	b.ResetTimer()
	rep, err := server.RunAPIBench(ctx, st, server.APIBenchOptions{Clients: []int{32}, Reads: max(b.N, 32), Appends: 8, TraceEvents: 100})
	if err != nil {
		b.Fatal(err)
	}
	r := rep.Rows[0]
	b.ReportMetric(r.ReadHTTP.PerSec, "http-reads/s")
	b.ReportMetric(r.ReadHTTP.P99Ms, "http-p99-ms")
	b.ReportMetric(r.ReadHTTPWarm.PerSec, "http-warm-reads/s")
	b.ReportMetric(r.ReadHTTPWarm.P99Ms, "http-warm-p99-ms")
	b.ReportMetric(r.ReadStoreRaw.PerSec, "store-raw-reads/s")
	b.ReportMetric(r.ReadStore.PerSec, "store-reads/s")
	b.ReportMetric(r.ReadStore.P99Ms, "store-p99-ms")
}

// BenchmarkAPITraceReadHTTP32 and BenchmarkAPITraceReadHTTP32Warm are
// BenchmarkAPITraceRead32's HTTP rounds alone, without (cold) and with
// (warm) the trace cache, so a CPU profile shows the HTTP read path
// (server and client) only. The servers write their access log to a file
// as dg bench api does by default:
//
//	go test -run '^$' -bench 'APITraceReadHTTP32$' -cpuprofile cpu.out ./pkg/server
func BenchmarkAPITraceReadHTTP32(b *testing.B)     { benchReadHTTP(b, false) }
func BenchmarkAPITraceReadHTTP32Warm(b *testing.B) { benchReadHTTP(b, true) }

func benchReadHTTP(b *testing.B, warm bool) {
	ctx := context.Background()
	st, err := store.New(ctx, pgtest.New(b), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	logFile, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	b.ResetTimer()
	rep, err := server.RunAPIBench(ctx, st, server.APIBenchOptions{Clients: []int{32}, Reads: max(b.N, 32), TraceEvents: 100, ReadsOnly: true, Warm: warm,
		AccessLog: logFile})
	if err != nil {
		b.Fatal(err)
	}
	run := rep.Rows[0].ReadHTTP
	if warm {
		run = rep.Rows[0].ReadHTTPWarm
	}
	if run.Errors > 0 {
		b.Fatalf("%d failed reads", run.Errors)
	}
	b.ReportMetric(run.PerSec, "http-reads/s")
	b.ReportMetric(run.P99Ms, "http-p99-ms")
	if warm {
		b.ReportMetric(rep.Rows[0].WarmValidations, "validations/read")
		b.ReportMetric(rep.Rows[0].WarmMarkChecks, "mark-checks/read")
	}
}
