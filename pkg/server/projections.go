package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/pkg/projection"
)

// ProjectionsConfig turns on the projection-backed routes: graph context
// and edges, precedents, projection health (§8.4-8.7) and, with Replays,
// the admin replay routes (§8.8).
type ProjectionsConfig struct {
	// PG answers the projection queries (required).
	PG *projection.PG
	// Pool reads the health tables (required).
	Pool *pgxpool.Pool
	// Replays runs admin replay jobs; nil leaves the replay routes out.
	Replays *Replays
}

// registerProjections adds the projection routes when configured.
func (a *api) registerProjections() {
	pc := a.cfg.Projections
	if pc == nil || pc.PG == nil || pc.Pool == nil {
		return
	}
	a.route(http.MethodGet, "/api/v1/graph/context", familyReader, a.handleGraphContext)
	a.route(http.MethodGet, "/api/v1/graph/edges", familyReader, a.handleGraphEdges)
	a.route(http.MethodGet, "/api/v1/precedents", familyReader, a.handlePrecedents)
	a.route(http.MethodGet, "/api/v1/projections/health", familyReader, a.handleProjectionHealth)
	if pc.Replays != nil {
		a.route(http.MethodPost, "/api/v1/admin/replays", familyAdmin, a.handleStartReplay)
		a.route(http.MethodGet, "/api/v1/admin/replays/{job_id}", familyAdmin, a.handleGetReplay)
		a.route(http.MethodPost, "/api/v1/admin/replays/{job_id}/cancel", familyAdmin, a.handleCancelReplay)
	}
}

// ProjectionStatus is one projection's line in ProjectionHealth (§10.5).
type ProjectionStatus struct {
	ProjectionName string  `json:"projection_name"`
	LastLogSeq     int64   `json:"last_log_seq"`
	PendingEvents  int64   `json:"pending_events"`
	IsStale        bool    `json:"is_stale"`
	UpdatedAt      *string `json:"updated_at"`
	Digest         *string `json:"digest"`
	OpenFailures   int64   `json:"open_failures"`
}

// OpenRun is a queued or running replay job in ProjectionHealth.
type OpenRun struct {
	JobID           string  `json:"job_id"`
	ProjectionName  string  `json:"projection_name"`
	Mode            string  `json:"mode"`
	Status          string  `json:"status"`
	RequestedAt     string  `json:"requested_at"`
	StartedAt       *string `json:"started_at"`
	ProcessedEvents int64   `json:"processed_events"`
	LastLogSeq      int64   `json:"last_log_seq"`
	UntilLogSeq     *int64  `json:"until_log_seq"`
}

// ProjectionHealth is the projection state of one tenant (§10.6).
type ProjectionHealth struct {
	TenantID        string             `json:"tenant_id"`
	EventLogLastSeq int64              `json:"event_log_last_seq"`
	Projections     []ProjectionStatus `json:"projections"`
	OpenRuns        []OpenRun          `json:"open_runs"`
	FullDigest      *string            `json:"full_digest"`
}

// apiTime renders a database time as the API does: RFC 3339, UTC,
// microsecond precision at most, "Z".
func apiTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

func apiTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := apiTime(*t)
	return &s
}

// ReadProjectionHealth reads the projection health of a tenant: its last
// log_seq, each projection's cursor, distance behind it (pending_events,
// a distance in the tenant's log_seq values as in the reference), stored
// digest and open failures, the open replay jobs and the full digest.
func ReadProjectionHealth(ctx context.Context, pool *pgxpool.Pool, tenant string) (*ProjectionHealth, error) {
	h := &ProjectionHealth{TenantID: tenant, Projections: []ProjectionStatus{}, OpenRuns: []OpenRun{}}
	if err := pool.QueryRow(ctx, `SELECT COALESCE(max(log_seq), 0) FROM dg_event_log WHERE tenant_id = $1`, tenant).Scan(&h.EventLogLastSeq); err != nil {
		return nil, fmt.Errorf("read the log head of tenant %s: %w", tenant, err)
	}
	names := append(projection.Names(), "full_projection")
	rows, err := pool.Query(ctx, `SELECT n.name, COALESCE(c.last_log_seq, 0), d.digest_value, d.updated_at,
			(SELECT count(*) FROM dg_projection_failures f WHERE f.tenant_id = $1 AND f.projection_name = n.name AND f.status = 'open')
		FROM unnest($2::text[]) WITH ORDINALITY AS n(name, ord)
		LEFT JOIN dg_projection_cursors c ON c.tenant_id = $1 AND c.projection_name = n.name
		LEFT JOIN dg_projection_digests d ON d.tenant_id = $1 AND d.projection_name = n.name
		ORDER BY n.ord`, tenant, names)
	if err != nil {
		return nil, fmt.Errorf("read projection state of tenant %s: %w", tenant, err)
	}
	var (
		name    string
		cursor  int64
		digest  *string
		updated *time.Time
		fails   int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&name, &cursor, &digest, &updated, &fails}, func() error {
		if name == "full_projection" {
			h.FullDigest = digest
			return nil
		}
		h.Projections = append(h.Projections, ProjectionStatus{ProjectionName: name, LastLogSeq: cursor,
			PendingEvents: max(h.EventLogLastSeq-cursor, 0), IsStale: cursor < h.EventLogLastSeq,
			UpdatedAt: apiTimePtr(updated), Digest: digest, OpenFailures: fails})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read projection state of tenant %s: %w", tenant, err)
	}
	rows, err = pool.Query(ctx, `SELECT job_id, projection_name, mode, status, requested_at, started_at, processed_events, last_log_seq, until_log_seq
		FROM dg_replay_jobs WHERE tenant_id = $1 AND status IN ('queued', 'running') ORDER BY requested_at, job_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("read open replay jobs of tenant %s: %w", tenant, err)
	}
	var (
		o         OpenRun
		requested time.Time
		started   *time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&o.JobID, &o.ProjectionName, &o.Mode, &o.Status, &requested, &started, &o.ProcessedEvents, &o.LastLogSeq, &o.UntilLogSeq}, func() error {
		o.RequestedAt, o.StartedAt = apiTime(requested), apiTimePtr(started)
		h.OpenRuns = append(h.OpenRuns, o)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read open replay jobs of tenant %s: %w", tenant, err)
	}
	return h, nil
}

// handleProjectionHealth is GET /api/v1/projections/health: never 409.
func (a *api) handleProjectionHealth(w http.ResponseWriter, r *http.Request, p *Principal) {
	ctx, span := a.s.cfg.Telemetry.span(r.Context(), "projection.health")
	h, err := ReadProjectionHealth(ctx, a.cfg.Projections.Pool, p.Tenant)
	span.End()
	if err != nil {
		a.writeFailure(w, r, err)
		return
	}
	a.s.writeData(w, r, http.StatusOK, h)
}

// queryInt reads an optional integer parameter; present reports whether
// it was sent. A value that is not an integer is answered with 400.
func (a *api) queryInt(w http.ResponseWriter, r *http.Request, key string) (v int64, present, ok bool) {
	vs, has := r.URL.Query()[key]
	if !has || len(vs) == 0 {
		return 0, false, true
	}
	raw := strings.TrimSpace(vs[len(vs)-1])
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		a.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("%s must be an integer, got %q", key, raw), map[string]any{"path": key})
		return 0, true, false
	}
	return n, true, true
}

// queryString reads an optional string parameter (the last one sent).
func queryString(r *http.Request, key string) (string, bool) {
	vs, has := r.URL.Query()[key]
	if !has || len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

func (a *api) badArg(w http.ResponseWriter, r *http.Request, path, msg string) {
	a.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", msg, map[string]any{"path": path})
}
