package ops_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/ops"
)

func checksByID(t *testing.T, rep ops.DoctorReport) map[string]ops.Check {
	t.Helper()
	m := map[string]ops.Check{}
	for _, c := range rep.Checks {
		if _, dup := m[c.ID]; dup {
			t.Fatalf("check %s reported twice", c.ID)
		}
		if c.Status != ops.Pass && c.Fix == "" {
			t.Errorf("check %s is %s without a fix hint: %s", c.ID, c.Status, c.Message)
		}
		m[c.ID] = c
	}
	return m
}

func wantStatus(t *testing.T, checks map[string]ops.Check, id string, want ops.CheckStatus, msgPart string) {
	t.Helper()
	c, ok := checks[id]
	if !ok {
		t.Fatalf("no %s check; have %v", id, checks)
	}
	if c.Status != want || !strings.Contains(c.Message, msgPart) {
		t.Fatalf("%s = %s %q, want %s containing %q", id, c.Status, c.Message, want, msgPart)
	}
}

func writeAccounts(t *testing.T, dir string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "accounts.json")
	if err := os.WriteFile(p, []byte(`{"service_accounts":[]}`), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDoctorHealthyManagedHost(t *testing.T) {
	dir := sharedDir(t)
	cfg := ops.DoctorConfig{
		Cluster:      ops.ClusterConfig{DataDir: filepath.Join(dir, "pgdata"), Port: freePort(t)},
		ServerListen: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		BackupDir:    filepath.Join(dir, "backups"),
		AccountsFile: writeAccounts(t, dir, 0o600),
		DiskFail:     1,
		DiskWarn:     1,
	}
	rep := ops.Doctor(context.Background(), cfg)
	checks := checksByID(t, rep)
	if !rep.OK || rep.Summary.Fail != 0 || rep.Summary.Warn != 0 {
		t.Fatalf("healthy host reported problems: %+v", rep)
	}
	for _, id := range []string{"postgres.binaries", "postgres.pg_dump", "postgres.pg_restore", "user", "data_dir", "port.postgres", "port.server", "disk.data_dir", "disk.backup_dir", "accounts.file"} {
		wantStatus(t, checks, id, ops.Pass, "")
	}
	if rep.Summary.Pass != len(rep.Checks) || rep.Mode != "managed" {
		t.Fatalf("summary %+v for %d checks, mode %s", rep.Summary, len(rep.Checks), rep.Mode)
	}
	if os.Geteuid() == 0 {
		wantStatus(t, checks, "user", ops.Pass, "runs as postgres")
	}
}

func TestDoctorFailsAndWarns(t *testing.T) {
	dir := sharedDir(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	emptyBin := filepath.Join(dir, "bin")
	if err := os.Mkdir(emptyBin, 0o755); err != nil {
		t.Fatal(err)
	}
	noPath := func(k string) (string, bool) { return "", k == "PATH" }
	cfg := ops.DoctorConfig{
		Cluster: ops.ClusterConfig{
			DataDir:   filepath.Join(dir, "pgdata"),
			Port:      freePort(t),
			BinDir:    emptyBin,
			LookupEnv: noPath,
		},
		ServerListen: busy.Addr().String(),
		BackupDir:    filepath.Join(dir, "backups"),
		AccountsFile: writeAccounts(t, dir, 0o644),
		DiskFail:     1,
		DiskWarn:     1 << 62, // no disk has this much: warn
	}
	rep := ops.Doctor(context.Background(), cfg)
	checks := checksByID(t, rep)
	if rep.OK || rep.Summary.Fail == 0 || rep.Summary.Warn == 0 {
		t.Fatalf("report = %+v", rep)
	}
	wantStatus(t, checks, "postgres.binaries", ops.Fail, "not found")
	if !strings.Contains(checks["postgres.binaries"].Fix, "apt-get install -y postgresql") {
		t.Fatalf("binaries fix = %q", checks["postgres.binaries"].Fix)
	}
	wantStatus(t, checks, "postgres.pg_dump", ops.Fail, "not found")
	wantStatus(t, checks, "port.server", ops.Fail, "in use")
	wantStatus(t, checks, "accounts.file", ops.Fail, "every user")
	if checks["accounts.file"].Fix != "chmod 600 "+cfg.AccountsFile {
		t.Fatalf("accounts fix = %q", checks["accounts.file"].Fix)
	}
	wantStatus(t, checks, "disk.data_dir", ops.Warn, "below")
	wantStatus(t, checks, "disk.backup_dir", ops.Warn, "below")
}

func TestDoctorDataDirProblems(t *testing.T) {
	base := ops.DoctorConfig{DiskFail: 1, DiskWarn: 1}

	t.Run("newer major", func(t *testing.T) {
		cfg := base
		cfg.Cluster = ops.ClusterConfig{DataDir: dataDirWithVersion(t, "99"), Port: freePort(t)}
		wantStatus(t, checksByID(t, ops.Doctor(context.Background(), cfg)), "data_dir", ops.Fail, "newer PostgreSQL major version")
	})
	t.Run("foreign owner", func(t *testing.T) {
		dir := filepath.Join(sharedDir(t), "pgdata")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		} else {
			dir = "/usr"
		}
		cfg := base
		cfg.Cluster = ops.ClusterConfig{DataDir: dir, Port: freePort(t)}
		wantStatus(t, checksByID(t, ops.Doctor(context.Background(), cfg)), "data_dir", ops.Fail, "owned by another user")
	})
	t.Run("port taken", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		cfg := base
		cfg.Cluster = ops.ClusterConfig{DataDir: filepath.Join(sharedDir(t), "pgdata"), Port: l.Addr().(*net.TCPAddr).Port}
		wantStatus(t, checksByID(t, ops.Doctor(context.Background(), cfg)), "port.postgres", ops.Fail, "in use")
	})
	t.Run("accounts missing", func(t *testing.T) {
		cfg := base
		cfg.Cluster = ops.ClusterConfig{DataDir: filepath.Join(sharedDir(t), "pgdata"), Port: freePort(t)}
		cfg.AccountsFile = filepath.Join(t.TempDir(), "nope.json")
		wantStatus(t, checksByID(t, ops.Doctor(context.Background(), cfg)), "accounts.file", ops.Warn, "does not exist")
	})
}

func TestDoctorExternalUnreachable(t *testing.T) {
	port := freePort(t) // nothing listens there
	rep := ops.Doctor(context.Background(), ops.DoctorConfig{
		External:       true,
		ExternalURL:    "postgres://dg:pw@127.0.0.1:" + strconv.Itoa(port) + "/dg?sslmode=disable",
		DiskFail:       1,
		DiskWarn:       1,
		ConnectTimeout: 3 * time.Second,
	})
	checks := checksByID(t, rep)
	if rep.OK || rep.Mode != "external" {
		t.Fatalf("report = %+v", rep)
	}
	wantStatus(t, checks, "postgres.reachable", ops.Fail, "cannot connect")
	// The client tools are found, but their fitness is unknown.
	wantStatus(t, checks, "postgres.pg_dump", ops.Warn, "version is unknown")
	for _, id := range []string{"postgres.binaries", "data_dir", "port.postgres"} {
		if _, ok := checks[id]; ok {
			t.Errorf("external mode ran managed check %s", id)
		}
	}
	if os.Geteuid() == 0 {
		wantStatus(t, checks, "user", ops.Warn, "root")
	}
}

func TestDoctorExternalReachable(t *testing.T) {
	rep := ops.Doctor(context.Background(), ops.DoctorConfig{
		External:    true,
		ExternalURL: pgtest.EmptyURL(t),
		DiskFail:    1,
		DiskWarn:    1,
	})
	checks := checksByID(t, rep)
	wantStatus(t, checks, "postgres.reachable", ops.Pass, "answers")
	wantStatus(t, checks, "postgres.pg_dump", ops.Pass, "(server ")
	wantStatus(t, checks, "postgres.pg_restore", ops.Pass, "(server ")
	if !rep.OK {
		t.Fatalf("reachable external server reported failures: %+v", rep)
	}
}

func TestDoctorRunningManagedCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := ops.ClusterConfig{DataDir: filepath.Join(sharedDir(t), "pgdata"), Port: freePort(t), DisableFsync: true}
	c := newCluster(t, cfg)
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	if _, err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	dcfg := ops.DoctorConfig{Cluster: cfg, DiskFail: 1, DiskWarn: 1}
	rep := ops.Doctor(ctx, dcfg)
	checks := checksByID(t, rep)
	wantStatus(t, checks, "port.postgres", ops.Pass, "served by this node's managed cluster")
	wantStatus(t, checks, "postgres.managed", ops.Pass, "accepts dg's login")
	wantStatus(t, checks, "data_dir", ops.Pass, "holds a PostgreSQL")
	if !rep.OK {
		t.Fatalf("running cluster reported failures: %+v", rep)
	}

	// A wrong stored password is caught.
	if err := os.WriteFile(c.PasswordFile(), []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checks = checksByID(t, ops.Doctor(ctx, dcfg))
	wantStatus(t, checks, "postgres.managed", ops.Fail, "cannot connect")
}
