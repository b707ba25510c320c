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
		Short: "Append throughput and latency from 1, 16 and 64 clients, against a raw pgx baseline",
		Long: `append creates a scratch database on the server named by --database-url (or
DATABASE_URL; the role needs CREATEDB), migrates it, and appends --events
events of eight-event traces (TraceStarted, InputObserved, EntityObserved,
PolicyEvaluated, ExceptionRequested, ApprovalRecorded, ActionCommitted,
TraceFinished) through the store API from each number of concurrent clients.
It reports events/s and p50/p99 append latency, and in the same run the raw
baseline: the same rows written by plain pgx INSERTs (one trace of eight rows
per pgx batch and commit, per client) into a copy of the log table without
validation, rules, hashing or triggers, and the ratio dg/raw; raw1 is the
same with one row per commit (one event in flight per client, as for dg). The scratch
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
			fmt.Fprintf(a.stdout, "PostgreSQL %s: fsync=%s synchronous_commit=%s wal_sync_method=%s full_page_writes=%s\n",
				rep.Settings["server_version"], rep.Settings["fsync"], rep.Settings["synchronous_commit"], rep.Settings["wal_sync_method"], rep.Settings["full_page_writes"])
			fmt.Fprintf(a.stdout, "host: %s CPUs, load average %s before, %s after\n", rep.Settings["host_cpus"], rep.Settings["host_load_before"], rep.Settings["host_load_after"])
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "clients\tevents\tdg events/s\tp50 ms\tp99 ms\tevents/commit\traw events/s\traw p50 ms\traw p99 ms\tdg/raw\traw1 events/s\tdg/raw1\t")
			for _, r := range rep.Rows {
				perCommit := 0.0
				if r.DG.Commits > 0 {
					perCommit = float64(r.DG.Events) / float64(r.DG.Commits)
				}
				rawCols := "-\t-\t-\t-\t-\t-\t"
				if r.Raw != nil && r.RawSingle != nil {
					rawCols = fmt.Sprintf("%.0f\t%.2f\t%.2f\t%.2f\t%.0f\t%.2f\t", r.Raw.EventsPerSec, r.Raw.P50Ms, r.Raw.P99Ms, r.Ratio, r.RawSingle.EventsPerSec, r.RatioSingle)
				}
				fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.2f\t%.2f\t%.1f\t%s\n", r.Clients, r.DG.Events, r.DG.EventsPerSec, r.DG.P50Ms, r.DG.P99Ms, perCommit, rawCols)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.IntVar(&events, "events", 20000, "events per client count (whole traces of eight)")
	f.StringVar(&clients, "clients", "1,16,64", "comma-separated numbers of concurrent clients")
	f.BoolVar(&raw, "raw", true, "also measure the raw pgx baseline")
	f.BoolVar(&keep, "keep", false, "keep the scratch database")
	return cmd
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

func parseClientCounts(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n <= 0 || n > 1024 {
			return nil, fmt.Errorf("--clients must be a comma-separated list of numbers between 1 and 1024, got %q", s)
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
