package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/jackc/pgx/v5"
)

// RuntimeOptions configure the live projection workers. Zero values take
// the reference's defaults.
type RuntimeOptions struct {
	BatchSize int           // events per transaction (250)
	Poll      time.Duration // fallback poll interval (1s)
	RetryBase time.Duration // first retry delay after a recoverable error (250ms), doubling
	// MaxRetries is how many recoverable failures in a row are retried on
	// a doubling timer (5); after that a recoverable failure is retried
	// every maxRecoverableDelay, and a bad event at once waits for the
	// next commit or NOTIFY.
	MaxRetries int
	// DigestEvery is the least time between two digest refreshes of a
	// tenant that has new rows (10s). Negative disables refreshes.
	DigestEvery time.Duration
	Logger      *slog.Logger
}

func (o RuntimeOptions) withDefaults() RuntimeOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 250 * time.Millisecond
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 5
	}
	if o.DigestEvery == 0 {
		o.DigestEvery = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// maxRecoverableDelay is the retry interval of a worker whose recoverable
// failures outlasted MaxRetries.
const maxRecoverableDelay = 5 * time.Second

// Worker states.
const (
	StateStandby  = "standby" // another process owns this projection
	StateIdle     = "idle"
	StateRetrying = "retrying"
	StateFailed   = "failed"
)

// WorkerStatus is what a live worker reports about itself.
type WorkerStatus struct {
	Tenant     string    `json:"tenant"`
	Projection string    `json:"projection"`
	State      string    `json:"state"`
	Checkpoint int64     `json:"checkpoint"`
	LastSync   time.Time `json:"last_sync"`
	LastError  string    `json:"last_error,omitempty"`
	RetryCount int       `json:"retry_count"`
	SyncCount  int       `json:"sync_count"`
}

// Runtime runs one live worker per (tenant, projection). Workers wake after
// every commit of the store's appender, on NOTIFY from other processes and
// on a poll timer; each projection of each tenant is worked by exactly one
// process at a time, elected through a session advisory lock.
type Runtime struct {
	pg   *PG
	st   *store.Store
	opts RuntimeOptions

	mu      sync.Mutex
	workers map[string]*worker
	dirty   map[string]bool // tenants with rows changed since their last digest refresh

	lockMu   sync.Mutex
	lockConn *pgx.Conn // holds the owner locks; outside the pool
	// lockGen counts lock sessions: when the session is lost (and with it
	// every owner lock), a new one is opened and workers owning a scope
	// under an older generation must win their lock again.
	lockGen uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRuntime returns a runtime over a store; Start runs it.
func NewRuntime(st *store.Store, opts RuntimeOptions) *Runtime {
	opts = opts.withDefaults()
	return &Runtime{pg: NewPG(st, opts.BatchSize), st: st, opts: opts, workers: map[string]*worker{}, dirty: map[string]bool{}}
}

// PG returns the runtime's Postgres engine (status, rebuild, queries).
func (r *Runtime) PG() *PG { return r.pg }

type worker struct {
	tenant, name string
	wake         chan struct{}
	mu           sync.Mutex
	status       WorkerStatus
}

func (w *worker) nudge() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Start launches the workers of every known tenant and the goroutines that
// wake them. It returns once they run; Stop ends them.
func (r *Runtime) Start(ctx context.Context) error {
	conn, err := r.dedicatedConn(ctx)
	if err != nil {
		return fmt.Errorf("projection runtime: open a connection for worker locks: %w", err)
	}
	r.lockConn = conn
	ctx, r.cancel = context.WithCancel(ctx)
	if err := r.discover(ctx); err != nil {
		r.cancel()
		_ = conn.Close(context.Background())
		return err
	}
	commits, unsubscribe := r.st.Subscribe()
	r.wg.Add(3)
	go func() { // in-process commits
		defer r.wg.Done()
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-commits:
				if !ok {
					return
				}
				r.wakeAll(ctx)
			}
		}
	}()
	go func() { // other processes' commits
		defer r.wg.Done()
		r.listen(ctx)
	}()
	go func() { // digests and tenant discovery
		defer r.wg.Done()
		r.housekeep(ctx)
	}()
	return nil
}

// dedicatedConn opens a session outside the pool, so the runtime's
// long-lived sessions (owner locks, LISTEN) never starve the pool.
func (r *Runtime) dedicatedConn(ctx context.Context) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, r.pg.pool.Config().ConnConfig.Copy())
}

// Stop ends every worker and waits for them; committed work stays.
func (r *Runtime) Stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	r.lockMu.Lock()
	if r.lockConn != nil {
		// Closing the session releases every owner lock it holds.
		_ = r.lockConn.Close(context.Background())
		r.lockConn = nil
	}
	r.lockMu.Unlock()
}

// Workers returns the state of every worker of this process.
func (r *Runtime) Workers() []WorkerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]WorkerStatus, 0, len(r.workers))
	for _, w := range r.workers {
		w.mu.Lock()
		out = append(out, w.status)
		w.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Projection < out[j].Projection
	})
	return out
}

// Status reports checkpoints, lag, digests and failures of every tenant.
func (r *Runtime) Status(ctx context.Context) ([]ScopeStatus, error) { return r.pg.Status(ctx, "") }

func (r *Runtime) wakeAll(ctx context.Context) {
	if err := r.discover(ctx); err != nil && ctx.Err() == nil {
		r.opts.Logger.Warn("projection runtime: list tenants", "err", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.workers {
		w.nudge()
	}
}

// discover starts workers for tenants that have none yet.
func (r *Runtime) discover(ctx context.Context) error {
	tenants, err := r.pg.Tenants(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range tenants {
		for _, name := range Names() {
			key := scopeKey(t, name)
			if _, ok := r.workers[key]; ok {
				continue
			}
			w := &worker{tenant: t, name: name, wake: make(chan struct{}, 1),
				status: WorkerStatus{Tenant: t, Projection: name, State: StateStandby}}
			r.workers[key] = w
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.run(ctx, w)
			}()
		}
	}
	return nil
}

func (r *Runtime) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := func() error {
			conn, err := r.dedicatedConn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background()) //nolint:errcheck
			if _, err := conn.Exec(ctx, "LISTEN "+store.NotifyChannel); err != nil {
				return err
			}
			for {
				if _, err := conn.WaitForNotification(ctx); err != nil {
					return err
				}
				r.wakeAll(ctx)
			}
		}()
		if ctx.Err() != nil {
			return
		}
		r.opts.Logger.Warn("projection runtime: LISTEN failed; polling until it reconnects", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(r.opts.Poll):
		}
	}
}

func (r *Runtime) housekeep(ctx context.Context) {
	every := r.opts.DigestEvery
	if every < 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.checkLockSession(ctx)
		if err := r.discover(ctx); err != nil && ctx.Err() == nil {
			r.opts.Logger.Warn("projection runtime: list tenants", "err", err)
		}
		if r.opts.DigestEvery < 0 {
			continue
		}
		r.mu.Lock()
		var tenants []string
		for tn := range r.dirty {
			tenants = append(tenants, tn)
		}
		r.dirty = map[string]bool{}
		r.mu.Unlock()
		for _, tn := range tenants {
			if _, err := r.pg.RefreshDigests(ctx, tn); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("projection runtime: refresh digests", "tenant", tn, "err", err)
			}
		}
	}
}

// own tries to take this process's ownership of a scope; it returns
// whether it holds it and under which lock session.
func (r *Runtime) own(ctx context.Context, w *worker) (bool, uint64) {
	r.lockMu.Lock()
	defer r.lockMu.Unlock()
	if r.lockConn == nil {
		return false, r.lockGen
	}
	var ok bool
	err := r.lockConn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, ownerLockClass, scopeKey(w.tenant, w.name)).Scan(&ok)
	if err != nil {
		r.renewLockSessionLocked(ctx, err)
		return false, r.lockGen
	}
	return ok, r.lockGen
}

// lockGeneration is the current lock session's number.
func (r *Runtime) lockGeneration() uint64 {
	r.lockMu.Lock()
	defer r.lockMu.Unlock()
	return r.lockGen
}

// checkLockSession pings the lock session and replaces it when it is gone.
func (r *Runtime) checkLockSession(ctx context.Context) {
	r.lockMu.Lock()
	defer r.lockMu.Unlock()
	if r.lockConn == nil {
		conn, err := r.dedicatedConn(ctx)
		if err != nil {
			return
		}
		r.lockConn = conn
		r.lockGen++
		return
	}
	if err := r.lockConn.Ping(ctx); err != nil {
		r.renewLockSessionLocked(ctx, err)
	}
}

// renewLockSessionLocked drops a broken lock session (the server has
// released its locks) and opens a new one. lockMu must be held.
func (r *Runtime) renewLockSessionLocked(ctx context.Context, cause error) {
	if ctx.Err() != nil {
		return
	}
	r.opts.Logger.Warn("projection runtime: lost the worker lock session; workers will win their locks again", "err", cause)
	if r.lockConn != nil {
		_ = r.lockConn.Close(context.Background())
	}
	r.lockGen++
	conn, err := r.dedicatedConn(ctx)
	if err != nil {
		r.opts.Logger.Warn("projection runtime: reopen the worker lock session", "err", err)
		r.lockConn = nil
		return
	}
	r.lockConn = conn
}

func (r *Runtime) run(ctx context.Context, w *worker) {
	c, err := r.pg.NewCatcher(w.tenant, w.name)
	if err != nil {
		r.opts.Logger.Error("projection runtime", "err", err)
		return
	}
	owner := false
	var ownedGen uint64
	retries := 0
	timer := time.NewTimer(0) // boot sync
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		if owner && r.lockGeneration() != ownedGen {
			owner = false // the session holding our lock was lost
		}
		if !owner {
			// Session advisory locks are re-entrant: take it once and keep it.
			owner, ownedGen = r.own(ctx, w)
			if !owner {
				w.set(func(s *WorkerStatus) { s.State = StateStandby })
				resetTimer(timer, r.opts.Poll)
				continue
			}
		}
		res, err := c.CatchUp(ctx, 0)
		if ctx.Err() != nil {
			return
		}
		if res.Processed > 0 {
			r.mu.Lock()
			r.dirty[w.tenant] = true
			r.mu.Unlock()
		}
		if err == nil {
			retries = 0
			w.set(func(s *WorkerStatus) {
				s.State, s.Checkpoint, s.LastSync, s.LastError, s.RetryCount = StateIdle, res.LastLogSeq, time.Now().UTC(), "", 0
				s.SyncCount++
			})
			resetTimer(timer, r.opts.Poll)
			continue
		}
		retries++
		code, _ := event.CodeOf(err)
		recoverable := code == "" || code == event.CodeStorage
		var se *StepError
		if errors.As(err, &se) {
			if ferr := r.pg.recordFailure(ctx, w.tenant, w.name, se, recoverable); ferr != nil {
				r.opts.Logger.Warn("projection runtime: record failure", "err", ferr)
			}
		}
		r.opts.Logger.Warn("projection worker failed", "tenant", w.tenant, "projection", w.name, "retry", retries, "err", err)
		state := StateFailed
		switch {
		case recoverable && retries <= r.opts.MaxRetries:
			state = StateRetrying
			resetTimer(timer, r.opts.RetryBase<<(retries-1))
		case recoverable:
			// Still a database problem (a lock conflict, a restart): keep
			// trying every maxRecoverableDelay, as no commit may come to
			// wake the worker.
			resetTimer(timer, maxRecoverableDelay)
		default:
			// A bad event: wait for the next commit or NOTIFY, no timer.
			stopTimer(timer)
		}
		w.set(func(s *WorkerStatus) {
			s.State, s.Checkpoint, s.LastError, s.RetryCount = state, res.LastLogSeq, err.Error(), retries
		})
	}
}

func (w *worker) set(f func(*WorkerStatus)) {
	w.mu.Lock()
	f(&w.status)
	w.mu.Unlock()
}

func stopTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	stopTimer(t)
	t.Reset(d)
}
