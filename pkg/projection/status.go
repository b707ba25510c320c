package projection

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Failure is an open failure row: an event a live worker could not project.
type Failure struct {
	LogSeq     int64     `json:"log_seq"`
	EventID    string    `json:"event_id"`
	TraceID    string    `json:"trace_id"`
	Code       string    `json:"error_code"`
	Message    string    `json:"error_message"`
	RetryCount int       `json:"retry_count"`
	RecordedAt time.Time `json:"recorded_at"`
}

// ScopeStatus is the state of one projection of one tenant.
type ScopeStatus struct {
	Tenant     string `json:"tenant"`
	Projection string `json:"projection"`
	Checkpoint int64  `json:"checkpoint"`
	Head       int64  `json:"head"`
	// Lag is the number of the tenant's events after the checkpoint;
	// LagSeconds is the age of the oldest of them (0 when none).
	Lag          int64    `json:"lag_events"`
	LagSeconds   float64  `json:"lag_seconds"`
	Digest       string   `json:"digest"`
	DigestLogSeq int64    `json:"digest_log_seq"`
	OpenFailures int      `json:"open_failures"`
	FirstFailure *Failure `json:"first_failure,omitempty"`
}

// Tenants lists tenants that have events or projection state, sorted.
func (pg *PG) Tenants(ctx context.Context) ([]string, error) {
	// A skip scan over the (tenant_id, log_seq) index: one probe per
	// tenant, and it sees events however they were written.
	rows, err := pg.pool.Query(ctx, `WITH RECURSIVE t AS (
			SELECT min(tenant_id) AS tenant_id FROM dg_event_log
			UNION ALL
			SELECT (SELECT min(e.tenant_id) FROM dg_event_log e WHERE e.tenant_id > t.tenant_id) FROM t WHERE t.tenant_id IS NOT NULL)
		SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL
		UNION SELECT tenant_id FROM dg_projection_cursors`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	ts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	sort.Strings(ts)
	return ts, nil
}

// Status reports every projection of one tenant, or of all tenants when
// tenant is "".
func (pg *PG) Status(ctx context.Context, tenant string) ([]ScopeStatus, error) {
	tenants := []string{tenant}
	if tenant == "" {
		var err error
		if tenants, err = pg.Tenants(ctx); err != nil {
			return nil, err
		}
	}
	var out []ScopeStatus
	for _, t := range tenants {
		head, err := pg.TenantHead(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, name := range Names() {
			s := ScopeStatus{Tenant: t, Projection: name, Head: head}
			if s.Checkpoint, err = pg.Cursor(ctx, pg.pool, t, name); err != nil {
				return nil, err
			}
			var oldest *time.Time
			if err := pg.pool.QueryRow(ctx, `SELECT count(*), min(recorded_at) FROM dg_event_log WHERE tenant_id = $1 AND log_seq > $2`,
				t, s.Checkpoint).Scan(&s.Lag, &oldest); err != nil {
				return nil, fmt.Errorf("measure lag of %s for tenant %s: %w", name, t, err)
			}
			if oldest != nil {
				s.LagSeconds = time.Since(*oldest).Seconds()
			}
			err = pg.pool.QueryRow(ctx, `SELECT digest_value, last_log_seq FROM dg_projection_digests WHERE tenant_id = $1 AND projection_name = $2`,
				t, name).Scan(&s.Digest, &s.DigestLogSeq)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return nil, fmt.Errorf("read digest of %s for tenant %s: %w", name, t, err)
			}
			if err := pg.pool.QueryRow(ctx, `SELECT count(*) FROM dg_projection_failures WHERE tenant_id = $1 AND projection_name = $2 AND status = 'open'`,
				t, name).Scan(&s.OpenFailures); err != nil {
				return nil, fmt.Errorf("count failures of %s for tenant %s: %w", name, t, err)
			}
			if s.OpenFailures > 0 {
				f := &Failure{}
				var traceID, eventID *string
				if err := pg.pool.QueryRow(ctx, `SELECT log_seq, event_id, trace_id, error_code, error_message, retry_count, recorded_at
					FROM dg_projection_failures WHERE tenant_id = $1 AND projection_name = $2 AND status = 'open' ORDER BY log_seq LIMIT 1`,
					t, name).Scan(&f.LogSeq, &eventID, &traceID, &f.Code, &f.Message, &f.RetryCount, &f.RecordedAt); err != nil {
					return nil, fmt.Errorf("read failure of %s for tenant %s: %w", name, t, err)
				}
				if eventID != nil {
					f.EventID = *eventID
				}
				if traceID != nil {
					f.TraceID = *traceID
				}
				s.FirstFailure = f
			}
			out = append(out, s)
		}
	}
	return out, nil
}
