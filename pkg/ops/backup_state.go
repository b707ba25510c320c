package ops

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/pkg/projection"
)

// Querier reads through a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// WorkflowTables are the workflow tables whose row counts a backup records
// when they exist (they arrive with the workflow runtime).
var WorkflowTables = []string{"dg_workflow_items", "dg_workflow_actions", "dg_workflow_notifications"}

// DatabaseState is what a backup records about its database, read from
// the snapshot it dumps; a drill reads the same from the restored copy and
// compares.
type DatabaseState struct {
	// SchemaVersion is the highest applied migration (schema_migrations).
	SchemaVersion int `json:"schema_version"`
	// HeadLogSeq is the highest log_seq of the whole log.
	HeadLogSeq int64 `json:"head_log_seq"`
	// Events is the number of events of all tenants.
	Events int64 `json:"events"`
	// NewestEventAt is the recorded_at of the newest event (none: null).
	NewestEventAt *time.Time    `json:"newest_event_at"`
	Tenants       []TenantState `json:"tenants"`
	// WorkflowCounts has the row count of each workflow table that exists.
	WorkflowCounts map[string]int64 `json:"workflow_counts,omitempty"`
	// TableRows is the row count of every table in the public schema.
	TableRows map[string]int64 `json:"table_rows"`
}

// TenantState is one tenant's part of DatabaseState.
type TenantState struct {
	TenantID string `json:"tenant_id"`
	// Events and HeadLogSeq are counted in dg_event_log.
	Events     int64 `json:"events"`
	HeadLogSeq int64 `json:"head_log_seq"`
	// ChainHead is the chain hash dg_chain_heads records for the tenant.
	ChainHead string `json:"chain_head"`
	// Checkpoints are the projection cursors (projection -> log_seq).
	Checkpoints map[string]int64 `json:"projection_checkpoints"`
	// Digests of the live projection tables.
	Digests projection.Digests `json:"projection_digests"`
}

// Tenant returns the named tenant's state, or nil.
func (s *DatabaseState) Tenant(id string) *TenantState {
	for i := range s.Tenants {
		if s.Tenants[i].TenantID == id {
			return &s.Tenants[i]
		}
	}
	return nil
}

// ReadState reads a database's state through q. Pass a REPEATABLE READ
// transaction for a consistent answer on a live database.
func ReadState(ctx context.Context, q Querier) (*DatabaseState, error) {
	st := &DatabaseState{Tenants: []TenantState{}, TableRows: map[string]int64{}}
	if err := q.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&st.SchemaVersion); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	tenants := map[string]*TenantState{}
	get := func(id string) *TenantState {
		t := tenants[id]
		if t == nil {
			t = &TenantState{TenantID: id, Checkpoints: map[string]int64{}}
			tenants[id] = t
		}
		return t
	}
	rows, err := q.Query(ctx, `SELECT tenant_id, count(*), max(log_seq), max(recorded_at) FROM dg_event_log GROUP BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("count events per tenant: %w", err)
	}
	var (
		id     string
		n, h   int64
		newest time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &n, &h, &newest}, func() error {
		t := get(id)
		t.Events, t.HeadLogSeq = n, h
		st.Events += n
		st.HeadLogSeq = max(st.HeadLogSeq, h)
		if st.NewestEventAt == nil || newest.After(*st.NewestEventAt) {
			at := newest.UTC()
			st.NewestEventAt = &at
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count events per tenant: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT tenant_id, chain_hash FROM dg_chain_heads`)
	if err != nil {
		return nil, fmt.Errorf("read chain heads: %w", err)
	}
	var hash string
	if _, err = pgx.ForEachRow(rows, []any{&id, &hash}, func() error { get(id).ChainHead = hash; return nil }); err != nil {
		return nil, fmt.Errorf("read chain heads: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT tenant_id, projection_name, last_log_seq FROM dg_projection_cursors`)
	if err != nil {
		return nil, fmt.Errorf("read projection checkpoints: %w", err)
	}
	var name string
	if _, err = pgx.ForEachRow(rows, []any{&id, &name, &h}, func() error { get(id).Checkpoints[name] = h; return nil }); err != nil {
		return nil, fmt.Errorf("read projection checkpoints: %w", err)
	}
	ids := make([]string, 0, len(tenants))
	for id := range tenants {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := tenants[id]
		if t.Digests, err = projection.DigestsIn(ctx, q, id); err != nil {
			return nil, fmt.Errorf("digest projections of tenant %s: %w", id, err)
		}
		st.Tenants = append(st.Tenants, *t)
	}
	// dg_event_log was counted above (its largest table: one scan is enough).
	if st.TableRows, err = tableRows(ctx, q, map[string]int64{"dg_event_log": st.Events}); err != nil {
		return nil, err
	}
	for _, t := range WorkflowTables {
		if n, ok := st.TableRows[t]; ok {
			if st.WorkflowCounts == nil {
				st.WorkflowCounts = map[string]int64{}
			}
			st.WorkflowCounts[t] = n
		}
	}
	return st, nil
}

// tableRows counts the rows of every ordinary table in the public schema
// (workflow tables are found this way when they exist: detection through
// the catalogue, no table is assumed); known holds counts already taken.
func tableRows(ctx context.Context, q Querier, known map[string]int64) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	out := map[string]int64{}
	for _, name := range names {
		if n, ok := known[name]; ok {
			out[name] = n
			continue
		}
		var n int64
		if err := q.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{"public", name}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", name, err)
		}
		out[name] = n
	}
	return out, nil
}
