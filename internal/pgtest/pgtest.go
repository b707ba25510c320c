// Package pgtest gives tests a real PostgreSQL, never a mock.
//
// The server comes from, in order:
//
//  1. DG_TEST_DATABASE_URL, when set (a superuser or CREATEDB URL). If it is
//     set but does not answer, tests fail: they never fall back silently.
//  2. A throwaway cluster started from the local server binaries through
//     pkg/ops (the code `dg db start` and `dg up` use), one per test binary:
//     fsync off, unix socket only, in a temp directory, run as postgres when
//     the tests run as root.
//  3. A postgres:16 container through ory/dockertest when a Docker daemon
//     answers.
//
// When none works, the test fails with a message naming all three ways.
//
// Each test gets its own database: New and NewURL clone a template that
// store.Migrate prepared once per test binary (CREATE DATABASE ... TEMPLATE),
// EmptyURL makes an unmigrated one; all are dropped at cleanup.
//
// Packages using pgtest call Main from TestMain, which stops the cluster and
// removes its directory after the tests. A test binary that crashes cannot
// leak a server: the postmaster is a child that gets SIGQUIT when the binary
// dies, and the next binary to start a cluster removes directories left by
// dead ones.
//
// Because pgtest imports pkg/store, tests that use it live in external test
// packages (package store_test, not package store).
//
// The server is shared by all tests of a binary, so this package keeps it in
// a package-level variable: the one piece of global state, test-only.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/store"
)

// EnvURL names the variable that points tests at an existing server.
const EnvURL = "DG_TEST_DATABASE_URL"

// TemplateName is the migrated template database in a throwaway cluster.
const TemplateName = "dg_template"

// server is the PostgreSQL the current test binary uses.
type server struct {
	// admin is the superuser URL of the postgres database.
	admin *url.URL
	pool  *pgxpool.Pool
	// origin says where the server came from, for messages.
	origin string

	template     string
	templateOnce sync.Once
	templateErr  error

	// teardown stops what pgtest started (cluster, container) and removes
	// its files; nil for an external server.
	teardown func(context.Context) error
}

var shared struct {
	mu  sync.Mutex
	srv *server
	err error
}

// Main runs the package's tests, then stops the throwaway server and
// removes its files. Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: teardown: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func shutdown() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	srv := shared.srv
	shared.srv, shared.err = nil, nil
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var errs []error
	if srv.teardown == nil && srv.template != "" {
		// An external server outlives us: drop our private template.
		if _, err := srv.pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{srv.template}.Sanitize()+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop template %s: %w", srv.template, err))
		}
	}
	srv.pool.Close()
	if srv.teardown != nil {
		errs = append(errs, srv.teardown(ctx))
	}
	return errors.Join(errs...)
}

// get returns the shared server, starting or connecting on first use.
func get(t testing.TB) *server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = acquire(context.Background(), os.LookupEnv, "")
	}
	if shared.err != nil {
		t.Fatalf("%v", shared.err)
	}
	return shared.srv
}

// acquire finds a server the three ways, in order. searchRoot overrides
// /usr/lib/postgresql in the binary search (tests).
func acquire(ctx context.Context, env func(string) (string, bool), searchRoot string) (*server, error) {
	if raw, ok := env(EnvURL); ok && raw != "" {
		return external(ctx, raw)
	}
	localErr := error(nil)
	if _, err := ops.FindBinaries(ctx, ops.BinarySearch{LookupEnv: env, Root: searchRoot}); err == nil {
		srv, err := startLocal(ctx, env, searchRoot)
		if err == nil {
			return srv, nil
		}
		return nil, fmt.Errorf("pgtest: start a throwaway cluster from the local PostgreSQL binaries: %w", err)
	} else {
		localErr = err
	}
	dockerErr := error(nil)
	if srv, err := startDocker(ctx); err == nil {
		return srv, nil
	} else {
		dockerErr = err
	}
	return nil, fmt.Errorf(`pgtest: no PostgreSQL for tests; provide one of:
  1. %s=postgres://user:password@host:port/postgres (a server where that user may create databases)
  2. local server binaries: apt-get install -y postgresql (not found: %v)
  3. a Docker daemon for a postgres:16 container (%v)`, EnvURL, localErr, dockerErr)
}

// external uses a server given by DG_TEST_DATABASE_URL.
func external(ctx context.Context, raw string) (*server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %s is not a URL (%v): set it to postgres://user:password@host:port/postgres or unset it", EnvURL, err)
	}
	pool, err := openPool(ctx, raw, 4)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %s is set to %s but the server does not answer: %v; start that server, or unset %s to let pgtest run a throwaway cluster", EnvURL, u.Redacted(), err, EnvURL)
	}
	suffix, err := randomSuffix()
	if err != nil {
		pool.Close()
		return nil, err
	}
	// Other test binaries share this server, each with its own template.
	return &server{admin: u, pool: pool, origin: EnvURL + " " + u.Redacted(), template: TemplateName + "_" + suffix}, nil
}

// openPool connects and pings within a bounded time.
func openPool(ctx context.Context, raw string, size int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = size
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 10*time.Second {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(pctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// ServerURL returns the superuser URL of the test server (database
// postgres). Tests must not change global server state other tests rely on.
func ServerURL(t testing.TB) string {
	t.Helper()
	return get(t).admin.String()
}

// New returns a pool on a fresh database migrated with store.Migrate. The
// pool is closed and the database dropped when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := NewURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatalf("pgtest: open pool on test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewURL is New returning the database URL instead of a pool.
func NewURL(t testing.TB) string {
	t.Helper()
	srv := get(t)
	srv.templateOnce.Do(func() { srv.templateErr = srv.makeTemplate() })
	if srv.templateErr != nil {
		t.Fatalf("%v", srv.templateErr)
	}
	return srv.createDatabase(t, srv.template)
}

// EmptyURL returns the URL of a fresh database without migrations, dropped
// when the test ends.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return get(t).createDatabase(t, "template0")
}

// makeTemplate creates and migrates the template database once per binary.
func (s *server) makeTemplate() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ident := pgx.Identifier{s.template}.Sanitize()
	if _, err := s.pool.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop stale template %s on %s: %w", s.template, s.origin, err)
	}
	if _, err := s.pool.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		return fmt.Errorf("pgtest: create template %s on %s: %w", s.template, s.origin, err)
	}
	pool, err := openPool(ctx, s.databaseURL(s.template), 2)
	if err != nil {
		return fmt.Errorf("pgtest: connect to template %s: %w", s.template, err)
	}
	// The template must have no sessions left when it is cloned.
	defer pool.Close()
	if err := store.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("pgtest: migrate template %s: %w", s.template, err)
	}
	return nil
}

// createDatabase clones template into a new database dropped at cleanup.
func (s *server) createDatabase(t testing.TB, template string) string {
	t.Helper()
	suffix, err := randomSuffix()
	if err != nil {
		t.Fatal(err)
	}
	name := "dg_test_" + suffix
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.pool.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create test database from %s on %s: %v", template, s.origin, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop test database %s: %v", name, err)
		}
	})
	return s.databaseURL(name)
}

// databaseURL is the admin URL with another database name.
func (s *server) databaseURL(name string) string {
	u := *s.admin
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

func randomSuffix() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgtest: random name: %w", err)
	}
	return hex.EncodeToString(b), nil
}
