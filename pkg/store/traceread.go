package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// RawEvent is one stored event as its column bytes, for renderers that
// write responses without decoding: strings are the column's UTF-8 text,
// Tags and Payload the stored JSON text exactly as written (the canonical
// text payload_hash covers). A nil SourceSubsystem, CorrelationID or
// CausationEventID is SQL NULL. The slices point into the driver's read
// buffer and are valid only during the callback that receives the event.
type RawEvent struct {
	LogSeq        int64
	TraceSeq      int64
	SchemaVersion int64
	RecordedAt    time.Time // UTC

	TenantID, EventID, TraceID, EventType, OccurredAt []byte
	ProducerID, SourceSystem, SourceSubsystem         []byte
	ActorType, ActorID                                []byte
	CorrelationID, CausationEventID                   []byte
	IdempotencyKey                                    []byte
	Tags, Payload                                     []byte
	PayloadHash, EventHash, ChainHash                 []byte
}

// RawTraceSummary is the projected summary row of a trace as column bytes
// (nil = NULL); valid only during the callback that receives it.
type RawTraceSummary struct {
	TraceID, Workflow, Title                    []byte
	PrimaryEntityType, PrimaryEntityID, Outcome []byte
	StartedAt, FinishedAt                       []byte
	EventCount, LastLogSeq                      int64
}

// RawTraceMeta is what a trace read with its summary learns besides the
// events: the tenant's head log_seq, the projection's checkpoint (0 when it
// has none) and the summary row, if any.
type RawTraceMeta struct {
	Head, Checkpoint int64
	HasSummary       bool
	Summary          RawTraceSummary
	// Mark is the tenant's mark in the same snapshot (ReadTraceTail only).
	Mark TenantMark
}

// ErrRawUnsupported is returned by the raw trace reads when the driver did
// not deliver a row in the expected wire format or order (for example a
// pool configured for the simple protocol). Callers fall back to
// TraceEvents; nothing has been decided about the trace.
var ErrRawUnsupported = errors.New("raw trace read: unexpected result format")

// rawEventColumns are the event columns of a raw read, in RawEvent order.
// tenant_id and trace_id are not read: the query selects them by equality
// (deterministic collation, so byte-equal), and the reader fills them in
// from its arguments.
const rawEventColumns = `e.log_seq, e.trace_seq, e.schema_version, e.recorded_at,
	e.event_id, e.event_type, e.occurred_at,
	e.producer_id, e.source_system, e.source_subsystem, e.actor_type, e.actor_id,
	e.correlation_id, e.causation_event_id, e.idempotency_key, e.tags, e.payload,
	e.payload_hash, e.event_hash, e.chain_hash`

const rawEventColumnCount = 20

// rawEventsSQL reads a whole trace (no page limit: a trace route answers
// every event) in trace_seq order.
const rawEventsSQL = `SELECT ` + rawEventColumns + ` FROM dg_event_log e
	WHERE e.tenant_id = $1 AND e.trace_id = $2 ORDER BY e.trace_seq`

// The tenant's head is written as ORDER BY log_seq DESC LIMIT 1 rather than
// max(log_seq) so that the prepared statement's generic plan is always the
// one-entry backward walk of dg_event_log_tenant_log_seq (with a small log
// the planner otherwise picks an aggregate over all the tenant's entries,
// which a generic plan then keeps as the log grows).
//
// rawTraceWithSummarySQL answers, in one statement and so one snapshot,
// everything the trace route needs: one meta row (kind 0: the tenant's
// head, the projection checkpoint and the summary row, NULLs when there is
// none) and the events (kind 1) in trace_seq order. The order of the two
// UNION ALL branches is not guaranteed by SQL, so the reader accepts the
// meta row anywhere and checks that trace_seq increases (ErrRawUnsupported
// otherwise) instead of paying for a sort.
const rawTraceWithSummarySQL = `SELECT 0::int2 AS kind, m.head, m.cp,
		s.trace_id, s.workflow, s.title, s.primary_entity_type, s.primary_entity_id, s.outcome,
		s.started_at, s.finished_at, s.event_count, s.last_log_seq,
		NULL::bigint, NULL::bigint, NULL::bigint, NULL::timestamptz,
		NULL::text, NULL::text, NULL::text,
		NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
		NULL::text, NULL::text, NULL::text, NULL::json, NULL::json,
		NULL::text, NULL::text, NULL::text
	FROM (SELECT COALESCE((SELECT log_seq FROM dg_event_log WHERE tenant_id = $1 ORDER BY log_seq DESC LIMIT 1), 0) AS head,
			COALESCE((SELECT last_log_seq FROM dg_projection_cursors WHERE tenant_id = $1 AND projection_name = $3), 0) AS cp) m
		LEFT JOIN dg_trace_summary s ON s.tenant_id = $1 AND s.trace_id = $2
	UNION ALL
	(SELECT 1::int2, NULL::bigint, NULL::bigint,
		NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
		NULL::text, NULL::text, NULL::bigint, NULL::bigint, ` + rawEventColumns + `
	FROM dg_event_log e WHERE e.tenant_id = $1 AND e.trace_id = $2 ORDER BY e.trace_seq)`

const rawMetaColumnCount = 13 // kind, head, cp and ten summary columns

// binaryResults asks for every result column in binary format: integers
// and timestamps as fixed-width values; text and json binary output is the
// text itself.
var binaryResults = pgx.QueryResultFormats{pgx.BinaryFormatCode}

// ReadTraceRaw calls fn with each event of one trace in trace_seq order,
// reading the columns as bytes (no payload decoding). A trace without
// events is DG_ERR_NOT_FOUND, as TraceEvents. An error returned by fn stops
// the read and is returned as is.
func (s *Store) ReadTraceRaw(ctx context.Context, tenant, traceID string, fn func(*RawEvent) error) error {
	rows, err := s.pool.Query(ctx, rawEventsSQL, binaryResults, tenant, traceID)
	if err != nil {
		return fmt.Errorf("read trace %s: %w", traceID, err)
	}
	defer rows.Close()
	ev := RawEvent{TenantID: []byte(tenant), TraceID: []byte(traceID)}
	n := 0
	last := int64(-1)
	for rows.Next() {
		if err := rawEventOf(rows.FieldDescriptions(), rows.RawValues(), &ev); err != nil {
			return err
		}
		if ev.TraceSeq <= last {
			return ErrRawUnsupported
		}
		last = ev.TraceSeq
		n++
		if err := fn(&ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read trace %s: %w", traceID, err)
	}
	if n == 0 {
		return traceNotFound(tenant, traceID)
	}
	return nil
}

// ReadTraceRawWithSummary reads one trace together with the freshness
// inputs and summary row of the named projection (the trace summary), in
// one statement. meta is called exactly once, before the first event when
// the database returns the meta row first (it does; otherwise the events
// are buffered by the caller's choice — see ErrRawUnsupported). If meta
// returns an error the read stops and that error is returned. A trace
// without events is not an error here: fn is simply never called.
func (s *Store) ReadTraceRawWithSummary(ctx context.Context, tenant, traceID, projection string,
	meta func(*RawTraceMeta) error, fn func(*RawEvent) error) error {
	rows, err := s.pool.Query(ctx, rawTraceWithSummarySQL, binaryResults, tenant, traceID, projection)
	if err != nil {
		return fmt.Errorf("read trace %s: %w", traceID, err)
	}
	defer rows.Close()
	ev := RawEvent{TenantID: []byte(tenant), TraceID: []byte(traceID)}
	var (
		m        RawTraceMeta
		seenMeta bool
		last     = int64(-1)
	)
	for rows.Next() {
		fds, vals := rows.FieldDescriptions(), rows.RawValues()
		if len(vals) != rawMetaColumnCount+rawEventColumnCount {
			return ErrRawUnsupported
		}
		kind, ok := rawInt(fds[0], vals[0])
		if !ok {
			return ErrRawUnsupported
		}
		if kind == 0 {
			if seenMeta {
				return ErrRawUnsupported
			}
			seenMeta = true
			if err := rawMetaOf(fds, vals, 1, &m); err != nil {
				return err
			}
			if err := meta(&m); err != nil {
				return err
			}
			continue
		}
		if !seenMeta {
			// The events came before the meta row: the caller cannot know
			// yet whether to render them.
			return ErrRawUnsupported
		}
		if err := rawEventOf(fds[rawMetaColumnCount:], vals[rawMetaColumnCount:], &ev); err != nil {
			return err
		}
		if ev.TraceSeq <= last {
			return ErrRawUnsupported
		}
		last = ev.TraceSeq
		if err := fn(&ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read trace %s: %w", traceID, err)
	}
	if !seenMeta {
		return ErrRawUnsupported
	}
	return nil
}

func traceNotFound(tenant, traceID string) error {
	return &event.Error{Code: event.CodeNotFound, Path: "trace_id", Message: fmt.Sprintf("trace %q has no events in tenant %q", traceID, tenant)}
}

// rawMetaOf reads the head, checkpoint and summary columns starting at
// column o.
func rawMetaOf(fds []pgconn.FieldDescription, v [][]byte, o int, m *RawTraceMeta) error {
	var ok1, ok2 bool
	m.Head, ok1 = rawInt(fds[o], v[o])
	m.Checkpoint, ok2 = rawInt(fds[o+1], v[o+1])
	if !ok1 || !ok2 {
		return ErrRawUnsupported
	}
	s := &m.Summary
	m.HasSummary = v[o+2] != nil
	if !m.HasSummary {
		*s = RawTraceSummary{}
		return nil
	}
	for i := o + 2; i <= o+9; i++ {
		if fds[i].Format != pgx.BinaryFormatCode && fds[i].Format != pgx.TextFormatCode {
			return ErrRawUnsupported
		}
	}
	s.TraceID, s.Workflow, s.Title = v[o+2], v[o+3], v[o+4]
	s.PrimaryEntityType, s.PrimaryEntityID, s.Outcome = v[o+5], v[o+6], v[o+7]
	s.StartedAt, s.FinishedAt = v[o+8], v[o+9]
	if s.EventCount, ok1 = rawInt(fds[o+10], v[o+10]); !ok1 {
		return ErrRawUnsupported
	}
	if s.LastLogSeq, ok1 = rawInt(fds[o+11], v[o+11]); !ok1 {
		return ErrRawUnsupported
	}
	return nil
}

// rawEventOf fills ev from one row of rawEventColumns (all but TenantID
// and TraceID).
func rawEventOf(fds []pgconn.FieldDescription, v [][]byte, ev *RawEvent) error {
	if len(v) != rawEventColumnCount {
		return ErrRawUnsupported
	}
	var ok [3]bool
	ev.LogSeq, ok[0] = rawInt(fds[0], v[0])
	ev.TraceSeq, ok[1] = rawInt(fds[1], v[1])
	ev.SchemaVersion, ok[2] = rawInt(fds[2], v[2])
	if !ok[0] || !ok[1] || !ok[2] {
		return ErrRawUnsupported
	}
	t, good := rawTime(fds[3], v[3])
	if !good {
		return ErrRawUnsupported
	}
	ev.RecordedAt = t
	// Text and json columns carry their text in either format; NULL is a
	// nil slice (only the three nullable columns may be NULL).
	ev.EventID, ev.EventType, ev.OccurredAt = v[4], v[5], v[6]
	ev.ProducerID, ev.SourceSystem, ev.SourceSubsystem = v[7], v[8], v[9]
	ev.ActorType, ev.ActorID = v[10], v[11]
	ev.CorrelationID, ev.CausationEventID, ev.IdempotencyKey = v[12], v[13], v[14]
	ev.Tags, ev.Payload = v[15], v[16]
	ev.PayloadHash, ev.EventHash, ev.ChainHash = v[17], v[18], v[19]
	for i := 4; i < rawEventColumnCount; i++ {
		if v[i] == nil && i != 9 && i != 12 && i != 13 {
			return ErrRawUnsupported
		}
	}
	return nil
}

// rawInt decodes a non-NULL int2/int4/int8 column in binary format.
func rawInt(fd pgconn.FieldDescription, b []byte) (int64, bool) {
	if fd.Format != pgx.BinaryFormatCode || b == nil {
		return 0, false
	}
	switch {
	case fd.DataTypeOID == pgtype.Int8OID && len(b) == 8:
		return int64(binary.BigEndian.Uint64(b)), true
	case fd.DataTypeOID == pgtype.Int4OID && len(b) == 4:
		return int64(int32(binary.BigEndian.Uint32(b))), true
	case fd.DataTypeOID == pgtype.Int2OID && len(b) == 2:
		return int64(int16(binary.BigEndian.Uint16(b))), true
	}
	return 0, false
}

// pgEpochMicros is 2000-01-01T00:00:00Z in Unix microseconds, the origin of
// PostgreSQL's binary timestamps.
const pgEpochMicros = 946684800 * 1000000

// rawTime decodes a finite, non-NULL binary timestamptz as UTC.
func rawTime(fd pgconn.FieldDescription, b []byte) (time.Time, bool) {
	if fd.Format != pgx.BinaryFormatCode || fd.DataTypeOID != pgtype.TimestamptzOID || len(b) != 8 {
		return time.Time{}, false
	}
	us := int64(binary.BigEndian.Uint64(b))
	// ±infinity are the extreme int64 values; pgx refuses to scan them
	// into time.Time too, so the caller's fallback reports them.
	if us == 1<<63-1 || us == -1<<63 {
		return time.Time{}, false
	}
	return time.UnixMicro(us + pgEpochMicros).UTC(), true
}

// RawTraceTail is the last event of a trace (highest trace_seq), which a
// reader holding a rendering of the trace compares with the one it
// rendered: the log is append-only, so events before an unchanged last
// event are unchanged too. ChainHash is valid only during the callback.
type RawTraceTail struct {
	Exists     bool
	TraceSeq   int64
	LogSeq     int64
	RecordedAt int64 // Unix microseconds
	ChainHash  []byte
}

// TenantMark identifies, at one snapshot, a tenant's log and one
// projection's state: the tenant's last event (log_seq, recorded_at and
// chain_hash, which covers every earlier event of the tenant) and the
// projection's cursor row (its checkpoint and the time it was last
// written, and the transaction that wrote it: every catch-up batch and
// every rebuild rewrites it with the projection's rows). Two
// marks of one tenant and projection are equal only when nothing was
// appended to the tenant and the projection's rows of the tenant were not
// rewritten in between, short of someone editing those tables by hand.
// Marks are comparable with ==.
type TenantMark struct {
	Head           int64  // log_seq of the tenant's last event (0: none)
	HeadRecordedAt int64  // its recorded_at, Unix microseconds
	HeadChain      string // its chain_hash
	Checkpoint     int64  // the projection's checkpoint (0: none)
	CheckpointAt   int64  // the cursor row's updated_at, Unix microseconds (0: none)
	CheckpointXmin int64  // the transaction that wrote the cursor row (0: none)
}

// tenantHeadJoin is the tenant's last event and the projection's cursor
// row ($1 tenant, $3 projection), each NULL when there is none. The head is
// written as ORDER BY log_seq DESC LIMIT 1 for the reason given above
// rawTraceWithSummarySQL.
const tenantHeadJoin = `(SELECT 1) one
		LEFT JOIN LATERAL (SELECT h.log_seq, h.recorded_at, h.chain_hash FROM dg_event_log h
			WHERE h.tenant_id = $1 ORDER BY h.log_seq DESC LIMIT 1) h ON true
		LEFT JOIN LATERAL (SELECT c.last_log_seq, c.updated_at, c.xmin::text::bigint AS xmin FROM dg_projection_cursors c
			WHERE c.tenant_id = $1 AND c.projection_name = $3) c ON true`

// rawTraceTailSQL is the meta row of rawTraceWithSummarySQL plus the
// trace's last event and the tenant's mark, in one statement.
const rawTraceTailSQL = `SELECT COALESCE(h.log_seq, 0), COALESCE(c.last_log_seq, 0),
		s.trace_id, s.workflow, s.title, s.primary_entity_type, s.primary_entity_id, s.outcome,
		s.started_at, s.finished_at, s.event_count, s.last_log_seq,
		l.trace_seq, l.log_seq, l.recorded_at, l.chain_hash,
		h.recorded_at, h.chain_hash, c.updated_at, c.xmin
	FROM ` + tenantHeadJoin + `
		LEFT JOIN dg_trace_summary s ON s.tenant_id = $1 AND s.trace_id = $2
		LEFT JOIN LATERAL (SELECT e.trace_seq, e.log_seq, e.recorded_at, e.chain_hash FROM dg_event_log e
			WHERE e.tenant_id = $1 AND e.trace_id = $2 ORDER BY e.trace_seq DESC LIMIT 1) l ON true`

// tenantMarkSQL is the tenant's mark alone ($1 tenant, $2 projection).
var tenantMarkSQL = `SELECT COALESCE(h.log_seq, 0), h.recorded_at, h.chain_hash, COALESCE(c.last_log_seq, 0), c.updated_at, c.xmin
	FROM ` + strings.ReplaceAll(tenantHeadJoin, "$3", "$2")

// ReadTenantMark reads the tenant's mark for one projection.
func (s *Store) ReadTenantMark(ctx context.Context, tenant, projection string) (TenantMark, error) {
	var m TenantMark
	rows, err := s.pool.Query(ctx, tenantMarkSQL, binaryResults, tenant, projection)
	if err != nil {
		return m, fmt.Errorf("read the head of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return m, fmt.Errorf("read the head of tenant %s: %w", tenant, err)
		}
		return m, ErrRawUnsupported
	}
	fds, vals := rows.FieldDescriptions(), rows.RawValues()
	if len(vals) != 6 {
		return m, ErrRawUnsupported
	}
	var ok1, ok2 bool
	m.Head, ok1 = rawInt(fds[0], vals[0])
	m.Checkpoint, ok2 = rawInt(fds[3], vals[3])
	if !ok1 || !ok2 || !rawMarkTimes(fds, vals, 1, 2, 4, &m) {
		return m, ErrRawUnsupported
	}
	rows.Close()
	return m, rows.Err()
}

// rawMarkTimes fills m's head recorded_at and chain hash and the cursor's
// updated_at and xmin from columns at, chain, cpAt and cpAt+1 (NULL when
// there is no event or no cursor row).
func rawMarkTimes(fds []pgconn.FieldDescription, vals [][]byte, at, chain, cpAt int, m *TenantMark) bool {
	if vals[at] != nil {
		t, ok := rawTime(fds[at], vals[at])
		if !ok || vals[chain] == nil {
			return false
		}
		m.HeadRecordedAt, m.HeadChain = t.UnixMicro(), string(vals[chain])
	}
	if vals[cpAt] != nil {
		t, ok := rawTime(fds[cpAt], vals[cpAt])
		if !ok {
			return false
		}
		x, ok := rawInt(fds[cpAt+1], vals[cpAt+1])
		if !ok {
			return false
		}
		m.CheckpointAt, m.CheckpointXmin = t.UnixMicro(), x
	}
	return true
}

// ReadTraceTail reads, in one statement, what ReadTraceRawWithSummary's
// meta callback gets plus the trace's last event, and calls fn with them.
func (s *Store) ReadTraceTail(ctx context.Context, tenant, traceID, projection string,
	fn func(*RawTraceMeta, *RawTraceTail) error) error {
	rows, err := s.pool.Query(ctx, rawTraceTailSQL, binaryResults, tenant, traceID, projection)
	if err != nil {
		return fmt.Errorf("read trace %s: %w", traceID, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read trace %s: %w", traceID, err)
		}
		return ErrRawUnsupported
	}
	fds, vals := rows.FieldDescriptions(), rows.RawValues()
	if len(vals) != 20 {
		return ErrRawUnsupported
	}
	var m RawTraceMeta
	if err := rawMetaOf(fds, vals, 0, &m); err != nil {
		return err
	}
	m.Mark.Head, m.Mark.Checkpoint = m.Head, m.Checkpoint
	if !rawMarkTimes(fds, vals, 16, 17, 18, &m.Mark) {
		return ErrRawUnsupported
	}
	var tail RawTraceTail
	if vals[12] != nil {
		var ok1, ok2 bool
		tail.TraceSeq, ok1 = rawInt(fds[12], vals[12])
		tail.LogSeq, ok2 = rawInt(fds[13], vals[13])
		t, ok3 := rawTime(fds[14], vals[14])
		if !ok1 || !ok2 || !ok3 || vals[15] == nil {
			return ErrRawUnsupported
		}
		tail.Exists, tail.RecordedAt, tail.ChainHash = true, t.UnixMicro(), vals[15]
	}
	if err := fn(&m, &tail); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}
