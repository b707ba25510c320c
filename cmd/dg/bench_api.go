package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

func newBenchAPICmd(a *app) *cobra.Command {
	var (
		o         server.APIBenchOptions
		clients   string
		paced     string
		keep      bool
		accessLog string
	)
	cmd := &cobra.Command{
		Use:   "api",
		Short: "HTTP API trace-read and append latency and throughput, against the in-process store path",
		Long: `api creates a scratch database on the server named by --database-url (or
DATABASE_URL; the role needs CREATEDB), migrates it, appends --read-traces
traces (64) of --trace-events events (100) and catches the projections up.
Read rounds spread their requests over those traces, so concurrent requests
rarely read the same one (--read-traces 1 measures a single hot trace). It then serves the API
on a loopback port and, from each number of concurrent clients, measures in
the same run:

  read         GET /api/v1/traces/{id} (events and projected summary) over
               HTTP with no trace cache (cold: every request reads and
               renders all events), against the in-process baseline of
               earlier runs (store.TraceEvents plus event.EncodeStoredEvent);
  read-warm    the same route on a second server with the trace cache
               (--trace-cache-bytes), warmed by one read: every request
               is still checked against the database by a statement that
               started after it arrived (the tenant's last event and the
               projection's cursor, shared by concurrent requests; or,
               when those changed, the trace's last event and summary),
               but reuses the rendered events;
  read-raw     in-process only: the handler's one-statement read and
               rendering without HTTP or cache;
  append       POST /api/v1/events over HTTP, against store.Append in-process.

Those rounds are closed loops: each client sends its next request as soon
as it has the last answer, so they measure the most the clients get
through and the latency at that load, with the machine saturated. At the
client counts of --rate-clients (32) the reads are also run paced, cold
and warm (read-paced, read-warm-paced): the clients together offer
--read-rate requests per second (5,000) on a fixed schedule, and each
latency runs from the time its request was due, so a stall counts against
every request it delays (an open-loop load as wrk2 makes it, free of
coordinated omission). --read-rate 0 skips them.

The client runs in the same process as the servers, on the same CPUs:
--client lean (the default) is a minimal keep-alive HTTP/1.1 client, as a
load generator such as wrk would be; --client net/http is the standard
library's client, which takes a good share of a small machine's CPU.

The servers log as dg up does (one JSON access-log line per request), into
a temporary file removed at the end (--access-log).

It reports requests/s and p50/p99 latency of each, the host's load average
and the ratio HTTP/in-process, and ends with the targets at 32 and 128
clients: trace read p99 < 5 ms and >= 5,000 reads/s at 32 clients (cold and
warm shown separately, closed loop and, when run, paced at --read-rate);
appends >= 5,000 events/s at 128 clients.

Exit status: 0 measured, 2 bad flags or no database configured, 3 the
benchmark could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			counts, err := parseClientCounts(clients)
			if err != nil {
				return usageError(err)
			}
			if o.Reads <= 0 || o.Appends <= 0 || o.TraceEvents < 2 {
				return usageError(fmt.Errorf("--reads and --appends must be positive and --trace-events at least 2"))
			}
			switch accessLog {
			case "file":
				f, err := os.CreateTemp("", "dg-bench-api-access-*.log")
				if err != nil {
					return fmt.Errorf("bench api: access log file: %w", err)
				}
				defer os.Remove(f.Name())
				defer f.Close()
				o.AccessLog = f
			case "discard":
				o.AccessLog = io.Discard
			case "off":
			default:
				return usageError(fmt.Errorf("--access-log must be file, discard or off, not %q", accessLog))
			}
			if o.Client != server.ClientLean && o.Client != server.ClientNetHTTP {
				return usageError(fmt.Errorf("--client must be %s or %s, not %q", server.ClientLean, server.ClientNetHTTP, o.Client))
			}
			o.Clients = counts
			if o.RateClients, err = parseCounts("--rate-clients", paced); err != nil {
				return usageError(err)
			}
			if o.ReadRate < 0 {
				return usageError(fmt.Errorf("--read-rate must be 0 (no paced rounds) or positive, not %g", o.ReadRate))
			}
			o.Progress = func(path string, c int) { a.logger.Info("bench api", "path", path, "clients", c) }
			ctx := cmd.Context()
			pool, cleanup, err := a.scratchDatabase(ctx, keep)
			if err != nil {
				return err
			}
			defer cleanup()
			if err := store.Migrate(ctx, pool); err != nil {
				return err
			}
			st, err := store.New(ctx, pool, store.Options{})
			if err != nil {
				return err
			}
			defer st.Close()
			loadBefore := hostLoad()
			rep, err := server.RunAPIBench(ctx, st, o)
			if err != nil {
				return err
			}
			loadAfter := hostLoad()
			if a.jsonOutput() {
				return writeJSON(a.stdout, map[string]any{"report": rep, "host_cpus": runtime.NumCPU(), "host_load_before": loadBefore, "host_load_after": loadAfter})
			}
			fmt.Fprintf(a.stdout, "host: %d CPUs, load average %s before, %s after; reads spread over %d traces of %d events; %s client; access log %s\n", runtime.NumCPU(), loadBefore, loadAfter, rep.ReadTraces, rep.TraceEvents, rep.Client, accessLog)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "clients\tpath\tHTTP req/s\tp50 ms\tp99 ms\terrors\tin-process ops/s\tp50 ms\tp99 ms\tHTTP/in-process\t")
			for _, r := range rep.Rows {
				fmt.Fprintf(tw, "%d\tread\t%.0f\t%.2f\t%.2f\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t\n", r.Clients, r.ReadHTTP.PerSec, r.ReadHTTP.P50Ms, r.ReadHTTP.P99Ms,
					r.ReadHTTP.Errors, r.ReadStore.PerSec, r.ReadStore.P50Ms, r.ReadStore.P99Ms, r.ReadRatio)
				if w := r.ReadHTTPWarm; w != nil {
					fmt.Fprintf(tw, "%d\tread-warm\t%.0f\t%.2f\t%.2f\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t\n", r.Clients, w.PerSec, w.P50Ms, w.P99Ms,
						w.Errors, r.ReadStore.PerSec, r.ReadStore.P50Ms, r.ReadStore.P99Ms, ratioOf(w.PerSec, r.ReadStore.PerSec))
				}
				for _, p := range []struct {
					path string
					run  *server.APIBenchRun
				}{{"read-paced", r.ReadHTTPPaced}, {"read-warm-paced", r.ReadHTTPWarmPaced}} {
					if p.run != nil {
						fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.2f\t%.2f\t%d\t-\t-\t-\t-\t\n", r.Clients, p.path, p.run.PerSec, p.run.P50Ms, p.run.P99Ms, p.run.Errors)
					}
				}
				if raw := r.ReadStoreRaw; raw != nil {
					fmt.Fprintf(tw, "%d\tread-raw\t-\t-\t-\t%d\t%.0f\t%.2f\t%.2f\t-\t\n", r.Clients, raw.Errors, raw.PerSec, raw.P50Ms, raw.P99Ms)
				}
				fmt.Fprintf(tw, "%d\tappend\t%.0f\t%.2f\t%.2f\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t\n", r.Clients, r.AppendHTTP.PerSec, r.AppendHTTP.P50Ms, r.AppendHTTP.P99Ms,
					r.AppendHTTP.Errors, r.AppendStore.PerSec, r.AppendStore.P50Ms, r.AppendStore.P99Ms, r.AppendRatio)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, r := range rep.Rows {
				switch r.Clients {
				case 32:
					fmt.Fprintf(a.stdout, "target read @32 clients (p99 < 5 ms, >= 5000/s), closed loop: cold %.0f/s p99 %.2f ms %s", r.ReadHTTP.PerSec, r.ReadHTTP.P99Ms, verdict(r.ReadHTTP.PerSec >= 5000 && r.ReadHTTP.P99Ms < 5))
					if w := r.ReadHTTPWarm; w != nil {
						fmt.Fprintf(a.stdout, "; warm (trace cache) %.0f/s p99 %.2f ms %s (per read: %.3f per-trace validation and %.3f tenant mark statements)", w.PerSec, w.P99Ms,
							verdict(w.PerSec >= 5000 && w.P99Ms < 5), r.WarmValidations, r.WarmMarkChecks)
					}
					fmt.Fprintln(a.stdout)
					if p := r.ReadHTTPPaced; p != nil {
						// Paced, the round shows the latency at the offered
						// rate; the closed loop shows whether the clients get
						// through 5,000 reads/s at all.
						fmt.Fprintf(a.stdout, "target read @32 clients, paced at %.0f/s offered: cold %.0f/s p99 %.2f ms %s", rep.ReadRate, p.PerSec, p.P99Ms,
							verdict(rep.ReadRate >= 5000 && r.ReadHTTP.PerSec >= 5000 && p.P99Ms < 5))
						if w := r.ReadHTTPWarmPaced; w != nil {
							fmt.Fprintf(a.stdout, "; warm (trace cache) %.0f/s p99 %.2f ms %s", w.PerSec, w.P99Ms,
								verdict(rep.ReadRate >= 5000 && r.ReadHTTPWarm.PerSec >= 5000 && w.P99Ms < 5))
						}
						fmt.Fprintln(a.stdout)
					}
				case 128:
					fmt.Fprintf(a.stdout, "target append @128 clients (>= 5000 events/s): %.0f/s %s\n", r.AppendHTTP.PerSec, verdict(r.AppendHTTP.PerSec >= 5000))
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&clients, "clients", "1,32,128", "comma-separated numbers of concurrent clients")
	f.IntVar(&o.Reads, "reads", 20000, "trace reads per client count (HTTP and in-process each)")
	f.IntVar(&o.Appends, "appends", 20000, "events appended per client count (HTTP and in-process each)")
	f.Float64Var(&o.ReadRate, "read-rate", 5000, "reads per second the paced read rounds offer (0: no paced rounds)")
	f.StringVar(&paced, "rate-clients", "32", "comma-separated client counts at which the reads are also run paced")
	f.IntVar(&o.TraceEvents, "trace-events", 100, "events in each trace that is read")
	f.IntVar(&o.ReadTraces, "read-traces", 64, "traces the read rounds spread over (1: every request reads the same hot trace)")
	f.BoolVar(&keep, "keep", false, "keep the scratch database")
	f.StringVar(&accessLog, "access-log", "file", "the servers' access log: file (JSON lines at INFO written to a temporary file, as dg up writes them to stderr), discard (formatted, not written) or off")
	f.StringVar(&o.Client, "client", server.ClientLean, "the benchmark's HTTP client: lean (internal/loadgen, little CPU of its own) or net/http (the standard library's)")
	f.Int64Var(&o.TraceCacheBytes, "trace-cache-bytes", server.DefaultTraceCacheBytes, "trace cache of the warm read rounds (negative: no warm rounds)")
	return cmd
}

func ratioOf(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func verdict(met bool) string {
	if met {
		return "MET"
	}
	return "NOT MET"
}
