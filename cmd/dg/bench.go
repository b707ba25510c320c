package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/store"
)

func newBenchCmds(a *app) []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure dg's throughput and latency against a PostgreSQL server",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchAppendCmd(a))
	cmd.AddCommand(newBenchProjectionsCmd(a))
	cmd.AddCommand(newBenchAPICmd(a))
	addDatabaseFlags(a, cmd)
	return []*cobra.Command{cmd}
}

func newBenchAppendCmd(a *app) *cobra.Command {
	var (
		events  int
		clients string
		raw     bool
		keep    bool
	)
	cmd := &cobra.Command{
		Use:   "append",
		Short: "Append throughput and latency from 1, 16 and 64 clients, against raw pgx baselines",
		Long: `append creates a scratch database on the server named by --database-url (or
DATABASE_URL; the role needs CREATEDB), migrates it, and appends --events
events of eight-event traces (TraceStarted, InputObserved, EntityObserved,
PolicyEvaluated, ExceptionRequested, ApprovalRecorded, ActionCommitted,
TraceFinished) from each number of concurrent clients, in four modes that
differ in how many events each client has in flight:

  dg        store Append, one event per call          1 in flight per client
  dg_trace  store AppendMany, one trace per call      8 in flight per client
  raw       plain pgx INSERTs, one trace per commit   8 in flight per client
  raw1      plain pgx INSERTs, one row per commit     1 in flight per client

dg and dg_trace go through validation, the rules, the hash chain and group
commit. raw and raw1 write the same rows into a copy of the log table (same
indexes) without validation, rules, hashing or triggers. It reports events/s,
p50/p99 latency (of the call or commit that carried each event) and the
ratios dg_trace/raw (same in-flight count), dg/raw and dg/raw1. The scratch
database is dropped afterwards unless --keep.

The figures depend on durability settings: the report shows fsync and
synchronous_commit as the server had them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			counts, err := parseClientCounts(clients)
			if err != nil {
				return usageError(err)
			}
			if events <= 0 {
				return usageError(fmt.Errorf("--events must be positive"))
			}
			ctx := cmd.Context()
			pool, cleanup, err := a.scratchDatabase(ctx, keep)
			if err != nil {
				return err
			}
			defer cleanup()
			if err := store.Migrate(ctx, pool); err != nil {
				return err
			}
			loadBefore := hostLoad()
			rep, err := store.RunAppendBench(ctx, pool, store.BenchOptions{
				Events: events, Clients: counts, Raw: raw,
				Progress: func(mode string, c int) {
					a.logger.Info("bench append", "mode", mode, "clients", c, "events", events)
				},
			})
			if err != nil {
				return err
			}
			// The host's load tells how much of the machine the run had.
			rep.Settings["host_cpus"] = strconv.Itoa(runtime.NumCPU())
			rep.Settings["host_load_before"] = loadBefore
			rep.Settings["host_load_after"] = hostLoad()
			if a.jsonOutput() {
				return writeJSON(a.stdout, rep)
			}
			printBenchAppend(a, rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&events, "events", 20000, "events per client count (whole traces of eight)")
	f.StringVar(&clients, "clients", "1,16,64", "comma-separated numbers of concurrent clients")
	f.BoolVar(&raw, "raw", true, "also measure the raw pgx baseline")
	f.BoolVar(&keep, "keep", false, "keep the scratch database")
	return cmd
}

// printBenchAppend prints one line per mode and client count, then the
// ratios, each naming the modes it compares.
func printBenchAppend(a *app, rep *store.BenchReport) {
	fmt.Fprintf(a.stdout, "PostgreSQL %s: fsync=%s synchronous_commit=%s wal_sync_method=%s full_page_writes=%s\n",
		rep.Settings["server_version"], rep.Settings["fsync"], rep.Settings["synchronous_commit"], rep.Settings["wal_sync_method"], rep.Settings["full_page_writes"])
	fmt.Fprintf(a.stdout, "host: %s CPUs, load average %s before, %s after\n", rep.Settings["host_cpus"], rep.Settings["host_load_before"], rep.Settings["host_load_after"])
	fmt.Fprintln(a.stdout, "modes: dg = store Append, 1 event per call; dg_trace = store AppendMany, 1 trace (8 events) per call;")
	fmt.Fprintln(a.stdout, "       raw = pgx INSERTs, 8 rows per commit; raw1 = pgx INSERTs, 1 row per commit. p50/p99: latency of the call or commit.")
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tmode\tin flight/client\tevents\tevents/s\tp50 ms\tp99 ms\tevents/commit\t")
	line := func(r *store.BenchRun, name string) {
		if r == nil {
			return
		}
		perCommit := 0.0
		if r.Commits > 0 {
			perCommit = float64(r.Events) / float64(r.Commits)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.1f\t\n", r.Clients, name, r.PerCall, r.Events, r.EventsPerSec, r.P50Ms, r.P99Ms, perCommit)
	}
	for _, r := range rep.Rows {
		line(&r.DG, "dg")
		line(r.DGTrace, "dg_trace")
		line(r.Raw, "raw")
		line(r.RawSingle, "raw1")
	}
	_ = tw.Flush()
	for _, r := range rep.Rows {
		if r.Raw == nil || r.RawSingle == nil {
			continue
		}
		fmt.Fprintf(a.stdout, "%d clients: dg_trace/raw %.2f (8 in flight each)   dg/raw %.2f (dg 1, raw 8 in flight)   dg/raw1 %.2f (1 in flight each)\n",
			r.Clients, r.RatioTrace, r.Ratio, r.RatioSingle)
	}
}

// hostLoad is the 1/5/15-minute load average, or "unknown" off Linux.
func hostLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func parseClientCounts(s string) ([]int, error) { return parseCounts("--clients", s) }

// parseCounts reads flag's comma-separated list of client counts.
func parseCounts(flag, s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n <= 0 || n > 1024 {
			return nil, fmt.Errorf("%s must be a comma-separated list of numbers between 1 and 1024, got %q", flag, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// scratchDatabase creates a throwaway database on the configured server and
// returns a pool on it and a function that drops it (unless keep).
func (a *app) scratchDatabase(ctx context.Context, keep bool) (*pgxpool.Pool, func(), error) {
	base, err := a.databaseURL()
	if err != nil {
		return nil, nil, err
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to database server: %w", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "dg_bench_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		_ = admin.Close(ctx)
		return nil, nil, fmt.Errorf("create scratch database (the role needs CREATEDB): %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		_ = admin.Close(ctx)
		return nil, nil, usageError(fmt.Errorf("database URL: %w", err))
	}
	u.Path = "/" + name
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		_ = admin.Close(ctx)
		return nil, nil, usageError(fmt.Errorf("database URL: %w", err))
	}
	cfg.MaxConns = 80 // 64 raw clients plus the appender
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	drop := func() {
		if pool != nil {
			pool.Close()
		}
		if keep {
			fmt.Fprintf(a.stderr, "kept scratch database %s\n", name)
		} else if _, err := admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(a.stderr, "dg: drop scratch database %s: %v\n", name, err)
		}
		_ = admin.Close(context.Background())
	}
	if err != nil {
		drop()
		return nil, nil, fmt.Errorf("connect to scratch database: %w", err)
	}
	return pool, drop, nil
}
