package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// backupNode is an external-mode manifest over a seeded test database.
type backupNode struct {
	manifest, url, backups, drills string
}

func newBackupNode(t *testing.T, traces int) backupNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := pgtest.NewURL(t)
	st, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	envs := projection.Synthetic(projection.SynthOptions{Seed: 7, Traces: traces})
	for i := range envs {
		if _, err := st.Append(ctx, "acme", &envs[i]); err != nil {
			t.Fatal(err)
		}
	}
	pg := projection.NewPG(st, 0)
	for _, name := range projection.Names() {
		c, _ := pg.NewCatcher("acme", name)
		if _, err := c.CatchUp(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	dir := t.TempDir()
	n := backupNode{url: url, backups: filepath.Join(dir, "backups"), drills: filepath.Join(dir, "drills"), manifest: filepath.Join(dir, "dg.yaml")}
	body := fmt.Sprintf("database:\n  mode: external\n  url: %q\nbackup:\n  dir: %s\ndrill:\n  scratch: database\n  report_dir: %s\n", url, n.backups, n.drills)
	if err := os.WriteFile(n.manifest, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBackupCommands(t *testing.T) {
	n := newBackupNode(t, 30)
	code, out, errOut := runDG(t, pathOnlyEnv, "backup", "-f", n.manifest, "--label", "pre-upgrade", "-o", "json")
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	var m ops.BackupManifest
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("backup -o json: %v\n%s", err, out)
	}
	if !strings.HasSuffix(m.ID, "-pre-upgrade") || m.State.Events == 0 || m.Format != ops.BackupFormat {
		t.Fatalf("manifest %+v", m)
	}
	if !strings.Contains(errOut, "backup:") {
		t.Errorf("no progress on stderr: %q", errOut)
	}

	code, out, _ = runDG(t, pathOnlyEnv, "backup", "verify", "-f", n.manifest)
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify: exit %d: %s", code, out)
	}

	code, out, errOut = runDG(t, pathOnlyEnv, "drill", "restore", "-f", n.manifest, "-o", "json")
	if code != 0 {
		t.Fatalf("drill: exit %d\n%s%s", code, out, errOut)
	}
	var rep ops.DrillReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Passed || len(rep.ReportFiles) != 2 {
		t.Fatalf("drill report: %v %+v", err, rep)
	}
	if !strings.Contains(errOut, "drill: restoring") {
		t.Errorf("no drill progress on stderr: %q", errOut)
	}

	code, out, errOut = runDG(t, pathOnlyEnv, "drill", "restore", "-f", n.manifest, "--inject", "drop-event")
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "FAIL  sequences") {
		t.Fatalf("drill --inject drop-event: exit %d\n%s%s", code, out, errOut)
	}

	code, out, _ = runDG(t, pathOnlyEnv, "backup", "list", "-f", n.manifest)
	if code != 0 || !strings.Contains(out, m.ID) || !strings.Contains(out, "PASS ") || !strings.Contains(out, "ok ") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	var list []ops.BackupEntry
	code, out, _ = runDG(t, pathOnlyEnv, "backup", "list", "-f", n.manifest, "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 1 || list[0].LastDrill == nil || !list[0].LastDrill.Passed {
		t.Fatalf("list -o json: exit %d %v\n%s", code, err, out)
	}

	code, out, _ = runDG(t, pathOnlyEnv, "status", "-f", n.manifest, "-o", "json")
	var st ops.StatusReport
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || !st.OK {
		t.Fatalf("status: exit %d %v\n%s", code, err, out)
	}

	// prune without --confirm deletes nothing.
	before, _ := os.ReadDir(n.backups)
	code, out, _ = runDG(t, pathOnlyEnv, "backup", "prune", "-f", n.manifest)
	after, _ := os.ReadDir(n.backups)
	if code != 0 || !strings.Contains(out, "dry run") || len(before) != len(after) {
		t.Fatalf("prune dry run: exit %d, %d -> %d files\n%s", code, len(before), len(after), out)
	}

	// A second backup while the directory is locked exits 4.
	f, err := os.OpenFile(ops.BackupLockFile(n.backups), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runDG(t, pathOnlyEnv, "backup", "-f", n.manifest)
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
	if code != 4 || !strings.Contains(errOut, "another dg backup") {
		t.Fatalf("backup while locked: exit %d: %s", code, errOut)
	}

	// restore into a non-empty database refuses (exit 1) and changes nothing.
	code, _, errOut = runDG(t, pathOnlyEnv, "restore", "-f", n.manifest, "--target-url", n.url)
	if code != 1 || !strings.Contains(errOut, "--force") {
		t.Fatalf("restore into the source: exit %d: %s", code, errOut)
	}
	conn, err := pgx.Connect(context.Background(), n.url)
	if err != nil {
		t.Fatal(err)
	}
	var events int64
	_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM dg_event_log`).Scan(&events)
	conn.Close(context.Background())
	if events != m.State.Events {
		t.Fatalf("refused restore changed the database: %d events, was %d", events, m.State.Events)
	}
	code, out, errOut = runDG(t, pathOnlyEnv, "restore", "-f", n.manifest, "--target-url", pgtest.EmptyURL(t), "-o", "json")
	if code != 0 || !strings.Contains(out, `"ok": true`) {
		t.Fatalf("restore into an empty database: exit %d\n%s%s", code, out, errOut)
	}

	// A damaged dump fails verify with exit 1.
	dump := filepath.Join(n.backups, m.DumpFile)
	b, _ := os.ReadFile(dump)
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(dump, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runDG(t, pathOnlyEnv, "backup", "verify", m.ID, "-f", n.manifest)
	if code != 1 || !strings.Contains(out, "DAMAGED") {
		t.Fatalf("verify of a damaged dump: exit %d: %s", code, out)
	}
}

func TestBackupUsageAndState(t *testing.T) {
	dir := reachableTempDir(t)
	mf := writeManagedManifest(t, dir, testFreePort(t), "")
	// The managed cluster is not running: say how to start it (exit 3).
	code, _, errOut := runDG(t, pathOnlyEnv, "backup", "-f", mf)
	if code != 3 || !strings.Contains(errOut, "dg db start") {
		t.Fatalf("backup with the cluster stopped: exit %d: %s", code, errOut)
	}
	code, _, errOut = runDG(t, pathOnlyEnv, "backup", "-f", mf, "--label", "Bad Label")
	if code != 2 {
		t.Fatalf("bad label: exit %d: %s", code, errOut)
	}
	code, _, errOut = runDG(t, pathOnlyEnv, "drill", "restore", "-f", mf, "--inject", "nonsense")
	if code != 2 {
		t.Fatalf("bad fault: exit %d: %s", code, errOut)
	}
	code, _, errOut = runDG(t, pathOnlyEnv, "drill", "restore", "-f", mf, "--backup", "20200101T000000Z")
	if code != 2 || !strings.Contains(errOut, "dg backup list") {
		t.Fatalf("unknown backup: exit %d: %s", code, errOut)
	}
	code, _, errOut = runDG(t, pathOnlyEnv, "restore", "-f", mf)
	if code != 2 || !strings.Contains(errOut, "--target-url") {
		t.Fatalf("restore without a target: exit %d: %s", code, errOut)
	}
	// No backups, no drills: dg status fails and says what to do.
	code, out, _ := runDG(t, pathOnlyEnv, "status", "-f", mf)
	if code != 1 || !strings.Contains(out, "dg backup") || !strings.Contains(out, "dg drill restore") {
		t.Fatalf("status without backups: exit %d\n%s", code, out)
	}
}
