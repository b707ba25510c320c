package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/store"
)

// databaseURLKey is the viper key holding the database URL for this run.
const databaseURLKey = "database_url"

// viperFlag is a string flag whose value is written to the app's viper, so
// commands in different groups can each declare --database-url while
// openStore reads one place (no package-level state).
type viperFlag struct {
	a   *app
	key string
	val string
}

func (f *viperFlag) String() string { return f.val }
func (f *viperFlag) Type() string   { return "string" }
func (f *viperFlag) Set(v string) error {
	f.val = v
	f.a.viper.Set(f.key, v)
	return nil
}

// addDatabaseFlags declares --database-url on cmd and its subcommands.
func addDatabaseFlags(a *app, cmd *cobra.Command) {
	cmd.PersistentFlags().Var(&viperFlag{a: a, key: databaseURLKey}, "database-url",
		"PostgreSQL URL, e.g. postgres://user@host:5432/db (default $DATABASE_URL)")
}

// databaseURL is where the commands' database comes from, in order:
// --database-url; else DATABASE_URL (both name a database directly, which is
// what scripts and tests against a scratch database want); else the node's
// database from the manifest: database.url in external mode, the running
// managed cluster in managed mode (see nodeDatabase). dg up itself follows
// only the manifest.
func (a *app) databaseURL() (string, error) {
	if u := a.viper.GetString(databaseURLKey); u != "" {
		return u, nil
	}
	if u, ok := a.env("DATABASE_URL"); ok && u != "" {
		return u, nil
	}
	m, err := a.loadManifest()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := a.nodeDatabase(ctx, m)
	if err != nil {
		return "", fmt.Errorf("%w (or name a database with --database-url or DATABASE_URL)", err)
	}
	return db.url, nil
}

// openPool connects to the database without checking its schema (for
// dg migrate).
func (a *app) openPool(ctx context.Context) (*pgxpool.Pool, error) {
	url, err := a.databaseURL()
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, usageError(fmt.Errorf("database URL: %w", err))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database at %s:%d (is it running? check --database-url): %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}

// openStore opens the event store of this run's database. The schema must
// be current (dg migrate).
func (a *app) openStore(ctx context.Context) (*store.Store, error) {
	return a.openStoreWith(ctx, store.Options{})
}

func (a *app) openStoreWith(ctx context.Context, opts store.Options) (*store.Store, error) {
	url, err := a.databaseURL()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, url, opts)
}
