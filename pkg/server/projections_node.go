package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/decisiongraph/dg/pkg/projection"
)

// startProjections starts the live projection runtime with the manifest's
// batch size and poll interval, fails replay jobs a previous process left
// queued or running, and returns the function that stops both (jobs
// first, then the workers), which must run before the store closes.
func (n *node) startProjections(ctx context.Context) (func(), error) {
	rt := projection.NewRuntime(n.store, projection.RuntimeOptions{
		BatchSize: n.m.Projections.BatchSize,
		Poll:      n.m.Projections.PollInterval,
		Logger:    n.log,
	})
	replays := NewReplays(n.pool, rt.PG(), ReplayOptions{AllowRebuild: n.m.Projections.AllowRebuild, Logger: n.log})
	orphaned, err := replays.FailOrphaned(ctx)
	if err != nil {
		return nil, err
	}
	if orphaned > 0 {
		n.log.Warn("replay jobs left running by a stopped process were marked failed", "jobs", orphaned)
	}
	if err := rt.Start(ctx); err != nil {
		return nil, fmt.Errorf("start the projection runtime: %w", err)
	}
	n.projections, n.replays = rt, replays
	n.log.Info("projection runtime started", "batch_size", n.m.Projections.BatchSize, "poll_interval", n.m.Projections.PollInterval.String(),
		"allow_rebuild", n.m.Projections.AllowRebuild)
	return func() {
		replays.Close()
		rt.Stop()
	}, nil
}

// withProjections adds the projection routes, the admin replay routes and
// the projected trace summary to the API configuration.
func (n *node) withProjections(cfg *APIConfig) *APIConfig {
	if n.projections == nil {
		return cfg
	}
	pg := n.projections.PG()
	cfg.Projections = &ProjectionsConfig{PG: pg, Pool: n.pool, Replays: n.replays}
	cfg.TraceSummary = TraceSummaryFrom(pg)
	cfg.TraceSummaryPG = pg // the same summary, read with the events in one statement
	cfg.TraceCacheBytes = DefaultTraceCacheBytes
	return cfg
}

// withProjectorReadiness adds the "projectors" readiness check: the
// runtime runs and none of its workers has stopped on a failure.
func (n *node) withProjectorReadiness(checks []Check) []Check {
	return append(checks, Check{Name: "projectors", Run: func(context.Context) error {
		if n.projections == nil {
			return errors.New("the projection runtime is not running")
		}
		for _, w := range n.projections.Workers() {
			if w.State == projection.StateFailed {
				return fmt.Errorf("projection %s of tenant %s is stopped on a failure: %s", w.Projection, w.Tenant, w.LastError)
			}
		}
		return nil
	}})
}

// healthTenant is the tenant whose projection health healthz embeds (§8.1).
const healthTenant = "default"

// withProjectionHealth adds the projector and projection_health sections
// of healthz (§8.1): worker and job counts, and tenant "default"'s health.
func (n *node) withProjectionHealth(details map[string]func(context.Context) (any, error)) map[string]func(context.Context) (any, error) {
	details["projector"] = func(context.Context) (any, error) {
		if n.projections == nil {
			return nil, errors.New("the projection runtime is not running")
		}
		active := 0
		workers := n.projections.Workers()
		for _, w := range workers {
			if w.State != projection.StateStandby {
				active++
			}
		}
		jobs := 0
		if n.replays != nil {
			jobs = n.replays.Active()
		}
		return map[string]any{
			"active_workers":     active,
			"active_replay_jobs": jobs,
			// One worker per (tenant, projection): the partitions of this node.
			"partition_count": max(len(workers), len(projection.Names())),
			"projections":     projection.Names(),
			"workers":         workers,
		}, nil
	}
	details["projection_health"] = func(ctx context.Context) (any, error) {
		return ReadProjectionHealth(ctx, n.pool, healthTenant)
	}
	return details
}
