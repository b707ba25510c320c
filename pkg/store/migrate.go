package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the session advisory lock held while migrations are
// applied, so two dg processes never migrate one database at once.
const migrationLockKey int64 = 0x64675f6d696772 // "dg_migr"

// ErrMigrationLocked is returned by MigrateWith with NoWait when another
// session is applying migrations.
var ErrMigrationLocked = errors.New("another dg process is applying migrations to this database; wait for it to finish and retry")

// ErrSchemaNewer is wrapped by the error returned when the database has
// migrations this binary does not know.
var ErrSchemaNewer = errors.New("database schema is newer than this dg binary")

// Migration is one embedded, forward-only schema change.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string // sha256 hex of the file
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in version order. It fails if a
// file name does not follow NNNN_name.sql or two files share a version.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("embedded migration %q: name must be NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("embedded migrations %q and %q share version %d; renumber one", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(body), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// MigrateOptions tune MigrateWith.
type MigrateOptions struct {
	// NoWait makes MigrateWith fail with ErrMigrationLocked instead of
	// waiting when another session holds the migration lock.
	NoWait bool
}

// Migrate applies every pending embedded migration, each in its own
// transaction, under a session advisory lock. It refuses a database whose
// schema is newer than this binary.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := MigrateWith(ctx, pool, MigrateOptions{})
	return err
}

// MigrateWith is Migrate with options; it returns the migrations it applied.
func MigrateWith(ctx context.Context, pool *pgxpool.Pool, opts MigrateOptions) ([]Migration, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect to database: %w", err)
	}
	defer conn.Release()

	if opts.NoWait {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, migrationLockKey).Scan(&got); err != nil {
			return nil, fmt.Errorf("migrate: take migration lock: %w", err)
		}
		if !got {
			return nil, ErrMigrationLocked
		}
	} else if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return nil, fmt.Errorf("migrate: take migration lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context so a cancelled ctx still releases the lock;
		// if that fails the connection is closed, which releases it too.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey); err != nil {
			_ = conn.Conn().Close(uctx)
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER     PRIMARY KEY,
		name       TEXT        NOT NULL,
		checksum   TEXT        NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	if err := checkNotNewer(applied, all); err != nil {
		return nil, err
	}
	var done []Migration
	for _, m := range all {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
				m.Version, m.Name, m.Checksum)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migrate: apply %04d_%s.sql (nothing of it was kept; fix the database or the migration and rerun): %w", m.Version, m.Name, err)
		}
		done = append(done, m)
	}
	return done, nil
}

type appliedMigration struct {
	Name      string
	Checksum  string
	AppliedAt time.Time
}

func appliedMigrations(ctx context.Context, conn *pgx.Conn) (map[int]appliedMigration, error) {
	rows, err := conn.Query(ctx, `SELECT version, name, checksum, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]appliedMigration{}
	for rows.Next() {
		var v int
		var a appliedMigration
		if err := rows.Scan(&v, &a.Name, &a.Checksum, &a.AppliedAt); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		out[v] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

func checkNotNewer(applied map[int]appliedMigration, known []Migration) error {
	maxKnown := 0
	if len(known) > 0 {
		maxKnown = known[len(known)-1].Version
	}
	maxApplied := 0
	for v := range applied {
		maxApplied = max(maxApplied, v)
	}
	if maxApplied > maxKnown {
		return fmt.Errorf("%w: the database is at migration %04d_%s but this dg knows migrations up to %04d; run a dg release at least as new as the one that migrated it",
			ErrSchemaNewer, maxApplied, applied[maxApplied].Name, maxKnown)
	}
	return nil
}

// MigrationState is one row of MigrationStatus.
type MigrationState struct {
	Version   int        `json:"version"`
	Name      string     `json:"name"`
	Applied   bool       `json:"applied"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	// ChecksumMismatch means the applied file differs from the embedded one.
	ChecksumMismatch bool `json:"checksum_mismatch,omitempty"`
	// Unknown means the database has this migration but the binary does not.
	Unknown bool `json:"unknown,omitempty"`
}

// MigrationReport is the schema state of a database.
type MigrationReport struct {
	Current    int              `json:"current_version"`
	Latest     int              `json:"latest_version"`
	Pending    int              `json:"pending"`
	Newer      bool             `json:"schema_newer_than_binary"`
	Migrations []MigrationState `json:"migrations"`
}

// UpToDate reports whether every embedded migration is applied and the
// database has nothing newer.
func (r *MigrationReport) UpToDate() bool { return r.Pending == 0 && !r.Newer }

// MigrationStatus reads the schema state without changing anything.
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) (*MigrationReport, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: connect to database: %w", err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	applied := map[int]appliedMigration{}
	if exists {
		if applied, err = appliedMigrations(ctx, conn.Conn()); err != nil {
			return nil, err
		}
	}
	rep := &MigrationReport{}
	known := map[int]bool{}
	for _, m := range all {
		known[m.Version] = true
		st := MigrationState{Version: m.Version, Name: m.Name}
		if a, ok := applied[m.Version]; ok {
			at := a.AppliedAt
			st.Applied, st.AppliedAt = true, &at
			st.ChecksumMismatch = a.Checksum != m.Checksum
			rep.Current = max(rep.Current, m.Version)
		} else {
			rep.Pending++
		}
		rep.Latest = max(rep.Latest, m.Version)
		rep.Migrations = append(rep.Migrations, st)
	}
	for v, a := range applied {
		if known[v] {
			continue
		}
		at := a.AppliedAt
		rep.Migrations = append(rep.Migrations, MigrationState{Version: v, Name: a.Name, Applied: true, AppliedAt: &at, Unknown: true})
		rep.Newer = true
		rep.Current = max(rep.Current, v)
	}
	sort.Slice(rep.Migrations, func(i, j int) bool { return rep.Migrations[i].Version < rep.Migrations[j].Version })
	return rep, nil
}
