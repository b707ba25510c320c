package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// NodeOptions are the knobs of RunNode that do not come from the manifest.
type NodeOptions struct {
	Logger *slog.Logger
	// OnReady is called once the API listens, with its address.
	OnReady func(addr net.Addr)
	// LookupEnv reads the environment (accounts precedence); nil: os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Cluster is the managed cluster's configuration (managed mode only),
	// mapped from the manifest by the caller so that `dg up`, `dg db` and
	// `dg doctor` share one mapping.
	Cluster ops.ClusterConfig
	// Seed lists datasets to seed on start (dg up --seed), besides the
	// manifest's seed list; each goes into its tenant only when that
	// tenant has no events yet (console_seed.go).
	Seed []string
}

// node is one running dg process: database, event log and HTTP listener.
type node struct {
	m       *manifest.Manifest
	log     *slog.Logger
	cluster *ops.Cluster
	// startedCluster is true when this process started the managed
	// cluster, and so must stop it on the way out.
	startedCluster bool
	pool           *pgxpool.Pool
	store          *store.Store
	dbName         string
	// workflows is the workflow service (its runtime runs while the node does).
	workflows *workflow.Service
	// projections is the live projection runtime and replays the admin
	// replay job runner (projections_node.go).
	projections *projection.Runtime
	replays     *Replays
}

// RunNode runs a dg node as the manifest describes until ctx is cancelled:
// it starts (managed mode) or connects to (external mode) PostgreSQL, runs
// the migrations, opens the event log and serves the HTTP API. On the way
// out it drains requests, closes the log and stops a managed cluster it
// started itself.
func RunNode(ctx context.Context, m *manifest.Manifest, opts NodeOptions) (err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	accounts, err := LoadAccounts(m, opts.LookupEnv, log) // before Postgres: misconfiguration fails fast
	if err != nil {
		return err
	}
	n := &node{m: m, log: log}
	defer func() {
		if cerr := n.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	url, err := n.database(ctx, opts.Cluster)
	if err != nil {
		return err
	}
	if err := n.openLog(ctx, url); err != nil {
		return err
	}
	if err := n.seedOnStart(ctx, opts.Seed); err != nil {
		return err
	}
	wf, stopWorkflows := n.startWorkflows(ctx)
	defer stopWorkflows() // before n.close: the runtime holds a pool connection
	n.workflows = wf
	stopProjections, err := n.startProjections(ctx)
	if err != nil {
		return err
	}
	defer stopProjections() // before n.close: workers and jobs hold pool connections
	tel, stopTelemetry, err := n.startTelemetry(ctx)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	srv := New(Config{
		Listen:         m.Server.Listen,
		Env:            m.Server.Env,
		RequestTimeout: m.Server.RequestTimeout,
		Readiness:      n.withProjectorReadiness(n.readiness()),
		HealthDetails:  n.withProjectionHealth(n.withWorkflowHealth(withAuthHealth(n.healthDetails(), accounts))),
		Logger:         log,
		API:            n.withTelemetry(n.withProjections(n.withWorkflows(n.apiConfig(ctx, accounts))), tel),
		Console:        n.consoleConfig(accounts),
		Telemetry:      tel,
	})
	log.Info("dg is starting the API", "listen", m.Server.Listen, "env", m.Server.Env)
	return srv.Run(ctx, func(addr net.Addr) {
		log.Info("dg is serving", "addr", addr.String(), "healthz", "http://"+addr.String()+"/api/healthz")
		if opts.OnReady != nil {
			opts.OnReady(addr)
		}
	})
}

// database returns the URL of the node's database, starting the managed
// cluster first in managed mode.
func (n *node) database(ctx context.Context, cc ops.ClusterConfig) (string, error) {
	if n.m.Database.Mode == manifest.ModeExternal {
		n.dbName = "external"
		return n.m.Database.URL, nil
	}
	if cc.Logger == nil {
		cc.Logger = n.log
	}
	c, err := ops.NewCluster(ctx, cc)
	if err != nil {
		return "", fmt.Errorf("prepare managed PostgreSQL: %w", err)
	}
	n.cluster = c
	n.log.Info("starting managed PostgreSQL", "data_dir", c.DataDir(), "port", cc.Port)
	already, err := c.Start(ctx)
	if err != nil {
		return "", fmt.Errorf("start managed PostgreSQL: %w", err)
	}
	if already {
		n.log.Info("managed PostgreSQL was already running; dg will leave it running on exit", "data_dir", c.DataDir())
	}
	n.startedCluster = !already
	n.dbName = cc.Database
	return c.URL(), nil
}

// openLog connects, migrates and starts the appender.
func (n *node) openLog(ctx context.Context, url string) error {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	if n.m.Database.PoolSize > 0 {
		cfg.MaxConns = int32(n.m.Database.PoolSize)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	n.pool = pool
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s: %w", cfg.ConnConfig.Host, err)
	}
	if n.dbName == "external" {
		n.dbName = cfg.ConnConfig.Database
	}
	if err := store.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	st, err := store.New(ctx, pool, store.Options{Strict: n.m.Events.Strict})
	if err != nil {
		return fmt.Errorf("open event log: %w", err)
	}
	n.store = st
	return nil
}

func (n *node) readiness() []Check {
	return []Check{
		{Name: "database", Run: func(ctx context.Context) error { return n.pool.Ping(ctx) }},
		{Name: "migrations", Run: func(ctx context.Context) error {
			rep, err := store.MigrationStatus(ctx, n.pool)
			if err != nil {
				return err
			}
			if !rep.UpToDate() {
				return fmt.Errorf("database at migration %04d, dg at %04d", rep.Current, rep.Latest)
			}
			return nil
		}},
	}
}

func (n *node) healthDetails() map[string]func(context.Context) (any, error) {
	return map[string]func(context.Context) (any, error){
		"store": func(ctx context.Context) (any, error) {
			st := n.pool.Stat()
			return map[string]any{
				"database":      n.dbName,
				"mode":          n.m.Database.Mode,
				"pool_size":     st.MaxConns(),
				"pool_acquired": st.AcquiredConns(),
				"repo_started?": n.store != nil,
			}, nil
		},
	}
}

// close releases everything in reverse order of acquisition. It is safe on
// a partly started node.
func (n *node) close() error {
	var errs []error
	if n.store != nil {
		n.store.Close()
	}
	if n.pool != nil {
		n.pool.Close()
	}
	if n.cluster != nil && n.startedCluster {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		n.log.Info("stopping managed PostgreSQL", "data_dir", n.cluster.DataDir())
		if err := n.cluster.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop managed PostgreSQL: %w", err))
		}
	}
	return errors.Join(errs...)
}
