package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

func newBenchProjectionsCmd(a *app) *cobra.Command {
	var o projection.BenchOptions
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Rebuild, catch-up and query speed of the projections, against a raw log read",
		Long: `projections creates a scratch database on the server named by --database-url
(or DATABASE_URL; the role needs CREATEDB), migrates it and bulk-loads a
generated log of --events events (valid by construction, hashed and chained
as the appender would). It then measures, in order: a raw sequential read of
the whole log (the baseline every projection pass pays), a full rebuild into
fresh per-tenant tables (COPY, bulk index builds, digests) and the
partition swap, the lag of live runtime workers behind a burst of --burst
more events committed at once, --queries depth-2 context subgraphs and
precedent searches (p50/p99), and the offline in-memory digest of a
--digest-events log. The scratch database is dropped afterwards.

Targets: rebuild >= 50,000 events/s (1M events under 30 s), catch-up lag
< 1 s after a burst of 10,000 events committed at once (live runtime
workers, woken by the commit's NOTIFY), subgraph p99 < 10 ms, precedent
search p99 < 20 ms. The last lines say which targets the run met.

Exit status: 0 measured, 2 bad flags or no database configured, 3 the
benchmark could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url, err := a.databaseURL()
			if err != nil {
				return err
			}
			if !a.jsonOutput() {
				o.Progress = a.stderr
			}
			var rep *projection.BenchReport
			err = projection.WithThrowawayDB(cmd.Context(), url, "dg_bench_proj_", event.Options{}, func(st *store.Store) error {
				var err error
				rep, err = projection.RunBench(cmd.Context(), st, o)
				return err
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return writeProjectionsJSON(a, rep)
			}
			w := a.stdout
			ratio := 0.0
			if rep.RawRead.EventsPerS > 0 {
				ratio = rep.Rebuild.EventsPerS / rep.RawRead.EventsPerS
			}
			fmt.Fprintf(w, "log: %d events in %d traces (bulk load %.0f events/s)\n", rep.Load.Events, rep.Traces, rep.Load.EventsPerS)
			fmt.Fprintf(w, "raw sequential read (baseline)   %10.0f events/s  %7.2f s\n", rep.RawRead.EventsPerS, rep.RawRead.Seconds)
			fmt.Fprintf(w, "full rebuild (build+digest+swap) %10.0f events/s  %7.2f s  (project %.2f s, index+digest %.2f s, swap %.2f s)  %.2fx the raw read\n",
				rep.Rebuild.EventsPerS, rep.Rebuild.Seconds, rep.RebuildProjectS, rep.RebuildIndexS, rep.RebuildSwapS, ratio)
			fmt.Fprintf(w, "catch-up lag after a burst       %10.2f s  (%d events committed at once, live runtime workers; %.0f events/s)\n", rep.CatchUpLag, rep.CatchUp.Events, rep.CatchUp.EventsPerS)
			fmt.Fprintf(w, "subgraph depth 2                 p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d queries)\n", rep.Subgraph.P50ms, rep.Subgraph.P99ms, rep.Subgraph.MaxMs, rep.Subgraph.Queries)
			fmt.Fprintf(w, "precedent search                 p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d queries over %d traces)\n", rep.Precedent.P50ms, rep.Precedent.P99ms, rep.Precedent.MaxMs, rep.Precedent.Queries, rep.Traces)
			fmt.Fprintf(w, "offline digest (in memory)       %10.0f events/s  %7.2f s  (%d events)\n", rep.Offline.EventsPerS, rep.Offline.Seconds, rep.Offline.Events)
			met := func(ok bool) string {
				if ok {
					return "met"
				}
				return "NOT met"
			}
			fmt.Fprintf(w, "targets: rebuild >= 50000 events/s: %s (%.0f)", met(rep.Rebuild.EventsPerS >= 50000), rep.Rebuild.EventsPerS)
			if rep.Rebuild.Events >= 1000000 {
				fmt.Fprintf(w, "; 1M rebuilt in < 30 s: %s (%.1f s)", met(rep.Rebuild.Seconds < 30), rep.Rebuild.Seconds)
			}
			fmt.Fprintf(w, "; catch-up lag < 1 s after a %d burst: %s (%.2f s)", rep.CatchUp.Events, met(rep.CatchUpLag < 1), rep.CatchUpLag)
			fmt.Fprintf(w, "; subgraph p99 < 10 ms: %s; precedent p99 < 20 ms: %s\n", met(rep.Subgraph.P99ms < 10), met(rep.Precedent.P99ms < 20))
			fmt.Fprintf(w, "host load average at the end: %s\n", hostLoad())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Events, "events", 100000, "size of the generated log")
	f.IntVar(&o.Burst, "burst", 10000, "events appended before measuring catch-up")
	f.IntVar(&o.Queries, "queries", 1000, "subgraph and precedent queries to time")
	f.IntVar(&o.DigestEvents, "digest-events", 10000, "size of the log for the offline digest")
	f.Uint64Var(&o.Seed, "seed", 1, "generator seed")
	return cmd
}
