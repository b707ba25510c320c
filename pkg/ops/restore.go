package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/pkg/store"
)

// ErrTargetNotEmpty: dg restore was pointed at a database that already
// holds tables, without --force.
var ErrTargetNotEmpty = errors.New("the target database is not empty")

// RestoreConfig says what dg restore restores where.
type RestoreConfig struct {
	// Dir is backup.dir; Backup an id or "latest".
	Dir    string
	Backup string
	// TargetURL is the database restored into. Nothing else is touched.
	TargetURL string
	// Force allows a non-empty target: objects of the dump are dropped
	// and recreated (pg_restore --clean --if-exists).
	Force bool
	// Jobs > 1 restores in parallel; otherwise the restore is one
	// transaction, so a failed restore leaves the target as it was.
	Jobs  int
	Tools ToolSearch
	// Progress receives progress lines (nil: none).
	Progress io.Writer
}

// RestoreReport is what dg restore reports.
type RestoreReport struct {
	BackupID string `json:"backup_id"`
	Target   string `json:"target"`
	// Replaced is true when the target held tables and --force replaced them.
	Replaced  bool  `json:"replaced"`
	RestoreMS int64 `json:"restore_ms"`
	VerifyMS  int64 `json:"verify_ms"`
	// SchemaVersion is the restored schema's migration; Pending counts
	// migrations this dg would still apply (dg migrate).
	SchemaVersion int                 `json:"schema_version"`
	Pending       int                 `json:"pending_migrations"`
	SchemaOK      bool                `json:"schema_ok"`
	Verify        *store.VerifyReport `json:"verify"`
	OK            bool                `json:"ok"`
	Problems      []string            `json:"problems"`
	// Notes are facts worth knowing that are not problems.
	Notes []string `json:"notes,omitempty"`
}

// Restore verifies a backup's checksum, restores it into the target
// database with pg_restore, then runs the migration check and the log
// verifier on the result. A non-empty target is refused unless Force.
// Problems found after the restore are in the report (OK false); errors
// mean the restore could not be done.
func Restore(ctx context.Context, cfg RestoreConfig) (*RestoreReport, error) {
	e, err := FindBackup(cfg.Dir, cfg.Backup)
	if err != nil {
		return nil, err
	}
	m := &e.Manifest
	rep := &RestoreReport{BackupID: m.ID, Target: RedactURL(cfg.TargetURL), Problems: []string{}}
	progress(cfg.Progress, "restore: checking the checksum of %s", e.DumpPath)
	if err := VerifyChecksum(e.DumpPath, m); err != nil {
		return nil, err
	}
	pool, err := connectPool(ctx, cfg.TargetURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the target database %s: %w", rep.Target, err)
	}
	defer pool.Close()
	n, err := userRelations(ctx, pool)
	if err != nil {
		return nil, err
	}
	if n > 0 && !cfg.Force {
		return nil, fmt.Errorf("%w: %s holds %d tables, views or sequences; nothing was changed. Restore into an empty database (createdb), or pass --force to drop and replace the objects the backup contains", ErrTargetNotEmpty, rep.Target, n)
	}
	rep.Replaced = n > 0
	tool, err := FindTool(ctx, cfg.Tools, "pg_restore", dumpVersion(m))
	if err != nil {
		return nil, err
	}
	progress(cfg.Progress, "restore: pg_restore %s into %s", m.DumpFile, rep.Target)
	start := time.Now()
	if err := runPgRestore(ctx, tool.Path, cfg.TargetURL, e.DumpPath, rep.Replaced, cfg.Jobs); err != nil {
		return nil, err
	}
	rep.RestoreMS = time.Since(start).Milliseconds()

	progress(cfg.Progress, "restore: checking migrations and verifying the event log")
	start = time.Now()
	mig, err := store.MigrationStatus(ctx, pool)
	if err != nil {
		return nil, err
	}
	rep.SchemaVersion, rep.Pending = mig.Current, mig.Pending
	rep.SchemaOK = !mig.Newer && mig.Current == m.State.SchemaVersion
	for _, ms := range mig.Migrations {
		if ms.ChecksumMismatch {
			// As for dg up: a note about which build made the schema.
			rep.Notes = append(rep.Notes, fmt.Sprintf("migration %04d_%s was applied from a file that differs from this dg's", ms.Version, ms.Name))
		}
	}
	if mig.Newer {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the restored schema (migration %04d) is newer than this dg knows (%04d): run the dg release that took the backup", mig.Current, mig.Latest))
	} else if mig.Current != m.State.SchemaVersion {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the restored schema is at migration %04d, the backup manifest says %04d", mig.Current, m.State.SchemaVersion))
	}
	if rep.Verify, err = verifyLog(ctx, pool); err != nil {
		return nil, err
	}
	if !rep.Verify.OK {
		first := rep.Verify.FirstBad
		rep.Problems = append(rep.Problems, fmt.Sprintf("the restored event log fails verification at log_seq %d (%s): %s", first.LogSeq, first.Kind, first.Message))
	}
	rep.VerifyMS = time.Since(start).Milliseconds()
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// verifyLog runs the store's log verifier in one read-only snapshot.
func verifyLog(ctx context.Context, pool *pgxpool.Pool) (*store.VerifyReport, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin verification snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	rep, err := store.Verify(ctx, tx, store.VerifyOptions{BatchSize: 10000})
	if err != nil {
		return nil, fmt.Errorf("verify the restored event log: %w", err)
	}
	return rep, nil
}

func dumpVersion(m *BackupManifest) Version {
	v, err := ParseVersion("(PostgreSQL) " + m.PgDumpVersion)
	if err != nil {
		return Version{Major: MinServerMajor}
	}
	return v
}

// runPgRestore restores a custom-format dump. clean drops the dump's
// objects first; jobs > 1 restores in parallel, otherwise in one
// transaction.
func runPgRestore(ctx context.Context, tool, dbURL, path string, clean bool, jobs int) error {
	args := []string{"--no-owner", "--no-privileges", "--exit-on-error", "--no-password"}
	if clean {
		args = append(args, "--clean", "--if-exists")
	}
	if jobs > 1 {
		args = append(args, "--jobs="+strconv.Itoa(jobs))
	} else {
		args = append(args, "--single-transaction")
	}
	cmd := toolCmd(ctx, tool, dbURL, append(args, path)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_restore of %s failed: %w: %s", path, err, lastLines(out.String(), 10))
	}
	return nil
}

// userRelations counts tables, views and sequences outside the system
// schemas: zero means the database is empty enough to restore into.
func userRelations(ctx context.Context, q Querier) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("check whether the target database is empty: %w", err)
	}
	return n, nil
}

func connectPool(ctx context.Context, raw string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
