package ops_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/ops"
)

func countEvents(t *testing.T, url string) (n int64, tables int) {
	t.Helper()
	conn, err := pgx.Connect(bkCtx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(bkCtx(t), `SELECT count(*) FROM dg_event_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(bkCtx(t), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	return n, tables
}

// TestRestoreRefusesNonEmptyTarget: without --force a database holding
// tables is refused and left exactly as it was; with --force it is
// replaced by the backup, which then passes the migration check and the
// log verifier.
func TestRestoreRefusesNonEmptyTarget(t *testing.T) {
	s := seedDB(t, 2, 20)
	dir := t.TempDir()
	m := takeBackup(t, s.url, dir, "")

	other := seedDB(t, 1, 3) // a different, non-empty dg database
	beforeN, beforeTables := countEvents(t, other.url)
	_, err := ops.Restore(bkCtx(t), ops.RestoreConfig{Dir: dir, Backup: "latest", TargetURL: other.url, Tools: bkTools()})
	if !errors.Is(err, ops.ErrTargetNotEmpty) {
		t.Fatalf("restore into a non-empty database: %v", err)
	}
	if !strings.Contains(err.Error(), "--force") {
		t.Errorf("the refusal does not say how to proceed: %v", err)
	}
	if n, tables := countEvents(t, other.url); n != beforeN || tables != beforeTables {
		t.Fatalf("a refused restore changed the target: %d events/%d tables, was %d/%d", n, tables, beforeN, beforeTables)
	}

	other.st.Close()
	rep, err := ops.Restore(bkCtx(t), ops.RestoreConfig{Dir: dir, Backup: m.ID, TargetURL: other.url, Force: true, Tools: bkTools()})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || !rep.Replaced || !rep.SchemaOK || !rep.Verify.OK {
		t.Fatalf("forced restore: %+v", rep)
	}
	if n, _ := countEvents(t, other.url); n != m.State.Events {
		t.Fatalf("after a forced restore the target has %d events, the backup %d", n, m.State.Events)
	}
	// The source database was not touched.
	if n, _ := countEvents(t, s.url); n != s.events {
		t.Fatalf("source changed: %d events, was %d", n, s.events)
	}
}

// TestRestoreIntoEmptyDatabase restores into a fresh database and
// verifies it; a damaged dump is refused before anything is written.
func TestRestoreIntoEmptyDatabase(t *testing.T) {
	s := seedDB(t, 1, 20)
	dir := t.TempDir()
	m := takeBackup(t, s.url, dir, "")
	target := pgtest.EmptyURL(t)
	rep, err := ops.Restore(bkCtx(t), ops.RestoreConfig{Dir: dir, TargetURL: target, Jobs: 2, Tools: bkTools()})
	if err != nil || !rep.OK || rep.Replaced {
		t.Fatalf("restore: %+v %v", rep, err)
	}
	if rep.Verify.Events != m.State.Events || rep.SchemaVersion != m.State.SchemaVersion {
		t.Errorf("verified %d events at schema %d, manifest %d at %d", rep.Verify.Events, rep.SchemaVersion, m.State.Events, m.State.SchemaVersion)
	}

	bad := copyBackup(t, dir, m)
	corrupt(t, bad, m)
	empty := pgtest.EmptyURL(t)
	_, err = ops.Restore(bkCtx(t), ops.RestoreConfig{Dir: bad, TargetURL: empty, Tools: bkTools()})
	if !errors.Is(err, ops.ErrChecksum) {
		t.Fatalf("restore of a corrupt dump: %v", err)
	}
	conn, err := pgx.Connect(bkCtx(t), empty)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(bkCtx(t), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("a refused restore wrote %d tables (%v)", tables, err)
	}
}
