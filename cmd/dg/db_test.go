package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/decisiongraph/dg/internal/pgtest"
)

func reachableTempDir(t *testing.T) string { return pgtest.SharedTempDir(t) }

func testFreePort(t *testing.T) int { return pgtest.FreePort(t) }

// writeManagedManifest writes a manifest for a managed cluster under dir;
// extra is appended YAML under database.managed.
func writeManagedManifest(t *testing.T, dir string, port int, extra string) string {
	t.Helper()
	body := fmt.Sprintf(`database:
  mode: managed
  managed:
    data_dir: %s
    port: %d
%s
backup:
  dir: %s
drill:
  report_dir: %s
`, filepath.Join(dir, "pgdata"), port, extra, filepath.Join(dir, "backups"), filepath.Join(dir, "drills"))
	path := filepath.Join(dir, "dg.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// pathOnlyEnv passes the real PATH and nothing else, so DG_* variables of
// the developer's shell cannot change the manifest under test.
func pathOnlyEnv(k string) (string, bool) {
	if k == "PATH" {
		return os.LookupEnv("PATH")
	}
	return "", false
}

func runDG(t *testing.T, env func(string) (string, bool), args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runContext(context.Background(), args, &out, &errb, env)
	return code, out.String(), errb.String()
}

type dbJSON struct {
	Action string `json:"action"`
	Status struct {
		Running       bool   `json:"running"`
		Initialized   bool   `json:"initialized"`
		PID           int    `json:"pid"`
		Port          int    `json:"port"`
		DataDir       string `json:"data_dir"`
		ServerVersion string `json:"server_version"`
		RunAs         string `json:"run_as"`
	} `json:"status"`
}

func TestDBStartStatusStop(t *testing.T) {
	dir := reachableTempDir(t)
	port := testFreePort(t)
	mf := writeManagedManifest(t, dir, port, "")
	t.Cleanup(func() { runDG(t, pathOnlyEnv, "db", "stop", "-f", mf) })

	code, out, errOut := runDG(t, pathOnlyEnv, "db", "status", "-f", mf, "-o", "json")
	if code != 0 {
		t.Fatalf("status before start: exit %d\n%s%s", code, out, errOut)
	}
	var st dbJSON
	if err := json.Unmarshal([]byte(out), &st.Status); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	if st.Status.Running || st.Status.Initialized || st.Status.Port != port || st.Status.ServerVersion == "" {
		t.Fatalf("status before start = %+v", st.Status)
	}

	code, out, errOut = runDG(t, pathOnlyEnv, "db", "start", "-f", mf, "-o", "json")
	if code != 0 {
		t.Fatalf("db start: exit %d\n%s%s", code, out, errOut)
	}
	var started dbJSON
	if err := json.Unmarshal([]byte(out), &started); err != nil {
		t.Fatalf("start JSON: %v\n%s", err, out)
	}
	if started.Action != "started" || !started.Status.Running || started.Status.PID == 0 {
		t.Fatalf("start report = %+v", started)
	}
	if os.Geteuid() == 0 && started.Status.RunAs != "postgres" {
		t.Fatalf("as root the cluster must run as postgres, reports %q", started.Status.RunAs)
	}

	// A second start says so and succeeds.
	code, out, errOut = runDG(t, pathOnlyEnv, "db", "start", "-f", mf)
	if code != 0 || !strings.Contains(out, "already running") {
		t.Fatalf("second db start: exit %d\n%s%s", code, out, errOut)
	}

	code, out, _ = runDG(t, pathOnlyEnv, "db", "status", "-f", mf)
	if code != 0 || !strings.Contains(out, "running") || !strings.Contains(out, fmt.Sprint(started.Status.PID)) {
		t.Fatalf("db status while running: exit %d\n%s", code, out)
	}

	code, out, errOut = runDG(t, pathOnlyEnv, "db", "stop", "-f", mf, "-o", "json")
	var stopped dbJSON
	if code != 0 || json.Unmarshal([]byte(out), &stopped) != nil || stopped.Action != "stopped" || stopped.Status.Running {
		t.Fatalf("db stop: exit %d\n%s%s", code, out, errOut)
	}

	// Stopping a stopped cluster exits 0 with a message.
	code, out, errOut = runDG(t, pathOnlyEnv, "db", "stop", "-f", mf)
	if code != 0 || !strings.Contains(out, "not running") {
		t.Fatalf("second db stop: exit %d\n%s%s", code, out, errOut)
	}
}

func TestDBStartBinariesMissing(t *testing.T) {
	dir := reachableTempDir(t)
	empty := filepath.Join(dir, "nobin")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	mf := writeManagedManifest(t, dir, testFreePort(t), "    bin_dir: "+empty)
	noPath := func(k string) (string, bool) {
		if k == "PATH" {
			return "", true
		}
		return "", false
	}
	code, out, errOut := runDG(t, noPath, "db", "start", "-f", mf)
	if code != exitOperational {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitOperational, out, errOut)
	}
	if !strings.Contains(errOut, "apt-get install -y postgresql") || !strings.Contains(errOut, empty) {
		t.Fatalf("stderr does not say where it looked and how to install:\n%s", errOut)
	}
}

func TestDBStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dir := reachableTempDir(t)
	mf := writeManagedManifest(t, dir, port, "")
	code, out, errOut := runDG(t, pathOnlyEnv, "db", "start", "-f", mf)
	if code != exitOperational || !strings.Contains(errOut, "port already in use") || !strings.Contains(errOut, fmt.Sprint(port)) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestDBExternalModeIsUsageError(t *testing.T) {
	dir := t.TempDir()
	mf := filepath.Join(dir, "dg.yaml")
	body := fmt.Sprintf("database:\n  mode: external\n  url: postgres://u:p@127.0.0.1:1/x\nbackup:\n  dir: %s\ndrill:\n  report_dir: %s\n", filepath.Join(dir, "b"), filepath.Join(dir, "d"))
	if err := os.WriteFile(mf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runDG(t, pathOnlyEnv, "db", "start", "-f", mf)
	if code != exitUsage || !strings.Contains(errOut, "external") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestDBStartLockedExits4(t *testing.T) {
	dir := reachableTempDir(t)
	mf := writeManagedManifest(t, dir, testFreePort(t), "")
	f, err := os.OpenFile(filepath.Join(dir, "pgdata.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runDG(t, pathOnlyEnv, "db", "start", "-f", mf)
	if code != exitLocked || !strings.Contains(errOut, "another dg run") {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitLocked, out, errOut)
	}
}
