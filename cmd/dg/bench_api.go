package main

import (
	"fmt"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

func newBenchAPICmd(a *app) *cobra.Command {
	var (
		o       server.APIBenchOptions
		clients string
		keep    bool
	)
	cmd := &cobra.Command{
		Use:   "api",
		Short: "HTTP API trace-read and append latency and throughput, against the in-process store path",
		Long: `api creates a scratch database on the server named by --database-url (or
DATABASE_URL; the role needs CREATEDB), migrates it, appends one trace of
--trace-events events and catches the projections up. It then serves the API
on a loopback port and, from each number of concurrent clients, measures in
the same run:

  read    GET /api/v1/traces/{id} (events and projected summary) over HTTP,
          against store.TraceEvents plus the same JSON encoding in-process;
  append  POST /api/v1/events over HTTP, against store.Append in-process.

It reports requests/s and p50/p99 latency of each, the host's load average
and the ratio HTTP/in-process. Targets: trace read p99 < 5 ms at 32 clients
and >= 5,000 reads/s; appends >= 5,000 events/s at 128 clients.

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
			o.Clients = counts
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
			fmt.Fprintf(a.stdout, "host: %d CPUs, load average %s before, %s after; trace of %d events\n", runtime.NumCPU(), loadBefore, loadAfter, rep.TraceEvents)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "clients\tpath\tHTTP req/s\tp50 ms\tp99 ms\terrors\tin-process ops/s\tp50 ms\tp99 ms\tHTTP/in-process\t")
			for _, r := range rep.Rows {
				fmt.Fprintf(tw, "%d\tread\t%.0f\t%.2f\t%.2f\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t\n", r.Clients, r.ReadHTTP.PerSec, r.ReadHTTP.P50Ms, r.ReadHTTP.P99Ms,
					r.ReadHTTP.Errors, r.ReadStore.PerSec, r.ReadStore.P50Ms, r.ReadStore.P99Ms, r.ReadRatio)
				fmt.Fprintf(tw, "%d\tappend\t%.0f\t%.2f\t%.2f\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t\n", r.Clients, r.AppendHTTP.PerSec, r.AppendHTTP.P50Ms, r.AppendHTTP.P99Ms,
					r.AppendHTTP.Errors, r.AppendStore.PerSec, r.AppendStore.P50Ms, r.AppendStore.P99Ms, r.AppendRatio)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&clients, "clients", "1,32,128", "comma-separated numbers of concurrent clients")
	f.IntVar(&o.Reads, "reads", 20000, "trace reads per client count (HTTP and in-process each)")
	f.IntVar(&o.Appends, "appends", 20000, "events appended per client count (HTTP and in-process each)")
	f.IntVar(&o.TraceEvents, "trace-events", 100, "events in the trace that is read")
	f.BoolVar(&keep, "keep", false, "keep the scratch database")
	return cmd
}
