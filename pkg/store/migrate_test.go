package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/decisiongraph/dg/pkg/store"
)

func TestMigrations(t *testing.T) {
	t.Parallel()
	pool, _ := newTestDB(t)
	ctx := context.Background()
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Version != 1 || all[0].Name != "event_log" {
		t.Fatalf("embedded migrations start with %+v", all)
	}
	// Already migrated by newTestDB: a second run applies nothing.
	applied, err := store.MigrateWith(ctx, pool, store.MigrateOptions{})
	if err != nil || len(applied) != 0 {
		t.Fatalf("second migrate applied %d, err %v", len(applied), err)
	}
	rep, err := store.MigrationStatus(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.UpToDate() || rep.Current != all[len(all)-1].Version || rep.Pending != 0 {
		t.Fatalf("status %+v", rep)
	}
	// NoWait fails fast while another session holds the migration lock.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(x'64675f6d696772'::bigint)`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.MigrateWith(ctx, pool, store.MigrateOptions{NoWait: true}); !errors.Is(err, store.ErrMigrationLocked) {
		t.Fatalf("migrate while locked: %v", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(x'64675f6d696772'::bigint)`); err != nil {
		t.Fatal(err)
	}
	conn.Release()

	// A database migrated by a newer dg is refused, by Migrate and by New.
	if _, err := pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')`); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, pool); !errors.Is(err, store.ErrSchemaNewer) {
		t.Fatalf("migrate on a newer schema: %v", err)
	}
	if _, err := store.New(ctx, pool, store.Options{}); !errors.Is(err, store.ErrSchemaNewer) {
		t.Fatalf("store.New on a newer schema: %v", err)
	}
	rep, err = store.MigrationStatus(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Newer || rep.UpToDate() || rep.Current != 9999 {
		t.Fatalf("status of a newer schema %+v", rep)
	}
}

func TestNewRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	pool, _ := newTestDB(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.New(ctx, pool, store.Options{}); !errors.Is(err, store.ErrSchemaNotCurrent) {
		t.Fatalf("store.New with a pending migration: %v", err)
	}
}
