package pgtest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// childEnv marks a re-executed test binary playing a scenario.
const childEnv = "PGTEST_CHILD_SCENARIO"

func TestNewDatabasesAreMigratedAndIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.New(t), pgtest.New(t)

	want, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for name, pool := range map[string]interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}{"a": a, "b": b} {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatalf("%s: schema_migrations: %v", name, err)
		}
		if n != len(want) || n == 0 {
			t.Fatalf("%s: %d migrations applied, want %d", name, n, len(want))
		}
	}

	var dbA, dbB string
	if err := a.QueryRow(ctx, `SELECT current_database()`).Scan(&dbA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, `SELECT current_database()`).Scan(&dbB); err != nil {
		t.Fatal(err)
	}
	if dbA == dbB {
		t.Fatalf("both pools use database %s", dbA)
	}
	if _, err := a.Exec(ctx, `CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := b.QueryRow(ctx, `SELECT to_regclass('only_in_a') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("a table created in one test database is visible in another")
	}
}

func TestEmptyURLIsUnmigrated(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.EmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("EmptyURL database has migrations")
	}
}

func TestDatabasesDroppedAtCleanup(t *testing.T) {
	ctx := context.Background()
	var name string
	t.Run("inner", func(t *testing.T) {
		if err := pgtest.New(t).QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	conn, err := pgx.Connect(ctx, pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s survived its test", name)
	}
}

// runChild re-executes this test binary to play one scenario in a fresh
// process (with its own pgtest state) and returns its output and error.
func runChild(t *testing.T, scenario string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildScenario$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+scenario)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestChildScenario is the body the re-executed binary runs; in a normal
// run it does nothing.
func TestChildScenario(t *testing.T) {
	switch os.Getenv(childEnv) {
	case "":
		return
	case "new":
		pgtest.New(t)
		t.Log("pgtest.New returned")
	case "external":
		ctx := context.Background()
		pool := pgtest.New(t)
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n == 0 {
			t.Fatalf("external test database not migrated: n=%d err=%v", n, err)
		}
		var tmpl int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname LIKE 'dg\_template\_%'`).Scan(&tmpl); err != nil || tmpl == 0 {
			t.Fatalf("no private template on the external server: %d %v", tmpl, err)
		}
		t.Log("external server used")
	case "panic":
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pgtest.NewURL(t))
		if err != nil {
			t.Fatal(err)
		}
		var dataDir string
		if err := conn.QueryRow(ctx, `SELECT current_setting('data_directory')`).Scan(&dataDir); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, _, _ := strings.Cut(string(raw), "\n")
		if err := os.WriteFile(os.Getenv("PGTEST_PID_FILE"), []byte(pid+"\n"+filepath.Dir(dataDir)), 0o600); err != nil {
			t.Fatal(err)
		}
		panic("deliberate panic: pgtest must not leak the cluster")
	default:
		t.Fatalf("unknown scenario %q", os.Getenv(childEnv))
	}
}

func TestDeadExternalServerFailsClearly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	dead := "postgres://dg:secret@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable&connect_timeout=2"
	out, err := runChild(t, "new", pgtest.EnvURL+"="+dead)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child with a dead %s did not fail (err=%v):\n%s", pgtest.EnvURL, err, out)
	}
	if strings.Contains(out, "pgtest.New returned") {
		t.Fatalf("pgtest.New returned despite a dead server:\n%s", out)
	}
	for _, want := range []string{pgtest.EnvURL, "does not answer", strconv.Itoa(port), "unset " + pgtest.EnvURL} {
		if !strings.Contains(out, want) {
			t.Fatalf("failure message lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Fatalf("failure message leaks the password:\n%s", out)
	}
}

func TestPanickingTestLeaksNoCluster(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	out, err := runChild(t, "panic", "PGTEST_PID_FILE="+pidFile, pgtest.EnvURL+"=")
	if err == nil || !strings.Contains(out, "deliberate panic") {
		t.Fatalf("child did not panic (err=%v):\n%s", err, out)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("child wrote no pid: %v\n%s", err, out)
	}
	pidLine, clusterDir, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(pidLine))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d outlived its panicking test binary", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The directory it left is removed by the next reap.
	if _, err := os.Stat(clusterDir); err != nil {
		t.Fatalf("cluster dir %s: %v (expected it left for the reaper)", clusterDir, err)
	}
	pgtest.ReapStale(filepath.Dir(clusterDir))
	if _, err := os.Stat(clusterDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale cluster dir %s not reaped: %v", clusterDir, err)
	}
}

// BenchmarkNew measures what a test pays for a fresh migrated database: the
// clone of the template and a pool (the drops run after the timing).
func BenchmarkNew(b *testing.B) {
	pgtest.New(b) // start the cluster and build the template outside the timing
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pgtest.New(b)
	}
	b.StopTimer()
}

// TestExternalServerFromEnv points a child binary at this binary's server
// through DG_TEST_DATABASE_URL: it must use it (migrated databases from a
// private template) and leave nothing behind after its Main.
func TestExternalServerFromEnv(t *testing.T) {
	ctx := context.Background()
	admin := pgtest.ServerURL(t)
	out, err := runChild(t, "external", pgtest.EnvURL+"="+admin)
	if err != nil || !strings.Contains(out, "external server used") {
		t.Fatalf("child on %s failed (err=%v):\n%s", pgtest.EnvURL, err, out)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left []string
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'dg\_template\_%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		left = append(left, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("the child left templates on the external server: %v", left)
	}
}
