package ops_test

import (
	"context"
	"fmt"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/store"
)

// benchDatabase uses the database at url for the benchmark (set
// DG_BENCH_DATABASE_URL to keep a large seeded log between runs): it is
// migrated and seeded with about n events when it has none.
func benchDatabase(b *testing.B, url string, tenants, n int) *seeded {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if err := store.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	var have int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM dg_event_log`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have == 0 {
		return seedInto(b, url, tenants, max(1, n/(tenants*8)))
	}
	return &seeded{url: url, events: have}
}

// emptyDatabase creates an empty database next to url's, dropped when
// the benchmark ends.
func emptyDatabase(b *testing.B, url string) string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("dg_bench_restore_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	u, err := neturl.Parse(url)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// benchRuns is how often each side runs (the faster counts):
// DG_BENCH_RUNS, default 2.
func benchRuns(b *testing.B) int {
	if v, ok := os.LookupEnv("DG_BENCH_RUNS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("DG_BENCH_RUNS=%q is not a positive number", v)
		}
		return n
	}
	return 2
}

// benchEvents is the log size of the backup benchmark: DG_BENCH_EVENTS,
// default 10000. Run the big sizes with
//
//	DG_BENCH_EVENTS=100000 go test ./pkg/ops -run '^$' -bench BenchmarkBackupAndDrill -benchtime 1x -timeout 60m
func benchEvents(b *testing.B) int {
	if v, ok := os.LookupEnv("DG_BENCH_EVENTS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("DG_BENCH_EVENTS=%q is not a positive number", v)
		}
		return n
	}
	return 10000
}

// plainTool runs a PostgreSQL client program the way an operator would.
func plainTool(b *testing.B, tool string, args ...string) time.Duration {
	b.Helper()
	start := time.Now()
	cmd := exec.Command(tool, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	return time.Since(start)
}

// BenchmarkBackupAndDrill compares dg backup with a plain pg_dump -Fc of
// the same database, and the drill (split into restore, chain check,
// rebuild and the rest) with a plain pg_restore of the same dump into the
// same server, in one run. Each side runs twice; the faster run counts.
func BenchmarkBackupAndDrill(b *testing.B) {
	n := benchEvents(b)
	const tenants = 4
	start := time.Now()
	var s *seeded
	if url, ok := os.LookupEnv("DG_BENCH_DATABASE_URL"); ok && url != "" {
		// A database kept between runs: seeded on first use only.
		s = benchDatabase(b, url, tenants, n)
	} else {
		s = seedDB(b, tenants, max(1, n/(tenants*8)))
	}
	b.Logf("%d events in %d tenants ready in %s", s.events, tenants, time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		b.Fatal(err)
	}
	server, err := ops.ServerVersion(ctx, conn)
	conn.Close(ctx)
	if err != nil {
		b.Fatal(err)
	}
	dumpTool, err := ops.FindTool(ctx, bkTools(), "pg_dump", server)
	if err != nil {
		b.Fatal(err)
	}
	restoreTool, err := ops.FindTool(ctx, bkTools(), "pg_restore", server)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		dir := b.TempDir()
		plainDump, dgBackup := time.Duration(1<<62), time.Duration(1<<62)
		var (
			m     *ops.BackupManifest
			dgDir string
		)
		for i := range benchRuns(b) {
			plainDump = min(plainDump, plainTool(b, dumpTool.Path, "--format=custom", "--file="+filepath.Join(dir, "plain"+strconv.Itoa(i)+".dump"), "--dbname="+s.url))
			t := time.Now()
			dgDir = filepath.Join(dir, "dg"+strconv.Itoa(i))
			m = takeBackup(b, s.url, dgDir, "")
			dgBackup = min(dgBackup, time.Since(t))
		}

		plainRestore := time.Duration(1 << 62)
		var drill *ops.DrillReport
		for range benchRuns(b) {
			target := emptyDatabase(b, s.url)
			plainRestore = min(plainRestore, plainTool(b, restoreTool.Path, "--no-owner", "--no-privileges", "--exit-on-error", "--jobs=2",
				"--dbname="+target, filepath.Join(dgDir, m.DumpFile)))
			cfg := drillConfig(dgDir, s.url)
			cfg.Jobs = 2
			rep, err := ops.Drill(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if !rep.Passed {
				b.Fatalf("drill failed: %v", failedChecks(rep))
			}
			if drill == nil || rep.Timings.TotalMS < drill.Timings.TotalMS {
				drill = rep
			}
		}
		t := drill.Timings
		other := t.TotalMS - t.RestoreMS - max(t.ChainMS, t.RebuildMS) // chain and rebuild overlap
		b.ReportMetric(float64(s.events), "events")
		b.ReportMetric(plainDump.Seconds(), "pg_dump_s")
		b.ReportMetric(dgBackup.Seconds(), "backup_s")
		b.ReportMetric(dgBackup.Seconds()/plainDump.Seconds(), "backup/pg_dump")
		b.ReportMetric(plainRestore.Seconds(), "pg_restore_s")
		b.ReportMetric(float64(t.RestoreMS)/1000, "drill_restore_s")
		b.ReportMetric(float64(t.ChainMS)/1000, "drill_chain_s")
		b.ReportMetric(float64(t.RebuildMS)/1000, "drill_rebuild_s")
		b.ReportMetric(float64(other)/1000, "drill_other_s")
		b.ReportMetric(float64(t.TotalMS)/1000, "drill_total_s")
		b.Logf("%d events, dump %d bytes: pg_dump -Fc %s, dg backup %s (ratio %.2f); pg_restore -j2 %s; drill %s = restore %s + (chain %s in parallel with rebuild %s) + other %s",
			s.events, m.SizeBytes, plainDump.Round(time.Millisecond), dgBackup.Round(time.Millisecond), dgBackup.Seconds()/plainDump.Seconds(),
			plainRestore.Round(time.Millisecond), time.Duration(t.TotalMS)*time.Millisecond, time.Duration(t.RestoreMS)*time.Millisecond,
			time.Duration(t.ChainMS)*time.Millisecond, time.Duration(t.RebuildMS)*time.Millisecond, time.Duration(other)*time.Millisecond)
	}
}
