package ops

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Errors of the backup client tools.
var (
	// ErrToolMissing: pg_dump or pg_restore could not be found.
	ErrToolMissing = errors.New("PostgreSQL client tool not found")
	// ErrToolTooOld: the only pg_dump/pg_restore found are older than the
	// server (pg_dump refuses to dump a newer server).
	ErrToolTooOld = errors.New("PostgreSQL client tool older than the server")
)

// ToolSearch says where pg_dump and pg_restore may come from. Candidates
// are tried in this order, and the first whose major version equals the
// server's wins; failing that, the newest one that is not older.
type ToolSearch struct {
	// BinDir, when set, is searched first (database.managed.bin_dir).
	BinDir string
	// Binaries are the managed cluster's binaries (their PgDump/PgRestore).
	Binaries *Binaries
	// LookupEnv reads PATH (nil: os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// Root holds versioned installs (default /usr/lib/postgresql).
	Root string
}

// Tool is a located client program and its version.
type Tool struct {
	Path    string  `json:"path"`
	Version Version `json:"version"`
}

// candidates lists every distinct executable named name, in search order.
func (s ToolSearch) candidates(name string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if p == "" || !isExecutable(p) {
			return
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if s.BinDir != "" {
		add(filepath.Join(s.BinDir, name))
	}
	if s.Binaries != nil {
		switch name {
		case "pg_dump":
			add(s.Binaries.PgDump)
		case "pg_restore":
			add(s.Binaries.PgRestore)
		default:
			add(s.Binaries.Path(name))
		}
	}
	add(LookPath(name, s.LookupEnv))
	for _, dir := range versionedBinDirs(orDefault(s.Root, DefaultPostgresRoot)) {
		add(filepath.Join(dir, name))
	}
	return out
}

// FindTool picks the program name (pg_dump or pg_restore) to use against a
// server (or archive) of version server: the same major when there is one,
// else the newest not older than it. It fails early, saying what to
// install, when only older ones exist.
func FindTool(ctx context.Context, s ToolSearch, name string, server Version) (Tool, error) {
	var found []Tool
	for _, p := range s.candidates(name) {
		v, err := ToolVersion(ctx, p)
		if err != nil {
			continue
		}
		found = append(found, Tool{Path: p, Version: v})
	}
	if len(found) == 0 {
		return Tool{}, fmt.Errorf("%w: no %s on PATH, in database.managed.bin_dir or under %s/<version>/bin; install the PostgreSQL %d client tools (apt-get install -y postgresql-client-%d)",
			ErrToolMissing, name, orDefault(s.Root, DefaultPostgresRoot), server.Major, server.Major)
	}
	for _, t := range found {
		if t.Version.Major == server.Major {
			return t, nil
		}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[j].Version.Less(found[i].Version) })
	if best := found[0]; best.Version.Major >= server.Major {
		return best, nil
	}
	return Tool{}, fmt.Errorf("%w: %s %s at %s is older than PostgreSQL %s, which it has to work with; install the PostgreSQL %d client tools (apt-get install -y postgresql-client-%d) and put them first on PATH, or set database.managed.bin_dir to their directory",
		ErrToolTooOld, name, found[0].Version, found[0].Path, server, server.Major, server.Major)
}

// ServerVersion asks a connected server for its version.
func ServerVersion(ctx context.Context, conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (Version, error) {
	var num string
	if err := conn.QueryRow(ctx, `SHOW server_version_num`).Scan(&num); err != nil {
		return Version{}, fmt.Errorf("read the server version: %w", err)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return Version{}, fmt.Errorf("server_version_num %q is not a number", num)
	}
	return Version{Major: n / 10000, Minor: n % 10000}, nil
}

// libpqTarget turns a database URL into what pg_dump/pg_restore get: the
// URL without its password (so it never shows in ps) and an environment
// with PGPASSWORD instead, free of PG* variables that could redirect the
// tools. Keyword/value connection strings are passed as they are.
func libpqTarget(raw string) (dsn string, env []string) {
	env = []string{"LC_ALL=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return raw, env
	}
	if pw, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+pw)
		u.User = url.User(u.User.Username())
	}
	// Drop pgx-only settings libpq would reject.
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") || k == "statement_cache_capacity" || k == "description_cache_capacity" || k == "default_query_exec_mode" {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), env
}

// toolCmd prepares a client tool run against a database URL: the URL goes
// in --dbname=, its password in the environment.
func toolCmd(ctx context.Context, path, dbURL string, args ...string) *exec.Cmd {
	dsn, env := libpqTarget(dbURL)
	all := append([]string{}, args...)
	if dbURL != "" {
		all = append(all, "--dbname="+dsn)
	}
	cmd := exec.CommandContext(ctx, path, all...)
	cmd.Env = env
	return cmd
}

// RedactURL hides the password of a database URL for reports and logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(connection string)"
	}
	return u.Redacted()
}

// withDatabase returns raw with its database name replaced.
func withDatabase(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("database URL must be a postgres:// URL to derive a scratch database from it")
	}
	u.Path = "/" + name
	u.RawPath = ""
	q := u.Query()
	if q.Has("dbname") {
		q.Set("dbname", name)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}
