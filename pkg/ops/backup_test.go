package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/projection"
)

// TestBackupThenDrillPasses seeds >= 10k events over four tenants, backs
// them up and drills the backup: every check passes, the manifest records
// what the snapshot held, and the JSON report has the documented shape.
func TestBackupThenDrillPasses(t *testing.T) {
	start := time.Now()
	s := seedDB(t, 4, 330)
	if s.events < 10000 {
		t.Fatalf("seeded only %d events; the test wants at least 10k", s.events)
	}
	t.Logf("seeded %d events in %s", s.events, time.Since(start))
	dir := t.TempDir()
	var progress bytes.Buffer
	m, err := ops.Backup(bkCtx(t), ops.BackupConfig{DatabaseURL: s.url, Dir: dir, Label: "nightly", Tools: bkTools(), DGVersion: "test",
		Progress: &progress, ProgressEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup %s: %d bytes in %d ms", m.ID, m.SizeBytes, m.DurationMS)
	if !strings.HasSuffix(m.ID, "-nightly") || m.Format != ops.BackupFormat || m.Snapshot == "" || len(m.SHA256) != 64 || m.Database == "" {
		t.Errorf("manifest header = %+v", m)
	}
	if !strings.Contains(progress.String(), "written") {
		t.Errorf("no progress on the progress writer: %q", progress.String())
	}
	if m.State.Events != s.events || len(m.State.Tenants) != 4 || m.State.SchemaVersion == 0 || m.State.NewestEventAt == nil {
		t.Errorf("manifest state: events %d (want %d), tenants %d, schema %d", m.State.Events, s.events, len(m.State.Tenants), m.State.SchemaVersion)
	}
	pg := projection.NewPG(s.st, 0)
	for _, ts := range m.State.Tenants {
		live, err := pg.LiveDigests(bkCtx(t), ts.TenantID)
		if err != nil {
			t.Fatal(err)
		}
		if live != ts.Digests {
			t.Errorf("tenant %s: manifest digests %+v, live %+v", ts.TenantID, ts.Digests, live)
		}
		head, _ := s.st.ChainHead(bkCtx(t), ts.TenantID)
		if ts.ChainHead != head.ChainHash || ts.Events != head.EventCount || ts.HeadLogSeq != head.LogSeq {
			t.Errorf("tenant %s: manifest %+v, chain head %+v", ts.TenantID, ts, head)
		}
		if ts.Checkpoints[projection.TraceSummary] != ts.HeadLogSeq {
			t.Errorf("tenant %s: checkpoints %v, head %d", ts.TenantID, ts.Checkpoints, ts.HeadLogSeq)
		}
	}
	// The sidecar is on disk, fsynced, and the dump matches it.
	if _, err := os.Stat(filepath.Join(dir, m.ID+".json")); err != nil {
		t.Fatal(err)
	}
	if err := ops.VerifyChecksum(filepath.Join(dir, m.DumpFile), m); err != nil {
		t.Fatal(err)
	}
	vr, err := ops.VerifyBackup(bkCtx(t), dir, m.ID, bkTools(), time.Now())
	if err != nil || !vr.OK || !slices.Contains(vr.TOC.Tables, "dg_event_log") {
		t.Fatalf("verify: %+v, %v", vr, err)
	}

	reports := t.TempDir()
	cfg := drillConfig(dir, s.url)
	cfg.ReportDir = reports
	rep, err := ops.Drill(bkCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drill timings: %+v", rep.Timings)
	if !rep.Passed {
		t.Fatalf("drill failed: %v", failedChecks(rep))
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
		if c.Status == ops.CheckSkip && c.Name != ops.CheckWorkflow {
			t.Errorf("check %s skipped: %s", c.Name, c.Details)
		}
	}
	if !slices.Equal(names, ops.DrillCheckNames()) {
		t.Errorf("checks %v, want %v", names, ops.DrillCheckNames())
	}
	if rep.Timings.RestoreMS <= 0 || rep.Timings.TotalMS < rep.Timings.RestoreMS || rep.RPO.NewestEventAt == nil {
		t.Errorf("timings %+v, rpo %+v", rep.Timings, rep.RPO)
	}
	checkReportSchema(t, rep.ReportFiles)

	// The result is recorded against the backup.
	list, err := ops.ListBackups(dir)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	if d := list[0].LastDrill; d == nil || !d.Passed {
		t.Errorf("drill not recorded: %+v", list[0].LastDrill)
	}
	if v := list[0].LastVerify; v == nil || !v.OK {
		t.Errorf("verify not recorded: %+v", list[0].LastVerify)
	}
}

// checkReportSchema reads the JSON report back and checks the keys
// docs/backup.md documents, and that the Markdown twin exists.
func checkReportSchema(t *testing.T, files []string) {
	t.Helper()
	if len(files) != 2 || !strings.HasSuffix(files[0], ".json") || !strings.HasSuffix(files[1], ".md") {
		t.Fatalf("report files %v", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"format", "backup_id", "backup_file", "size_bytes", "events", "tenants", "started_at", "finished_at",
		"passed", "failed_checks", "checks", "timings", "rpo", "scratch", "report_files"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	if doc["format"] != ops.DrillReportFormat {
		t.Errorf("format %v", doc["format"])
	}
	tm := doc["timings"].(map[string]any)
	for _, k := range []string{"checksum_ms", "scratch_ms", "restore_ms", "verify_ms", "chain_ms", "rebuild_ms", "total_ms", "teardown_ms"} {
		if _, ok := tm[k]; !ok {
			t.Errorf("timings lack %q", k)
		}
	}
	rpo := doc["rpo"].(map[string]any)
	for _, k := range []string{"backup_finished_at", "backup_age_seconds", "newest_event_at", "newest_event_age_seconds"} {
		if _, ok := rpo[k]; !ok {
			t.Errorf("rpo lacks %q", k)
		}
	}
	for _, c := range doc["checks"].([]any) {
		cm := c.(map[string]any)
		for _, k := range []string{"name", "status", "details", "duration_ms"} {
			if _, ok := cm[k]; !ok {
				t.Errorf("check %v lacks %q", cm["name"], k)
			}
		}
	}
	md, err := os.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| chain | PASS |") {
		t.Errorf("markdown report:\n%s", md)
	}
}

// TestDrillInjectedFaults proves each fault makes the drill fail on its
// check, and the backup itself is never modified nor marked.
func TestDrillInjectedFaults(t *testing.T) {
	s := seedDB(t, 2, 40)
	dir := t.TempDir()
	m := takeBackup(t, s.url, dir, "")
	dump := filepath.Join(dir, m.DumpFile)
	before := fileSum(t, dump)
	for _, fault := range ops.Faults() {
		t.Run(fault, func(t *testing.T) {
			cfg := drillConfig(dir, s.url)
			cfg.Inject = fault
			cfg.ReportDir = t.TempDir()
			rep, err := ops.Drill(bkCtx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Passed {
				t.Fatalf("drill with %s passed", fault)
			}
			t.Logf("failed: %v", failedChecks(rep))
			want := ops.FaultCheck(fault)
			if c := rep.Check(want); c == nil || c.Status != ops.CheckFail {
				t.Fatalf("check %s = %+v; failures: %v", want, c, failedChecks(rep))
			}
			if !slices.Contains(rep.Failed, want) {
				t.Errorf("failed_checks %v lacks %s", rep.Failed, want)
			}
			if fault == ops.FaultStaleProjection {
				// The log is intact: only derived state is wrong, and a
				// rebuild from the log gives the manifest's digests.
				for _, n := range []string{ops.CheckChain, ops.CheckSequences, ops.CheckRebuild} {
					if c := rep.Check(n); c.Status != ops.CheckPass {
						t.Errorf("%s with a stale projection: %+v", n, c)
					}
				}
			}
			if fault == ops.FaultFlipByte || fault == ops.FaultTruncate {
				if c := rep.Check(ops.CheckRestore); c.Status != ops.CheckSkip {
					t.Errorf("a corrupt dump was restored: %+v", c)
				}
			}
		})
	}
	if fileSum(t, dump) != before {
		t.Fatal("fault injection modified the backup")
	}
	if err := ops.VerifyChecksum(dump, m); err != nil {
		t.Fatal(err)
	}
	list, _ := ops.ListBackups(dir)
	if list[0].LastDrill != nil {
		t.Errorf("a fault-injection drill was recorded against the backup: %+v", list[0].LastDrill)
	}
}

// TestCorruptDumpCaught: a damaged dump file fails dg backup verify and
// the drill's checksum check, before anything is restored.
func TestCorruptDumpCaught(t *testing.T) {
	s := seedDB(t, 1, 20)
	src := t.TempDir()
	m := takeBackup(t, s.url, src, "")
	dir := copyBackup(t, src, m)
	path := filepath.Join(dir, m.DumpFile)
	b, _ := os.ReadFile(path)
	b[len(b)/3] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	vr, err := ops.VerifyBackup(bkCtx(t), dir, "latest", bkTools(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if vr.OK || !strings.Contains(vr.Problem, "sha256") {
		t.Fatalf("verify of a corrupt dump: %+v", vr)
	}
	rep, err := ops.Drill(bkCtx(t), drillConfig(dir, s.url))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed || rep.Check(ops.CheckChecksum).Status != ops.CheckFail || rep.Check(ops.CheckRestore).Status != ops.CheckSkip {
		t.Fatalf("drill of a corrupt dump: %+v", rep.Checks)
	}
	if rep.Scratch.Kind != "" {
		t.Errorf("a scratch target was made for a corrupt dump: %+v", rep.Scratch)
	}
	list, _ := ops.ListBackups(dir)
	if list[0].LastVerify == nil || list[0].LastVerify.OK || list[0].LastDrill == nil || list[0].LastDrill.Passed {
		t.Errorf("records: verify %+v drill %+v", list[0].LastVerify, list[0].LastDrill)
	}
}

// TestDrillScratchCluster drills into the default scratch target: a
// throwaway managed cluster in a temp dir on a free port, removed after.
func TestDrillScratchCluster(t *testing.T) {
	s := seedDB(t, 1, 20)
	dir := t.TempDir()
	takeBackup(t, s.url, dir, "")
	rep, err := ops.Drill(bkCtx(t), ops.DrillConfig{Dir: dir, Scratch: "cluster", Tools: bkTools()})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed {
		t.Fatalf("drill failed: %v", failedChecks(rep))
	}
	if rep.Scratch.Kind != "cluster" || rep.Scratch.Dir == "" || rep.Scratch.Kept {
		t.Fatalf("scratch %+v", rep.Scratch)
	}
	if _, err := os.Stat(rep.Scratch.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch cluster directory %s left behind (%v)", rep.Scratch.Dir, err)
	}
}

// TestBackupLockedWhileRunning: a second backup in the same directory
// while one runs fails with ErrBackupLocked; prune does too.
func TestBackupLockedWhileRunning(t *testing.T) {
	s := seedDB(t, 1, 5)
	dir := t.TempDir()
	var second, pruneErr error
	ops.SetAfterExport(t, func() {
		_, second = ops.Backup(bkCtx(t), ops.BackupConfig{DatabaseURL: s.url, Dir: dir, Tools: bkTools()})
		_, pruneErr = ops.Prune(dir, ops.Retention{KeepLast: 1}, true)
	})
	takeBackup(t, s.url, dir, "")
	if !errors.Is(second, ops.ErrBackupLocked) {
		t.Fatalf("second backup: %v", second)
	}
	if !errors.Is(pruneErr, ops.ErrBackupLocked) {
		t.Fatalf("prune during a backup: %v", pruneErr)
	}
	if !strings.Contains(second.Error(), ops.BackupLockFile(dir)) {
		t.Errorf("error does not name the lock: %v", second)
	}
}

// TestOldPgDumpFailsEarly: only a pg_dump older than the server is found,
// and the error says what to install.
func TestOldPgDumpFailsEarly(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n"
	if err := os.WriteFile(filepath.Join(bin, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewURL(t)
	_, err := ops.Backup(bkCtx(t), ops.BackupConfig{DatabaseURL: url, Dir: t.TempDir(),
		Tools: ops.ToolSearch{Root: t.TempDir(), LookupEnv: func(k string) (string, bool) {
			if k == "PATH" {
				return bin, true
			}
			return "", false
		}}})
	if !errors.Is(err, ops.ErrToolTooOld) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "apt-get install -y postgresql-client-") {
		t.Errorf("no fix in %v", err)
	}
}

// TestDrillKeepLeavesScratch: --keep leaves the scratch database in place,
// restored and connectable.
func TestDrillKeepLeavesScratch(t *testing.T) {
	s := seedDB(t, 1, 10)
	dir := t.TempDir()
	m := takeBackup(t, s.url, dir, "")
	cfg := drillConfig(dir, s.url)
	cfg.Keep = true
	rep, err := ops.Drill(bkCtx(t), cfg)
	if err != nil || !rep.Passed || !rep.Scratch.Kept {
		t.Fatalf("drill --keep: %v %+v", err, rep)
	}
	kept, err := url.Parse(rep.Scratch.URL) // password hidden: take the name
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(kept.Path, "/")
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	conn, err := pgx.Connect(bkCtx(t), u.String())
	if err != nil {
		t.Fatalf("the kept scratch database %s is not there: %v", name, err)
	}
	var n int64
	err = conn.QueryRow(bkCtx(t), `SELECT count(*) FROM dg_event_log`).Scan(&n)
	conn.Close(context.Background())
	if err != nil || n != m.State.Events {
		t.Fatalf("kept scratch holds %d events (%v), the backup %d", n, err, m.State.Events)
	}
	admin, err := pgx.Connect(bkCtx(t), s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(bkCtx(t), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
}
