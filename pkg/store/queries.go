package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/jackc/pgx/v5"
)

// MaxQueryLimit is the largest page a log query returns (events spec §13.1).
const MaxQueryLimit = 10000

// eventColumns are the columns scanEvent reads, prefixed with alias e.
const eventColumns = `e.log_seq, e.tenant_id, e.event_id, e.trace_id, e.trace_seq, e.event_type, e.occurred_at,
	e.recorded_at, e.producer_id, e.source_system, e.source_subsystem, e.actor_type, e.actor_id,
	e.correlation_id, e.causation_event_id, e.idempotency_key, e.schema_version, e.tags::text, e.payload::text,
	e.payload_hash, e.event_hash, e.chain_hash`

// scanEvent reads one row of eventColumns. When the row was read but its
// tags or payload do not decode it returns the partly filled event and an
// *event.Error with CodeStorage.
func scanEvent(row pgx.Row) (*event.StoredEvent, error) {
	ev := &event.StoredEvent{}
	var tags, payload []byte
	if err := row.Scan(&ev.LogSeq, &ev.TenantID, &ev.EventID, &ev.TraceID, &ev.TraceSeq, &ev.EventType, &ev.OccurredAt,
		&ev.RecordedAt, &ev.Source.ProducerID, &ev.Source.System, &ev.Source.Subsystem, &ev.Actor.ActorType, &ev.Actor.ActorID,
		&ev.CorrelationID, &ev.CausationEventID, &ev.IdempotencyKey, &ev.SchemaVersion, &tags, &payload,
		&ev.PayloadHash, &ev.EventHash, &ev.ChainHash); err != nil {
		return nil, err
	}
	ev.RecordedAt = ev.RecordedAt.UTC()
	if err := json.Unmarshal(tags, &ev.Tags); err != nil {
		return ev, &event.Error{Code: event.CodeStorage, Message: fmt.Sprintf("event log_seq %d: stored tags are not a JSON list of strings: %v", ev.LogSeq, err)}
	}
	if ev.Tags == nil {
		ev.Tags = []string{}
	}
	p, err := decodePayload(payload)
	if err != nil {
		return ev, &event.Error{Code: event.CodeStorage, Message: fmt.Sprintf("event log_seq %d: stored payload is not a JSON object: %v", ev.LogSeq, err)}
	}
	ev.Payload = p
	return ev, nil
}

func collectEvents(rows pgx.Rows) ([]*event.StoredEvent, error) {
	defer rows.Close()
	var out []*event.StoredEvent
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

func invalidArg(path, format string, args ...any) error {
	return &event.Error{Code: event.CodeInvalidArgument, Path: path, Message: fmt.Sprintf(format, args...)}
}

// TraceEvents returns the events of one trace with trace_seq > sinceTraceSeq
// (-1 for all), in trace_seq order, at most limit (0: MaxQueryLimit). An
// empty result is DG_ERR_NOT_FOUND.
func (s *Store) TraceEvents(ctx context.Context, tenant, traceID string, sinceTraceSeq int64, limit int) ([]*event.StoredEvent, error) {
	if limit == 0 {
		limit = MaxQueryLimit
	}
	if limit < 0 || limit > MaxQueryLimit {
		return nil, invalidArg("limit", "limit must be between 1 and %d, got %d", MaxQueryLimit, limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM dg_event_log e
		WHERE e.tenant_id = $1 AND e.trace_id = $2 AND e.trace_seq > $3
		ORDER BY e.trace_seq LIMIT $4`, tenant, traceID, sinceTraceSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read trace %s: %w", traceID, err)
	}
	evs, err := collectEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read trace %s: %w", traceID, err)
	}
	if len(evs) == 0 {
		return nil, &event.Error{Code: event.CodeNotFound, Path: "trace_id", Message: fmt.Sprintf("trace %q has no events in tenant %q", traceID, tenant)}
	}
	return evs, nil
}

// ListQuery selects events by log_seq range (events spec §13.1).
type ListQuery struct {
	Tenant    string // "" = all tenants
	Since     int64  // log_seq > Since (exclusive)
	Until     int64  // log_seq <= Until (inclusive); 0 = no bound
	EventType string // optional filter
	TraceID   string // optional filter
	Limit     int    // 1..MaxQueryLimit; 0 = 100
}

// Page is one page of a list query. NextCursor is the Since of the next
// page, 0 when this page is the last.
type Page struct {
	Events     []*event.StoredEvent `json:"events"`
	NextCursor int64                `json:"next_cursor,omitempty"`
}

// ListEvents returns events in log_seq order matching q.
func (s *Store) ListEvents(ctx context.Context, q ListQuery) (*Page, error) {
	if q.Limit == 0 {
		q.Limit = 100
	}
	switch {
	case q.Since < 0:
		return nil, invalidArg("since", "since must not be negative")
	case q.Until < 0:
		return nil, invalidArg("until", "until must not be negative")
	case q.Until > 0 && q.Since > q.Until:
		return nil, invalidArg("since", "since (%d) must not be greater than until (%d)", q.Since, q.Until)
	case q.Limit < 0 || q.Limit > MaxQueryLimit:
		return nil, invalidArg("limit", "limit must be between 1 and %d, got %d", MaxQueryLimit, q.Limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM dg_event_log e
		WHERE e.log_seq > $1::bigint AND ($2::bigint = 0 OR e.log_seq <= $2::bigint)
		  AND ($3 = '' OR e.tenant_id = $3) AND ($4 = '' OR e.event_type = $4) AND ($5 = '' OR e.trace_id = $5)
		ORDER BY e.log_seq LIMIT $6`, q.Since, q.Until, q.Tenant, q.EventType, q.TraceID, q.Limit+1)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	evs, err := collectEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	p := &Page{Events: evs}
	if len(evs) > q.Limit {
		p.Events = evs[:q.Limit]
		p.NextCursor = p.Events[q.Limit-1].LogSeq
	}
	return p, nil
}

// ReadBatch returns up to n events with log_seq > after in log_seq order,
// of one tenant or all tenants (tenant ""). It is the projectors' feed:
// because log_seq is assigned at commit under the append lock, no event
// below the last one returned can appear later.
func (s *Store) ReadBatch(ctx context.Context, tenant string, after int64, n int) ([]*event.StoredEvent, error) {
	if n <= 0 {
		return nil, invalidArg("batch_size", "batch size must be positive, got %d", n)
	}
	var rows pgx.Rows
	var err error
	if tenant == "" {
		rows, err = s.pool.Query(ctx, `SELECT `+eventColumns+` FROM dg_event_log e
			WHERE e.log_seq > $1 ORDER BY e.log_seq LIMIT $2`, after, n)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT `+eventColumns+` FROM dg_event_log e
			WHERE e.tenant_id = $1 AND e.log_seq > $2 ORDER BY e.log_seq LIMIT $3`, tenant, after, n)
	}
	if err != nil {
		return nil, fmt.Errorf("read events after log_seq %d: %w", after, err)
	}
	evs, err := collectEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events after log_seq %d: %w", after, err)
	}
	return evs, nil
}

// Stream calls fn with consecutive batches of up to n events after log_seq
// `after` (one tenant or all), until the log is exhausted or fn returns an
// error. It returns the last log_seq handed to fn.
func (s *Store) Stream(ctx context.Context, tenant string, after int64, n int, fn func([]*event.StoredEvent) error) (int64, error) {
	for {
		evs, err := s.ReadBatch(ctx, tenant, after, n)
		if err != nil {
			return after, err
		}
		if len(evs) == 0 {
			return after, nil
		}
		if err := fn(evs); err != nil {
			return after, err
		}
		after = evs[len(evs)-1].LogSeq
		if len(evs) < n {
			return after, nil
		}
	}
}

// Head returns the highest committed log_seq (0 for an empty log).
func (s *Store) Head(ctx context.Context) (int64, error) {
	return Head(ctx, s.pool)
}

// Head reads the highest committed log_seq through any connection.
func Head(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int64, error) {
	var h int64
	if err := q.QueryRow(ctx, `SELECT COALESCE(max(log_seq), 0) FROM dg_event_log`).Scan(&h); err != nil {
		return 0, fmt.Errorf("read log head: %w", err)
	}
	return h, nil
}

// ChainHeads returns every tenant's chain head, by tenant id.
func (s *Store) ChainHeads(ctx context.Context) ([]ChainHead, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, log_seq, chain_hash, event_count FROM dg_chain_heads ORDER BY tenant_id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("read chain heads: %w", err)
	}
	heads, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChainHead, error) {
		var h ChainHead
		err := r.Scan(&h.TenantID, &h.LogSeq, &h.ChainHash, &h.EventCount)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("read chain heads: %w", err)
	}
	return heads, nil
}

// ChainHead returns one tenant's chain head (genesis and 0 events if the
// tenant has none).
func (s *Store) ChainHead(ctx context.Context, tenant string) (ChainHead, error) {
	h := ChainHead{TenantID: tenant}
	err := s.pool.QueryRow(ctx, `SELECT log_seq, chain_hash, event_count FROM dg_chain_heads WHERE tenant_id = $1`, tenant).
		Scan(&h.LogSeq, &h.ChainHash, &h.EventCount)
	if err == pgx.ErrNoRows {
		h.ChainHash = event.ChainGenesis(tenant)
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("read chain head of tenant %s: %w", tenant, err)
	}
	return h, nil
}

// Tenants lists the tenants that have events, sorted.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id FROM dg_chain_heads ORDER BY tenant_id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	ts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ts, nil
}
