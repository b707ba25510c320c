package workflow

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// leaderLockClass is the first key of the per-tenant session advisory
// locks that elect the process running a tenant's import and sweep
// ("dgwf"); the second key is hashtext(tenant).
const leaderLockClass int32 = 0x64677766

// Runtime follows the log and runs the SLA sweep on a timer inside dg up,
// so deadline-risk notifications and escalations happen on time even when
// nobody reads. With several dg processes on one database, each tenant is
// run by the process holding its session advisory lock; the lock lives on
// a dedicated connection, so when that process dies Postgres releases it
// and another process takes the tenant over at its next tick. Reads still
// refresh, so the runtime is about timeliness, not correctness.
type Runtime struct {
	svc  *Service
	pool *pgxpool.Pool
	// Wake, when set, delivers a signal after local appends (e.g. the
	// store's Subscribe channel): the runtime imports at once.
	wake <-chan int64

	mu    sync.Mutex
	conn  *pgxpool.Conn
	held  map[string]bool
	stats RuntimeStats
}

// RuntimeStats counts what a runtime has done.
type RuntimeStats struct {
	Ticks        int64  `json:"ticks"`
	Imported     int64  `json:"imported"`
	Escalated    int64  `json:"escalated"`
	DeadlineRisk int64  `json:"deadline_risk"`
	Errors       int64  `json:"errors"`
	LastError    string `json:"last_error,omitempty"`
}

// NewRuntime returns a runtime for svc. wake may be nil.
func NewRuntime(svc *Service, wake <-chan int64) *Runtime {
	return &Runtime{svc: svc, pool: svc.pool, wake: wake, held: map[string]bool{}}
}

// Stats returns the counters and the tenants this runtime leads.
func (r *Runtime) Stats() (RuntimeStats, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ts []string
	for t := range r.held {
		ts = append(ts, t)
	}
	return r.stats, ts
}

// Run ticks every sweep interval (and on wake) until ctx ends, then
// releases its locks.
func (r *Runtime) Run(ctx context.Context) error {
	defer r.Close()
	t := time.NewTicker(r.svc.cfg.SweepInterval)
	defer t.Stop()
	for {
		if err := r.Tick(ctx); err != nil && ctx.Err() == nil {
			r.svc.lg.Warn("workflow runtime tick failed; retrying at the next tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case _, ok := <-r.wake:
			if !ok {
				r.wake = nil
				continue
			}
			// Commits come in bursts: gather them for a moment so a busy
			// log costs a few ticks a second, not one per commit.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wakeGather):
			}
		}
	}
}

// wakeGather is how long the runtime waits after a commit signal before
// importing, so that bursts of commits share one tick.
const wakeGather = 50 * time.Millisecond

// Tick runs one round: take (or keep) the lock of every tenant with
// workflow work and refresh the tenants this runtime leads.
func (r *Runtime) Tick(ctx context.Context) error {
	r.checkLocks(ctx)
	tenants, err := r.tenants(ctx)
	if err != nil {
		return r.fail(err)
	}
	var firstErr error
	for _, tenant := range tenants {
		lead, err := r.lead(ctx, tenant)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !lead {
			continue
		}
		res, err := r.svc.Refresh(ctx, tenant)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		r.mu.Lock()
		r.stats.Imported += int64(res.Imported)
		r.stats.Escalated += int64(res.Escalated)
		r.stats.DeadlineRisk += int64(res.DeadlineRisk)
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.stats.Ticks++
	r.mu.Unlock()
	if firstErr != nil {
		return r.fail(firstErr)
	}
	return nil
}

func (r *Runtime) fail(err error) error {
	r.mu.Lock()
	r.stats.Errors++
	r.stats.LastError = err.Error()
	r.mu.Unlock()
	return err
}

// checkLocks forgets the locks when their connection broke (Postgres
// released them with the session), so this runtime competes for them again.
func (r *Runtime) checkLocks(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return
	}
	if err := r.conn.Ping(ctx); err != nil {
		r.svc.lg.Warn("workflow runtime lost its lock connection; competing for the tenants again", "err", err)
		_ = r.conn.Conn().Close(context.Background())
		r.conn.Release()
		r.conn, r.held = nil, map[string]bool{}
	}
}

// tenants with events or workflow state.
func (r *Runtime) tenants(ctx context.Context) ([]string, error) {
	rows, err := r.pool.Query(ctx, `SELECT tenant_id FROM dg_chain_heads UNION SELECT tenant_id FROM dg_workflow_runtime`)
	if err != nil {
		return nil, fmt.Errorf("list workflow tenants: %w", err)
	}
	ts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list workflow tenants: %w", err)
	}
	return ts, nil
}

// lead reports whether this runtime holds (or just took) the tenant's lock.
func (r *Runtime) lead(ctx context.Context, tenant string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held[tenant] {
		return true, nil
	}
	if r.conn == nil {
		c, err := r.pool.Acquire(ctx)
		if err != nil {
			return false, fmt.Errorf("acquire the workflow leader connection: %w", err)
		}
		r.conn = c
	}
	var ok bool
	if err := r.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, leaderLockClass, tenant).Scan(&ok); err != nil {
		return false, fmt.Errorf("take the workflow lock of tenant %s: %w", tenant, err)
	}
	if ok {
		r.held[tenant] = true
		r.svc.lg.Info("workflow runtime leads tenant", "tenant_id", tenant)
	}
	return ok, nil
}

// Close gives up every lock and returns the lock connection to the pool
// (Run does it on the way out; callers of Tick must call it).
func (r *Runtime) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		// Closing the connection releases the locks too.
		_ = r.conn.Conn().Close(ctx)
	}
	r.conn.Release()
	r.conn, r.held = nil, map[string]bool{}
}

// Kill drops the lock connection without unlocking, as a crashed process
// would (for tests of lock takeover).
func (r *Runtime) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return
	}
	_ = r.conn.Conn().Close(context.Background())
	r.conn.Release()
	r.conn, r.held = nil, map[string]bool{}
}
