// Package audit records sensitive actions (replay and rebuild admissions,
// cancellations, workflow actions) durably in dg_audit_log and as
// structured log lines. Replays, workflow actions and the console call
// Record; it is its own package so that pkg/workflow and pkg/projection
// can use it without importing pkg/server.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Outcomes of an audited decision.
const (
	Accepted = "accepted"
	Rejected = "rejected"
)

// Entry is one audited decision.
type Entry struct {
	ID         int64     `json:"audit_id,omitempty"`
	At         time.Time `json:"recorded_at"`
	Tenant     string    `json:"tenant_id,omitempty"`
	ActorID    string    `json:"actor_id,omitempty"` // account id; "" for automatic actions
	ActorType  string    `json:"actor_type"`         // "service_account" unless set
	Action     string    `json:"action"`             // e.g. "start_replay", "approve"
	Outcome    string    `json:"outcome"`            // Accepted or Rejected
	TargetType string    `json:"target_type,omitempty"`
	TargetID   string    `json:"target_id,omitempty"`
	// Reason is the operator's reason, or on rejection the error message.
	Reason    string         `json:"reason,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
}

// Log writes audit entries. A nil pool keeps only the log lines.
type Log struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// New returns an audit log on pool (nil: log lines only) and logger.
func New(pool *pgxpool.Pool, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{pool: pool, log: logger}
}

// Record logs the entry ("audit_<action>_<outcome>", info when accepted,
// warning when rejected) and inserts it. Callers must not fail the
// request on an error: the action has happened (or been refused) either
// way; log the error and go on.
func (l *Log) Record(ctx context.Context, e Entry) error {
	if e.Action == "" {
		return fmt.Errorf("audit entry needs an action")
	}
	if e.Outcome != Accepted && e.Outcome != Rejected {
		return fmt.Errorf("audit entry outcome must be %q or %q, got %q", Accepted, Rejected, e.Outcome)
	}
	if e.ActorType == "" {
		e.ActorType = "service_account"
	}
	level := slog.LevelInfo
	if e.Outcome == Rejected {
		level = slog.LevelWarn
	}
	l.log.Log(ctx, level, "audit_"+e.Action+"_"+e.Outcome,
		"tenant_id", e.Tenant, "account_id", e.ActorID, "api_action", e.Action, "outcome", e.Outcome,
		"target_type", e.TargetType, "target_id", e.TargetID, "reason", e.Reason, "request_id", e.RequestID)
	if l.pool == nil {
		return nil
	}
	details := e.Details
	if details == nil {
		details = map[string]any{}
	}
	dj, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("audit %s: encode details: %w", e.Action, err)
	}
	_, err = l.pool.Exec(ctx, `INSERT INTO dg_audit_log
		(tenant_id, actor_id, actor_type, action, outcome, target_type, target_id, reason, request_id, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		nullable(e.Tenant), nullable(e.ActorID), e.ActorType, e.Action, e.Outcome,
		nullable(e.TargetType), nullable(e.TargetID), nullable(e.Reason), nullable(e.RequestID), dj)
	if err != nil {
		return fmt.Errorf("write audit entry %s/%s: %w", e.Action, e.Outcome, err)
	}
	return nil
}

// Query selects audit entries of a tenant, oldest first.
type Query struct {
	Tenant   string
	Action   string // optional
	TargetID string // optional
	After    int64  // audit_id > After
	Limit    int    // 1..1000; 0 = 100
}

// List returns the entries matching q.
func (l *Log) List(ctx context.Context, q Query) ([]Entry, error) {
	if l.pool == nil {
		return nil, nil
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.Limit > 1000 {
		return nil, fmt.Errorf("limit must be between 1 and 1000, got %d", q.Limit)
	}
	rows, err := l.pool.Query(ctx, `SELECT audit_id, recorded_at, COALESCE(tenant_id, ''), COALESCE(actor_id, ''), actor_type,
			action, outcome, COALESCE(target_type, ''), COALESCE(target_id, ''), COALESCE(reason, ''),
			COALESCE(request_id, ''), details
		FROM dg_audit_log
		WHERE tenant_id = $1 AND ($2 = '' OR action = $2) AND ($3 = '' OR target_id = $3) AND audit_id > $4
		ORDER BY audit_id LIMIT $5`, q.Tenant, q.Action, q.TargetID, q.After, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var dj []byte
		if err := rows.Scan(&e.ID, &e.At, &e.Tenant, &e.ActorID, &e.ActorType, &e.Action, &e.Outcome,
			&e.TargetType, &e.TargetID, &e.Reason, &e.RequestID, &dj); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		if err := json.Unmarshal(dj, &e.Details); err != nil {
			return nil, fmt.Errorf("read audit log: details of entry %d: %w", e.ID, err)
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
