package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/pkg/audit"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
)

// Replay job modes and states (§8.8, projections spec B.6).
const (
	ReplayCatchUp = "catch_up"
	ReplayRebuild = "rebuild"

	ReplayQueued    = "queued"
	ReplayRunning   = "running"
	ReplayCompleted = "completed"
	ReplayFailed    = "failed"
	ReplayCancelled = "cancelled"
)

// ReplayRun is a replay job as the API shows it (§10.7). metadata_json is
// the canonical JSON text of the metadata, as in the reference.
type ReplayRun struct {
	JobID           string  `json:"job_id"`
	TenantID        string  `json:"tenant_id"`
	ProjectionName  string  `json:"projection_name"`
	Mode            string  `json:"mode"`
	Status          string  `json:"status"`
	RequestedAt     string  `json:"requested_at"`
	StartedAt       *string `json:"started_at"`
	FinishedAt      *string `json:"finished_at"`
	SinceLogSeq     int64   `json:"since_log_seq"`
	UntilLogSeq     *int64  `json:"until_log_seq"`
	ProcessedEvents int64   `json:"processed_events"`
	LastLogSeq      int64   `json:"last_log_seq"`
	ErrorCode       *string `json:"error_code"`
	ErrorMessage    *string `json:"error_message"`
	MetadataJSON    string  `json:"metadata_json"`
}

// ReplayRequest is an admitted request for a job.
type ReplayRequest struct {
	Tenant     string
	Projection string // "all" or one projection
	Mode       string
	Since      int64
	Until      *int64
	Metadata   map[string]any
}

// ReplayOptions configure the job runner.
type ReplayOptions struct {
	// AllowRebuild lets rebuild jobs run (projections.allow_rebuild).
	AllowRebuild bool
	// OptionalReason drops the requirement of a reason (the reference's
	// admin_controls.require_reason = false).
	OptionalReason bool
	Logger         *slog.Logger
}

// ErrReplayActive is returned by Start when the tenant and projection
// already have a queued or running job.
var ErrReplayActive = errors.New("a replay job is already running")

// ErrReplayNotFound is returned for a job that does not exist, belongs to
// another tenant or (for cancel) is no longer active.
var ErrReplayNotFound = errors.New("replay job not found")

// Replays runs admin replay jobs in the background of this process. Jobs
// are rows of dg_replay_jobs; the one-active-job-per-scope rule is a
// unique index, so it holds across nodes sharing a database.
type Replays struct {
	pool *pgxpool.Pool
	pg   *projection.PG
	opts ReplayOptions

	mu      sync.Mutex
	cancels map[string]context.CancelFunc
	closed  bool
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// NewReplays returns a job runner over the projections' database.
func NewReplays(pool *pgxpool.Pool, pg *projection.PG, opts ReplayOptions) *Replays {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Replays{pool: pool, pg: pg, opts: opts, cancels: map[string]context.CancelFunc{}, ctx: ctx, stop: stop}
}

// Options returns the runner's options.
func (rp *Replays) Options() ReplayOptions { return rp.opts }

// FailOrphaned marks jobs left queued or running by a process that
// stopped (a crash, a kill) as failed with error_code "orphaned". A node
// calls it at start-up, before it accepts jobs.
func (rp *Replays) FailOrphaned(ctx context.Context) (int64, error) {
	tag, err := rp.pool.Exec(ctx, `UPDATE dg_replay_jobs SET status = 'failed', finished_at = now(), error_code = 'orphaned',
		error_message = 'the dg process running this job stopped before it finished; start a new job'
		WHERE status IN ('queued', 'running')`)
	if err != nil {
		return 0, fmt.Errorf("mark orphaned replay jobs failed: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Active is the number of jobs this process is running.
func (rp *Replays) Active() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.cancels)
}

// Close cancels the running jobs and waits for them; their rows end
// failed ("interrupted"), committed work stays.
func (rp *Replays) Close() {
	rp.mu.Lock()
	rp.closed = true
	rp.mu.Unlock()
	rp.stop()
	rp.wg.Wait()
}

const replayColumns = `job_id, tenant_id, projection_name, mode, status, requested_at, started_at, finished_at,
	since_log_seq, until_log_seq, processed_events, last_log_seq, error_code, error_message, metadata_json`

func scanRun(row pgx.Row) (*ReplayRun, error) {
	var (
		run               ReplayRun
		requested         time.Time
		started, finished *time.Time
	)
	if err := row.Scan(&run.JobID, &run.TenantID, &run.ProjectionName, &run.Mode, &run.Status, &requested, &started, &finished,
		&run.SinceLogSeq, &run.UntilLogSeq, &run.ProcessedEvents, &run.LastLogSeq, &run.ErrorCode, &run.ErrorMessage, &run.MetadataJSON); err != nil {
		return nil, err
	}
	run.RequestedAt, run.StartedAt, run.FinishedAt = apiTime(requested), apiTimePtr(started), apiTimePtr(finished)
	return &run, nil
}

func newJobID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "replay-" + hex.EncodeToString(b[:])
}

// Start admits a job (queued) and runs it in the background.
func (rp *Replays) Start(ctx context.Context, req ReplayRequest) (*ReplayRun, error) {
	meta, err := json.Marshal(req.Metadata) // map keys sorted: canonical text
	if err != nil {
		return nil, fmt.Errorf("encode replay metadata: %w", err)
	}
	if req.Metadata == nil {
		meta = []byte("{}")
	}
	rp.mu.Lock()
	closed := rp.closed
	rp.mu.Unlock()
	if closed {
		return nil, &event.Error{Code: event.CodeStorage, Message: "dg is shutting down; start the job on another node or after restart"}
	}
	run, err := scanRun(rp.pool.QueryRow(ctx, `INSERT INTO dg_replay_jobs (job_id, tenant_id, projection_name, mode, status, since_log_seq, until_log_seq, metadata_json)
		VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7) RETURNING `+replayColumns,
		newJobID(), req.Tenant, req.Projection, req.Mode, req.Since, req.Until, string(meta)))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "dg_replay_jobs_active" {
		return nil, fmt.Errorf("%s/%s: %w", req.Tenant, req.Projection, ErrReplayActive)
	}
	if err != nil {
		return nil, fmt.Errorf("queue replay job: %w", err)
	}
	jobCtx, cancel := context.WithCancel(rp.ctx)
	rp.mu.Lock()
	if rp.closed { // Close began after the check above: do not start
		rp.mu.Unlock()
		cancel()
		rp.finish(run.JobID, 0, 0, context.Canceled)
		return nil, &event.Error{Code: event.CodeStorage, Message: "dg is shutting down; start the job on another node or after restart"}
	}
	rp.cancels[run.JobID] = cancel
	rp.wg.Add(1)
	rp.mu.Unlock()
	go func() {
		defer rp.wg.Done()
		defer func() {
			rp.mu.Lock()
			delete(rp.cancels, run.JobID)
			rp.mu.Unlock()
			cancel()
		}()
		rp.run(jobCtx, run.JobID, req)
	}()
	return run, nil
}

// Get loads a job of the tenant.
func (rp *Replays) Get(ctx context.Context, tenant, jobID string) (*ReplayRun, error) {
	run, err := scanRun(rp.pool.QueryRow(ctx, `SELECT `+replayColumns+` FROM dg_replay_jobs WHERE job_id = $1 AND tenant_id = $2`, jobID, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrReplayNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read replay job %s: %w", jobID, err)
	}
	return run, nil
}

// Cancel marks an active job of the tenant cancelled and stops it (when
// this process runs it; a job of another node stops at its next progress
// write). Committed batches stay.
func (rp *Replays) Cancel(ctx context.Context, tenant, jobID string) (*ReplayRun, error) {
	run, err := scanRun(rp.pool.QueryRow(ctx, `UPDATE dg_replay_jobs SET status = 'cancelled', finished_at = now()
		WHERE job_id = $1 AND tenant_id = $2 AND status IN ('queued', 'running') RETURNING `+replayColumns, jobID, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrReplayNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cancel replay job %s: %w", jobID, err)
	}
	rp.mu.Lock()
	if c := rp.cancels[jobID]; c != nil {
		c()
	}
	rp.mu.Unlock()
	return run, nil
}

// run executes a job: queued -> running -> completed | failed, unless a
// cancel already closed the row (every write is conditional on the row
// still being active).
func (rp *Replays) run(ctx context.Context, jobID string, req ReplayRequest) {
	log := rp.opts.Logger.With("job_id", jobID, "tenant_id", req.Tenant, "projection", req.Projection, "mode", req.Mode)
	tag, err := rp.pool.Exec(ctx, `UPDATE dg_replay_jobs SET status = 'running', started_at = now() WHERE job_id = $1 AND status = 'queued'`, jobID)
	if err != nil || tag.RowsAffected() == 0 {
		if err != nil {
			log.Warn("replay job could not start", "err", err)
			rp.finish(jobID, 0, 0, err)
		}
		return
	}
	log.Info("replay job started")
	var processed, last int64
	progress := func() bool {
		tag, err := rp.pool.Exec(ctx, `UPDATE dg_replay_jobs SET processed_events = $2, last_log_seq = $3 WHERE job_id = $1 AND status = 'running'`,
			jobID, processed, last)
		return err == nil && tag.RowsAffected() == 1
	}
	names := projection.Names()
	if req.Projection != "all" {
		names = []string{req.Projection}
	}
	switch req.Mode {
	case ReplayCatchUp:
		for _, name := range names {
			if req.Until != nil && *req.Until == 0 {
				break // nothing is at or before log_seq 0
			}
			var c *projection.Catcher
			if c, err = rp.pg.NewCatcher(req.Tenant, name); err != nil {
				break
			}
			var until int64
			if req.Until != nil {
				until = *req.Until
			}
			var res projection.CatchUpResult
			res, err = c.CatchUp(ctx, until)
			processed += int64(res.Processed)
			last = res.LastLogSeq
			if err != nil || !progress() {
				break
			}
		}
	case ReplayRebuild:
		set := projection.SetAll
		if req.Projection != "all" {
			set, _ = projection.SetOf(req.Projection)
		}
		o := projection.RebuildOptions{Tenant: req.Tenant, Set: set}
		if req.Until != nil {
			o.Until, o.HasUntil = *req.Until, true
		}
		var rep *projection.RebuildReport
		rep, err = rp.pg.Rebuild(ctx, o)
		if rep != nil {
			processed, last = int64(rep.Events), rep.Head
		}
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	rp.finish(jobID, processed, last, err)
	if err != nil {
		log.Warn("replay job ended", "err", err, "processed_events", processed)
	} else {
		log.Info("replay job completed", "processed_events", processed, "last_log_seq", last)
	}
}

// finish closes a running job as completed or failed; a cancelled row is
// left alone but gets the final progress.
func (rp *Replays) finish(jobID string, processed, last int64, runErr error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, code, msg := ReplayCompleted, (*string)(nil), (*string)(nil)
	if runErr != nil {
		status = ReplayFailed
		c := "storage"
		if ec, ok := event.CodeOf(runErr); ok {
			c = ec.Name()
		} else if errors.Is(runErr, context.Canceled) {
			c = "interrupted"
		} else if errors.Is(runErr, projection.ErrRebuildLocked) {
			c = "conflict"
		}
		m := runErr.Error()
		code, msg = &c, &m
	}
	if _, err := rp.pool.Exec(ctx, `UPDATE dg_replay_jobs SET
			status = CASE WHEN status = 'running' OR status = 'queued' THEN $2 ELSE status END,
			finished_at = COALESCE(finished_at, now()),
			processed_events = $3, last_log_seq = $4,
			error_code = CASE WHEN status = 'running' OR status = 'queued' THEN $5 ELSE error_code END,
			error_message = CASE WHEN status = 'running' OR status = 'queued' THEN $6 ELSE error_message END
		WHERE job_id = $1`, jobID, status, processed, last, code, msg); err != nil {
		rp.opts.Logger.Warn("record the end of a replay job", "job_id", jobID, "err", err)
	}
}

// replayBody is the body of POST /api/v1/admin/replays.
type replayBody map[string]any

func permissionFor(mode string) string {
	if mode == ReplayRebuild {
		return auth.PermProjectionRebuild
	}
	return auth.PermProjectionReplay
}

// handleStartReplay is POST /api/v1/admin/replays (§8.8): checks in the
// reference's order, then 202 with the queued run. Every outcome past
// authentication is audited.
func (a *api) handleStartReplay(w http.ResponseWriter, r *http.Request, p *Principal) {
	rp := a.cfg.Projections.Replays
	entry := audit.Entry{Action: "start_replay", TargetType: "replay_job", Details: map[string]any{}}
	reject := func(status int, code, msg string) {
		entry.Outcome, entry.Reason = audit.Rejected, msg
		a.audit(r, p, entry)
		a.s.writeError(w, r, status, code, msg, nil)
	}
	raw, ok := a.readJSONBody(w, r)
	if !ok {
		return
	}
	var body replayBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil || body == nil {
		reject(http.StatusBadRequest, "invalid_argument", "the body must be a JSON object")
		return
	}
	mode := ReplayCatchUp
	if v, has := body["mode"]; has && v != nil {
		s, _ := v.(string)
		if s != ReplayCatchUp && s != ReplayRebuild {
			reject(http.StatusBadRequest, "invalid_argument", "mode must be catch_up or rebuild")
			return
		}
		mode = s
	}
	entry.Details["mode"] = mode
	perm := permissionFor(mode)
	entry.Details["permission"] = perm
	proj, _ := body["projection"].(string)
	if body["projection"] == nil || proj == "" {
		reject(http.StatusBadRequest, "invalid_argument", "projection is required")
		return
	}
	entry.Details["projection"] = proj
	var meta map[string]any
	if v, has := body["metadata"]; has && v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			reject(http.StatusBadRequest, "invalid_argument", "metadata must be an object")
			return
		}
		meta = m
	}
	reason, _ := body["reason"].(string)
	if strings.TrimSpace(reason) == "" && meta != nil {
		reason, _ = meta["reason"].(string)
	}
	reason = strings.TrimSpace(reason)
	entry.Reason = reason
	if reason == "" && !rp.opts.OptionalReason {
		reject(http.StatusBadRequest, "invalid_argument", "reason is required for replay and rebuild admin actions")
		return
	}
	if !p.Account.Can(perm) {
		reject(http.StatusForbidden, "forbidden", "Service account lacks "+perm+" permission")
		return
	}
	if mode == ReplayRebuild && !rp.opts.AllowRebuild {
		reject(http.StatusForbidden, "forbidden", "Projection rebuilds are disabled in this deployment")
		return
	}
	if _, ok := projection.SetOf(proj); !ok && proj != "all" {
		reject(http.StatusBadRequest, "invalid_argument", fmt.Sprintf("Unknown projection '%s'", proj))
		return
	}
	req := ReplayRequest{Tenant: p.Tenant, Projection: proj, Mode: mode}
	for _, f := range []struct {
		key string
		set func(int64)
	}{{"since_log_seq", func(v int64) { req.Since = v }}, {"until_log_seq", func(v int64) { req.Until = &v }}} {
		v, has := body[f.key]
		if !has || v == nil {
			continue
		}
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || i < 0 {
			reject(http.StatusBadRequest, "invalid_argument", fmt.Sprintf("log sequence values must be non-negative, got %v", v))
			return
		}
		f.set(i)
	}
	if req.Until != nil && *req.Until < req.Since {
		reject(http.StatusBadRequest, "invalid_argument", fmt.Sprintf("until_log_seq (%d) must not be before since_log_seq (%d)", *req.Until, req.Since))
		return
	}
	if meta == nil {
		meta = map[string]any{}
	}
	roles := make([]any, len(p.Account.Roles))
	for i, role := range p.Account.Roles {
		roles[i] = role
	}
	for k, v := range map[string]any{"reason": reason, "request_id": requestID(r.Context()),
		"requested_by_account_id": p.Account.AccountID, "requested_by_roles": roles} {
		if _, taken := meta[k]; !taken {
			meta[k] = v
		}
	}
	req.Metadata = meta
	run, err := rp.Start(r.Context(), req)
	if errors.Is(err, ErrReplayActive) {
		reject(http.StatusConflict, "conflict", fmt.Sprintf("A replay job is already running for %s/%s", p.Tenant, proj))
		return
	}
	if err != nil {
		entry.Outcome, entry.Reason = audit.Rejected, err.Error()
		a.audit(r, p, entry)
		a.writeFailure(w, r, err)
		return
	}
	entry.Outcome, entry.TargetID = audit.Accepted, run.JobID
	a.audit(r, p, entry)
	a.s.writeData(w, r, http.StatusAccepted, map[string]any{"run": run})
}

// loadReplay reads a job of the caller's tenant and checks the permission
// of its mode: 404 for a missing or foreign job, 403 without permission.
func (a *api) loadReplay(w http.ResponseWriter, r *http.Request, p *Principal) (*ReplayRun, bool) {
	jobID := pathParam(r, "job_id")
	run, err := a.cfg.Projections.Replays.Get(r.Context(), p.Tenant, jobID)
	if errors.Is(err, ErrReplayNotFound) {
		a.s.writeError(w, r, http.StatusNotFound, "not_found", "Replay job not found: "+jobID, nil)
		return nil, false
	}
	if err != nil {
		a.writeFailure(w, r, err)
		return nil, false
	}
	if !a.requirePermission(w, r, p, permissionFor(run.Mode)) {
		return run, false
	}
	return run, true
}

// handleGetReplay is GET /api/v1/admin/replays/{job_id}.
func (a *api) handleGetReplay(w http.ResponseWriter, r *http.Request, p *Principal) {
	run, ok := a.loadReplay(w, r, p)
	if !ok {
		return
	}
	a.s.writeData(w, r, http.StatusOK, map[string]any{"run": run})
}

// handleCancelReplay is POST /api/v1/admin/replays/{job_id}/cancel: 200
// with the cancelled run, 404 when the job is not active any more.
func (a *api) handleCancelReplay(w http.ResponseWriter, r *http.Request, p *Principal) {
	jobID := pathParam(r, "job_id")
	entry := audit.Entry{Action: "cancel_replay", TargetType: "replay_job", TargetID: jobID, Details: map[string]any{}}
	run, ok := a.loadReplay(w, r, p)
	if run != nil {
		entry.Details["mode"], entry.Details["projection"], entry.Details["permission"] = run.Mode, run.ProjectionName, permissionFor(run.Mode)
	}
	if !ok {
		entry.Outcome, entry.Reason = audit.Rejected, "not found or not permitted"
		a.audit(r, p, entry)
		return
	}
	run, err := a.cfg.Projections.Replays.Cancel(r.Context(), p.Tenant, jobID)
	if errors.Is(err, ErrReplayNotFound) {
		entry.Outcome, entry.Reason = audit.Rejected, "Replay job not found: "+jobID
		a.audit(r, p, entry)
		a.s.writeError(w, r, http.StatusNotFound, "not_found", "Replay job not found: "+jobID, nil)
		return
	}
	if err != nil {
		entry.Outcome, entry.Reason = audit.Rejected, err.Error()
		a.audit(r, p, entry)
		a.writeFailure(w, r, err)
		return
	}
	entry.Outcome = audit.Accepted
	a.audit(r, p, entry)
	a.s.writeData(w, r, http.StatusOK, map[string]any{"run": run})
}
