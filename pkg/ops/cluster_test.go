package ops_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/ops"
)

func sharedDir(t *testing.T) string { return pgtest.SharedTempDir(t) }

func freePort(t *testing.T) int { return pgtest.FreePort(t) }

func newCluster(t *testing.T, cfg ops.ClusterConfig) *ops.Cluster {
	t.Helper()
	c, err := ops.NewCluster(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	return c
}

// processUID reads the real uid of a process from /proc.
func processUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	t.Fatalf("no Uid line for pid %d", pid)
	return -1
}

// TestClusterLifecycle drives the same code `dg db start|stop|status` and
// `dg up` use: initdb, start, a second start, stop twice, restart.
func TestClusterLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := sharedDir(t)
	cfg := ops.ClusterConfig{
		DataDir:      filepath.Join(dir, "nested", "pgdata"),
		Port:         freePort(t),
		Database:     "dg_app",
		DisableFsync: true,
	}
	c := newCluster(t, cfg)
	t.Cleanup(func() { _ = c.Stop(context.Background()) })

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Running || st.Initialized {
		t.Fatalf("fresh cluster status = %+v, want stopped and uninitialised", st)
	}

	already, err := c.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if already {
		t.Fatal("first Start reported alreadyRunning")
	}
	st, err = c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.PID == 0 || st.Port != cfg.Port || st.DataVersion == "" {
		t.Fatalf("status after start = %+v", st)
	}

	// Root case: the server must not run as root but as the postgres user.
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		if got := strconv.Itoa(processUID(t, st.PID)); got != pg.Uid {
			t.Fatalf("postmaster uid = %s, want postgres (%s)", got, pg.Uid)
		}
		if c.RunAs() != "postgres" {
			t.Fatalf("RunAs = %q", c.RunAs())
		}
		fi, err := os.Stat(cfg.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != pg.Uid {
			t.Fatalf("data dir owner uid = %d, want postgres", uid)
		}
	}

	// The URL works for pgx, reaches the created database, as superuser dg,
	// with UTF8 and C collation.
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatalf("connect %s: %v", c.URL(), err)
	}
	var db, who, enc, collate string
	if err := conn.QueryRow(ctx, `SELECT current_database(), current_user, pg_encoding_to_char(encoding), datcollate
		FROM pg_database WHERE datname = current_database()`).Scan(&db, &who, &enc, &collate); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if db != "dg_app" || who != ops.SuperUser || enc != "UTF8" || collate != "C" {
		t.Fatalf("database=%s user=%s encoding=%s collate=%s", db, who, enc, collate)
	}

	// No trust authentication: a connection without the password fails,
	// over the socket and over TCP.
	socketNoPW := "postgres://dg@/postgres?host=" + st.SocketDir + "&port=" + strconv.Itoa(cfg.Port) + "&sslmode=disable"
	tcpNoPW := "postgres://dg@127.0.0.1:" + strconv.Itoa(cfg.Port) + "/postgres?sslmode=disable"
	for _, u := range []string{socketNoPW, tcpNoPW} {
		if conn, err := pgx.Connect(ctx, u); err == nil {
			conn.Close(ctx)
			t.Fatalf("connected without a password to %s", u)
		}
	}
	hba, err := os.ReadFile(filepath.Join(cfg.DataDir, "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(hba), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && f[len(f)-1] == "trust" {
			t.Fatalf("pg_hba.conf has a trust line: %q", line)
		}
	}
	// The same URL works for libpq tools such as pg_dump.
	if out, err := exec.Command(c.Binaries().PgDump, "--schema-only", "--dbname="+c.URL()).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump with the cluster URL: %v\n%s", err, out)
	}
	pw, err := os.Stat(cfg.DataDir + ".password")
	if err != nil {
		t.Fatal(err)
	}
	if pw.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode = %#o, want 0600", pw.Mode().Perm())
	}

	// A second start (a new Cluster value, as a second `dg db start` would
	// make) finds it running and says so.
	c2 := newCluster(t, cfg)
	already, err = c2.Start(ctx)
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if !already {
		t.Fatal("second Start did not report alreadyRunning")
	}

	if err := c2.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st, err = c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Running {
		t.Fatalf("still running after Stop: %+v", st)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop on a stopped cluster: %v", err)
	}

	// Restart on the existing data directory: no initdb, same password.
	if already, err := newCluster(t, cfg).Start(ctx); err != nil || already {
		t.Fatalf("restart: already=%v err=%v", already, err)
	}
	conn, err = pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	conn.Close(ctx)
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClusterPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	c := newCluster(t, ops.ClusterConfig{DataDir: filepath.Join(sharedDir(t), "pgdata"), Port: port, DisableFsync: true})
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	_, err = c.Start(context.Background())
	if !errors.Is(err, ops.ErrPortInUse) {
		t.Fatalf("Start on a taken port: err = %v, want ErrPortInUse", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) || !strings.Contains(err.Error(), "database.managed.port") {
		t.Fatalf("error does not name the port and the fix: %v", err)
	}
}

func TestClusterForeignOwner(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "pgdata")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// nobody owns it; the cluster would run as postgres.
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	} else {
		// Without root no file can be given away; a root-owned directory
		// plays the foreign data directory (it is only inspected).
		dir = "/usr"
	}
	c := newCluster(t, ops.ClusterConfig{DataDir: dir, Port: freePort(t)})
	_, err := c.Start(context.Background())
	if !errors.Is(err, ops.ErrForeignOwner) {
		t.Fatalf("err = %v, want ErrForeignOwner", err)
	}
	if !strings.Contains(err.Error(), "chown -R") {
		t.Fatalf("error gives no fix: %v", err)
	}
}

// dataDirWithVersion makes a data directory owned by the cluster account
// that claims to be from major version v.
func dataDirWithVersion(t *testing.T, v string) string {
	t.Helper()
	dir := filepath.Join(sharedDir(t), "pgdata")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		for _, p := range []string{dir, filepath.Join(dir, "PG_VERSION")} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestClusterNewerMajorDataDir(t *testing.T) {
	c := newCluster(t, ops.ClusterConfig{DataDir: dataDirWithVersion(t, "99"), Port: freePort(t)})
	_, err := c.Start(context.Background())
	if !errors.Is(err, ops.ErrNewerDataDir) {
		t.Fatalf("err = %v, want ErrNewerDataDir", err)
	}
	if !strings.Contains(err.Error(), "PostgreSQL 99") || !strings.Contains(err.Error(), "bin_dir") {
		t.Fatalf("error should name the version and the fix: %v", err)
	}
}

func TestClusterOlderMajorDataDir(t *testing.T) {
	c := newCluster(t, ops.ClusterConfig{DataDir: dataDirWithVersion(t, "9"), Port: freePort(t)})
	_, err := c.Start(context.Background())
	if !errors.Is(err, ops.ErrOlderDataDir) {
		t.Fatalf("err = %v, want ErrOlderDataDir", err)
	}
}

func TestClusterBinariesMissing(t *testing.T) {
	emptyPath := func(k string) (string, bool) {
		if k == "PATH" {
			return "", true
		}
		return "", false
	}
	for name, cfg := range map[string]ops.ClusterConfig{
		"bin_dir empty":        {BinDir: t.TempDir(), LookupEnv: emptyPath},
		"nothing on PATH/root": {LookupEnv: emptyPath, SearchRoot: t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.DataDir = filepath.Join(t.TempDir(), "pgdata")
			cfg.Port = 5999
			_, err := ops.NewCluster(context.Background(), cfg)
			if !errors.Is(err, ops.ErrBinariesMissing) {
				t.Fatalf("err = %v, want ErrBinariesMissing", err)
			}
			if !strings.Contains(err.Error(), "apt-get install -y postgresql") {
				t.Fatalf("error does not say how to install: %v", err)
			}
		})
	}
}

func TestClusterRunAsMissingUser(t *testing.T) {
	if os.Geteuid() != 0 {
		// run_as only applies to root; a non-root dg runs the cluster itself.
		c, err := ops.NewCluster(context.Background(), ops.ClusterConfig{DataDir: t.TempDir(), Port: 5999, RunAs: "dg-no-such-user"})
		if err != nil {
			t.Fatal(err)
		}
		if me, _ := user.Current(); c.RunAs() != me.Username {
			t.Fatalf("RunAs = %q, want the current user", c.RunAs())
		}
		return
	}
	_, err := ops.NewCluster(context.Background(), ops.ClusterConfig{DataDir: t.TempDir(), Port: 5999, RunAs: "dg-no-such-user"})
	if !errors.Is(err, ops.ErrRunAs) || !strings.Contains(err.Error(), "dg-no-such-user") {
		t.Fatalf("err = %v, want ErrRunAs naming the user", err)
	}
}

func TestClusterUnreachableParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("runs only as root: a non-root dg runs the cluster as itself")
		return
	}
	// t.TempDir's 0700 directory is not enterable by postgres.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, ops.ClusterConfig{DataDir: filepath.Join(dir, "pgdata"), Port: freePort(t), StartTimeout: 5 * time.Second})
	_, err := c.Start(context.Background())
	if !errors.Is(err, ops.ErrDataDir) || !strings.Contains(err.Error(), "chmod o+x") {
		t.Fatalf("err = %v, want ErrDataDir with a chmod hint", err)
	}
}

func TestFindBinaries(t *testing.T) {
	ctx := context.Background()
	b, err := ops.FindBinaries(ctx, ops.BinarySearch{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Version.Major < ops.MinServerMajor {
		t.Fatalf("version %s", b.Version)
	}
	for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(b.Path(p)); err != nil {
			t.Fatal(err)
		}
	}
	// With PATH empty the versioned install root is searched.
	noPath := func(string) (string, bool) { return "", false }
	b2, err := ops.FindBinaries(ctx, ops.BinarySearch{LookupEnv: noPath})
	if err != nil {
		t.Fatalf("search of %s: %v", ops.DefaultPostgresRoot, err)
	}
	if !strings.HasPrefix(b2.Dir, ops.DefaultPostgresRoot) {
		t.Fatalf("Dir = %s", b2.Dir)
	}
	// An explicit bin_dir is honoured.
	b3, err := ops.FindBinaries(ctx, ops.BinarySearch{BinDir: b.Dir, LookupEnv: noPath})
	if err != nil || b3.Dir != b.Dir {
		t.Fatalf("bin_dir search: %v %v", b3, err)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]ops.Version{
		"postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n": {Major: 15, Minor: 18},
		"pg_dump (PostgreSQL) 16.4\n":                            {Major: 16, Minor: 4},
		"pg_restore (PostgreSQL) 17beta1":                        {Major: 17},
	} {
		got, err := ops.ParseVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ops.ParseVersion("bash 5.2"); err == nil {
		t.Error("ParseVersion accepted non-PostgreSQL output")
	}
}

func TestClusterLockedByAnotherRun(t *testing.T) {
	c := newCluster(t, ops.ClusterConfig{DataDir: filepath.Join(sharedDir(t), "pgdata"), Port: freePort(t)})
	f, err := os.OpenFile(c.LockFile(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, err = c.Start(context.Background())
	if !errors.Is(err, ops.ErrLocked) {
		t.Fatalf("Start while another run holds the lock: err = %v, want ErrLocked", err)
	}
	if _, statErr := os.Stat(c.DataDir()); !errors.Is(statErr, os.ErrNotExist) {
		t.Fatalf("Start touched the data directory while locked out: %v", statErr)
	}
}

// TestClusterAsUnprivilegedUser re-runs the lifecycle test as the postgres
// account when the tests run as root, covering a non-root dg that runs its
// cluster as itself (socket and data directory owned by it).
func TestClusterAsUnprivilegedUser(t *testing.T) {
	t.Parallel()
	if os.Getenv("DG_OPS_TEST_NONROOT") != "" {
		return // already the child: TestClusterLifecycle covers it
	}
	if os.Geteuid() != 0 {
		t.Log("not root: TestClusterLifecycle already ran unprivileged")
		return
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	// A short directory: the child's own t.TempDir paths nest inside it and
	// the socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "dgnr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// The test binary sits in a 0700 build directory: copy it where
	// postgres can execute it.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ops.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestClusterLifecycle$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + dir, "HOME=" + dir, "DG_OPS_TEST_NONROOT=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestClusterLifecycle") {
		t.Fatalf("lifecycle as postgres: %v\n%s", err, out)
	}
}

// TestClusterRestartsAfterCrash: a postmaster killed with SIGKILL leaves a
// stale postmaster.pid; status must say stopped and start must recover.
func TestClusterRestartsAfterCrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := ops.ClusterConfig{DataDir: filepath.Join(sharedDir(t), "pgdata"), Port: freePort(t), DisableFsync: true, Database: "dg"}
	c := newCluster(t, cfg)
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	if _, err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err = c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status still running %+v after SIGKILL", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "postmaster.pid")); err != nil {
		t.Fatalf("expected a stale postmaster.pid after SIGKILL: %v", err)
	}
	// Orphaned backends notice the postmaster's death and exit; start
	// retries until PostgreSQL accepts the data directory again.
	var startErr error
	for time.Now().Before(deadline) {
		if _, startErr = newCluster(t, cfg).Start(ctx); startErr == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if startErr != nil {
		t.Fatalf("start after crash: %v", startErr)
	}
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}
