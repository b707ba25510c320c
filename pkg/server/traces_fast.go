package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// The fast trace read: the events come from the log as column bytes
// (store.ReadTraceRaw*) and are written into one pooled buffer with
// pre-escaped member names, the stored payload and tags text spliced in by
// event.AppendStoredPayload/AppendStoredTags. No maps, no reflection, and
// with APIConfig.TraceSummaryPG one statement per request. The bytes are
// exactly what serveTraceDecoded writes (traces_fast_test.go compares
// them); whenever the fast path cannot vouch for that (a payload the
// walker declines, an unexpected wire format, a stale projection, a
// missing summary) it reports false and the decoding path answers.

// rawTraceLog is what the fast path needs from the event log; *store.Store
// has it.
type rawTraceLog interface {
	ReadTraceRaw(ctx context.Context, tenant, traceID string, fn func(*store.RawEvent) error) error
	ReadTraceRawWithSummary(ctx context.Context, tenant, traceID, projection string,
		meta func(*store.RawTraceMeta) error, fn func(*store.RawEvent) error) error
	ReadTraceTail(ctx context.Context, tenant, traceID, projection string,
		fn func(*store.RawTraceMeta, *store.RawTraceTail) error) error
	ReadTenantMark(ctx context.Context, tenant, projection string) (store.TenantMark, error)
}

// errTraceFallback stops a raw read whose answer the decoding path must give.
var errTraceFallback = errors.New("trace read: take the decoding path")

// rawLog returns the log's raw reader, and the telemetry that wraps it.
func (a *api) rawLog() (rawTraceLog, *Telemetry) {
	switch l := a.cfg.Log.(type) {
	case *tracedLog:
		if raw, ok := l.log.(rawTraceLog); ok {
			return raw, l.t
		}
	case rawTraceLog:
		return l, nil
	}
	return nil, nil
}

// traceBufs recycles response buffers (a 100-event trace is ~60 KiB).
var traceBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledTraceBuf keeps one huge trace from pinning its buffer forever.
const maxPooledTraceBuf = 4 << 20

func getTraceBuf() *[]byte { return traceBufs.Get().(*[]byte) }

func putTraceBuf(b *[]byte) {
	if cap(*b) > maxPooledTraceBuf {
		return
	}
	*b = (*b)[:0]
	traceBufs.Put(b)
}

const traceBodyStart = `{"data":{"events":[`

// rawTraceRender accumulates the events of one read, and what a trace
// cache entry needs to know about them.
type rawTraceRender struct {
	buf    []byte
	n      int64
	system string // primary_entity.system of the first event's payload
	hasSys bool

	// The tenant and trace id are the same in every row: escaped once.
	tenantJSON, traceJSON []byte

	contiguous bool // trace_seq 0..n-1 so far
	lastLogSeq int64
	lastRecAt  int64
	lastChain  []byte
}

func (t *rawTraceRender) event(ev *store.RawEvent) error {
	if t.n == 0 {
		t.system, t.hasSys = primaryEntitySystem(ev.Payload)
		t.contiguous = true
		t.tenantJSON = event.AppendJSONString(nil, ev.TenantID)
		t.traceJSON = event.AppendJSONString(nil, ev.TraceID)
	} else {
		t.buf = append(t.buf, ',')
	}
	var ok bool
	if t.buf, ok = appendRawEvent(t.buf, ev, t.tenantJSON, t.traceJSON); !ok {
		return errTraceFallback
	}
	t.contiguous = t.contiguous && ev.TraceSeq == t.n
	t.lastLogSeq, t.lastRecAt = ev.LogSeq, ev.RecordedAt.UnixMicro()
	t.lastChain = append(t.lastChain[:0], ev.ChainHash...)
	t.n++
	return nil
}

// errTraceCacheMiss: the cached rendering is not the trace's current one.
var errTraceCacheMiss = errors.New("trace cache: the trace changed")

// serveTraceWithSummaryRaw answers the trace route from one statement that
// reads the projection checkpoint, the tenant's head, the summary row and
// the events (or, with a cached rendering, the trace's last event instead
// of all of them). It reports false (nothing written) when the decoding
// path must answer, including every error response other than a database
// failure, so that those keep the projection query's exact wording.
func (a *api) serveTraceWithSummaryRaw(w http.ResponseWriter, r *http.Request, p *Principal, traceID string) bool {
	raw, tel := a.rawLog()
	if raw == nil {
		return false
	}
	bp := getTraceBuf()
	defer putTraceBuf(bp)
	cache := a.cfg.traceCache
	var key string
	if cache != nil {
		key = traceCacheKey(p.Tenant, traceID)
		if e := cache.get(key); e != nil {
			handled, fallback := a.serveTraceCached(w, r, p, traceID, key, raw, tel, e, bp)
			if handled {
				return true
			}
			if fallback {
				return false
			}
		}
	}
	t := rawTraceRender{buf: append((*bp)[:0], traceBodyStart...)}
	var sum1, sum2 []byte // the summary before and after primary_entity_system
	ctx, end := traceSpan(r.Context(), tel, p.Tenant)
	err := raw.ReadTraceRawWithSummary(ctx, p.Tenant, traceID, projection.TraceSummary,
		func(m *store.RawTraceMeta) error {
			if m.Checkpoint < m.Head || !m.HasSummary {
				return errTraceFallback
			}
			sum1, sum2 = appendRawSummary(nil, &m.Summary)
			return nil
		}, t.event)
	end(err)
	*bp = t.buf
	if err != nil {
		if errors.Is(err, errTraceFallback) || errors.Is(err, store.ErrRawUnsupported) {
			return false
		}
		a.writeFailure(w, r, err)
		return true
	}
	if t.n == 0 {
		return false // a summary without events: the decoding path's 404
	}
	if cache != nil && t.contiguous {
		cache.put(key, &traceCacheEntry{
			events: bytes.Clone(t.buf[len(traceBodyStart):]), n: t.n,
			lastLogSeq: t.lastLogSeq, lastRecAt: t.lastRecAt, lastChain: string(t.lastChain),
			system: t.system, hasSys: t.hasSys,
		})
	}
	t.buf = appendSummaryTail(t.buf, sum1, sum2, t.system, t.hasSys)
	*bp = a.finishTraceBody(w, r, t.buf)
	return true
}

// serveTraceCached answers from the cached rendering e when the trace
// still ends with e's last event. handled: the response is written;
// fallback: the decoding path must answer; neither: a miss, read the trace.
// When e holds a tenant mark, an unchanged mark confirms e on its own
// (traces_cache.go). Both statements may be shared with concurrent reads
// that arrived no later than the statement started (traces_tail.go).
func (a *api) serveTraceCached(w http.ResponseWriter, r *http.Request, p *Principal, traceID, key string,
	raw rawTraceLog, tel *Telemetry, e *traceCacheEntry, bp *[]byte) (handled, fallback bool) {
	cache := a.cfg.traceCache
	ctx, end := traceSpan(r.Context(), tel, p.Tenant)
	if e.hasMark && cache.markWorthChecking(p.Tenant, e.mark) {
		mark, err := cache.marks.do(ctx, p.Tenant, func(ctx context.Context) (store.TenantMark, error) {
			return raw.ReadTenantMark(ctx, p.Tenant, projection.TraceSummary)
		})
		// A failure is counted and left to the per-trace statement to
		// report.
		if err != nil {
			cache.markErrs.Add(1)
		} else {
			cache.noteMark(p.Tenant, mark)
			if mark == e.mark && mark.Checkpoint >= mark.Head {
				end(nil)
				cache.hits.Add(1)
				cache.markHits.Add(1)
				a.writeMarkedTrace(w, r, e)
				return true, false
			}
		}
	}
	res, err := cache.tails.do(ctx, key, func(ctx context.Context) (tailResult, error) {
		var out tailResult
		err := raw.ReadTraceTail(ctx, p.Tenant, traceID, projection.TraceSummary, func(m *store.RawTraceMeta, tail *store.RawTraceTail) error {
			if m.Checkpoint < m.Head || !m.HasSummary {
				out.fallback = true
				return nil
			}
			out.tail = *tail
			out.tail.ChainHash = bytes.Clone(tail.ChainHash)
			out.mark = m.Mark
			out.sum1, out.sum2 = appendRawSummary(nil, &m.Summary)
			return nil
		})
		return out, err
	})
	switch {
	case err != nil:
	case res.fallback:
		err = errTraceFallback
	case !res.tail.Exists || !e.matches(res.tail.TraceSeq, res.tail.LogSeq, res.tail.RecordedAt, res.tail.ChainHash):
		err = errTraceCacheMiss
	}
	end(err)
	switch {
	case err == nil:
		cache.hits.Add(1)
		cache.noteMark(p.Tenant, res.mark)
		if !e.hasMark || e.mark != res.mark {
			cache.put(key, e.withMark(&res))
		}
		a.writeCachedTrace(w, r, e, res.sum1, res.sum2, bp)
		return true, false
	case errors.Is(err, errTraceCacheMiss):
		cache.misses.Add(1)
		return false, false
	case errors.Is(err, errTraceFallback) || errors.Is(err, store.ErrRawUnsupported):
		return false, true
	}
	a.writeFailure(w, r, err)
	return true, false
}

// writeMarkedTrace writes e's whole response from its body, without
// copying it, as finishTraceBody would write it.
func (a *api) writeMarkedTrace(w http.ResponseWriter, r *http.Request, e *traceCacheEntry) {
	var tail [128]byte
	t := event.AppendJSONString(tail[:0], []byte(requestID(r.Context())))
	t = append(t, '}', '\n')
	if err := writeParts(w, r, "application/json; charset=utf-8", e.body, t); err != nil {
		a.s.log.WarnContext(r.Context(), "write response", "err", err)
	}
}

// writeCachedTrace writes e's events with the summary sum1, sum2.
func (a *api) writeCachedTrace(w http.ResponseWriter, r *http.Request, e *traceCacheEntry, sum1, sum2 []byte, bp *[]byte) {
	b := append((*bp)[:0], traceBodyStart...)
	b = append(b, e.events...)
	b = appendSummaryTail(b, sum1, sum2, e.system, e.hasSys)
	*bp = a.finishTraceBody(w, r, b)
}

// appendSummaryTail closes the events array and writes the summary, its
// primary_entity_system taken from the first event.
func appendSummaryTail(b, sum1, sum2 []byte, system string, hasSys bool) []byte {
	b = append(b, `],"summary":`...)
	b = append(b, sum1...)
	if hasSys {
		b = event.AppendJSONString(b, []byte(system))
	} else {
		b = append(b, "null"...)
	}
	return append(b, sum2...)
}

// serveTraceRaw answers the trace route with the summary already read (nil
// without a summary hook). It reports false, having written nothing, when
// the decoding path must answer.
func (a *api) serveTraceRaw(w http.ResponseWriter, r *http.Request, p *Principal, traceID string, summary any) bool {
	raw, tel := a.rawLog()
	if raw == nil {
		return false
	}
	bp := getTraceBuf()
	defer putTraceBuf(bp)
	t := rawTraceRender{buf: append((*bp)[:0], traceBodyStart...)}
	ctx, end := traceSpan(r.Context(), tel, p.Tenant)
	err := raw.ReadTraceRaw(ctx, p.Tenant, traceID, t.event)
	end(err)
	*bp = t.buf
	if code, ok := event.CodeOf(err); ok && code == event.CodeNotFound {
		a.s.writeError(w, r, http.StatusNotFound, "not_found", "Trace not found: "+traceID, map[string]any{"trace_id": traceID})
		return true
	}
	if err != nil {
		if errors.Is(err, errTraceFallback) || errors.Is(err, store.ErrRawUnsupported) {
			return false
		}
		a.writeFailure(w, r, err)
		return true
	}
	if m, ok := summary.(map[string]any); ok && m["primary_entity_system"] == nil && t.hasSys {
		m["primary_entity_system"] = t.system // as serveTraceDecoded does
	}
	sum, err := json.Marshal(summary)
	if err != nil {
		return false // the decoding path reports it
	}
	t.buf = append(t.buf, `],"summary":`...)
	t.buf = append(t.buf, sum...)
	*bp = a.finishTraceBody(w, r, t.buf)
	return true
}

// finishTraceBody closes the success envelope and writes it as
// Server.writeData would (same status, Content-Type and trailing newline),
// in one Write and with a Content-Length.
func (a *api) finishTraceBody(w http.ResponseWriter, r *http.Request, b []byte) []byte {
	b = append(b, `},"request_id":`...)
	b = event.AppendJSONString(b, []byte(requestID(r.Context())))
	b = append(b, '}', '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	// The body is complete: declare its length, so net/http sends it as
	// is instead of chunked (one write syscall fewer, no chunk framing for
	// the client to parse). A header addition any HTTP/1.1 client accepts.
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(b); err != nil {
		a.s.log.WarnContext(r.Context(), "write response", "err", err)
	}
	return b
}

// traceSpan opens the store.trace_events span the traced log opens for
// TraceEvents (a no-op without telemetry).
func traceSpan(ctx context.Context, t *Telemetry, tenant string) (context.Context, func(error)) {
	if t == nil {
		return ctx, func(error) {}
	}
	ctx, span := t.span(ctx, "store.trace_events", attribute.String("dg.tenant", tenant))
	return ctx, func(err error) {
		if err != nil && !errors.Is(err, errTraceFallback) {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// primaryEntitySystem is payload.primary_entity.system when that is a
// string, read as serveTraceDecoded reads it from the decoded payload (the
// last of duplicate keys wins in both).
func primaryEntitySystem(payload []byte) (string, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(payload, &top) != nil {
		return "", false
	}
	pe, ok := top["primary_entity"]
	if !ok || len(pe) == 0 || pe[0] != '{' {
		return "", false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(pe, &m) != nil {
		return "", false
	}
	sys, ok := m["system"]
	if !ok || len(sys) == 0 || sys[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(sys, &s) != nil {
		return "", false
	}
	return s, true
}

// Member names of a stored event in event.EncodeStoredEvent's order.
const (
	kEventID      = `{"event_id":`
	kTraceID      = `,"trace_id":`
	kTraceSeq     = `,"trace_seq":`
	kEventType    = `,"event_type":`
	kOccurredAt   = `,"occurred_at":`
	kProducerID   = `,"source":{"producer_id":`
	kSystem       = `,"system":`
	kSubsystem    = `,"subsystem":`
	kActorType    = `},"actor":{"actor_type":`
	kActorID      = `,"actor_id":`
	kCorrelation  = `},"correlation_id":`
	kCausation    = `,"causation_event_id":`
	kIdempotency  = `,"idempotency_key":`
	kSchema       = `,"schema_version":`
	kTags         = `,"tags":`
	kPayload      = `,"payload":`
	kTenantID     = `,"tenant_id":`
	kLogSeq       = `,"log_seq":`
	kRecordedAt   = `,"recorded_at":`
	kPayloadHash  = `,"payload_hash":`
	kEventHash    = `,"event_hash":`
	kChainHash    = `,"chain_hash":`
	jsonNullToken = "null"
)

// appendRawEvent writes ev as event.EncodeStoredEvent followed by the
// envelope writer's HTML-escaping compaction would; tenantJSON and
// traceJSON are ev's tenant and trace id already written as JSON strings.
// ok is false when the stored payload or tags text is not in the shape
// the walker handles.
func appendRawEvent(b []byte, ev *store.RawEvent, tenantJSON, traceJSON []byte) ([]byte, bool) {
	str := event.AppendJSONString
	b = append(b, kEventID...)
	b = str(b, ev.EventID)
	b = append(b, kTraceID...)
	b = append(b, traceJSON...)
	b = append(b, kTraceSeq...)
	b = strconv.AppendInt(b, ev.TraceSeq, 10)
	b = append(b, kEventType...)
	b = str(b, ev.EventType)
	b = append(b, kOccurredAt...)
	b = str(b, ev.OccurredAt)
	b = append(b, kProducerID...)
	b = str(b, ev.ProducerID)
	b = append(b, kSystem...)
	b = str(b, ev.SourceSystem)
	b = append(b, kSubsystem...)
	b = appendNullableString(b, ev.SourceSubsystem)
	b = append(b, kActorType...)
	b = str(b, ev.ActorType)
	b = append(b, kActorID...)
	b = str(b, ev.ActorID)
	b = append(b, kCorrelation...)
	b = appendNullableString(b, ev.CorrelationID)
	b = append(b, kCausation...)
	b = appendNullableString(b, ev.CausationEventID)
	b = append(b, kIdempotency...)
	b = str(b, ev.IdempotencyKey)
	b = append(b, kSchema...)
	b = strconv.AppendInt(b, ev.SchemaVersion, 10)
	b = append(b, kTags...)
	var ok bool
	if b, ok = event.AppendStoredTags(b, ev.Tags); !ok {
		return b, false
	}
	b = append(b, kPayload...)
	if b, ok = event.AppendStoredPayload(b, ev.Payload); !ok {
		return b, false
	}
	b = append(b, kTenantID...)
	b = append(b, tenantJSON...)
	b = append(b, kLogSeq...)
	b = strconv.AppendInt(b, ev.LogSeq, 10)
	b = append(b, kRecordedAt...)
	b = appendRecordedAt(b, ev.RecordedAt)
	b = append(b, kPayloadHash...)
	b = str(b, ev.PayloadHash)
	if len(ev.EventHash) > 0 {
		b = append(b, kEventHash...)
		b = str(b, ev.EventHash)
	}
	if len(ev.ChainHash) > 0 {
		b = append(b, kChainHash...)
		b = str(b, ev.ChainHash)
	}
	return append(b, '}'), true
}

func appendNullableString(b, s []byte) []byte {
	if s == nil {
		return append(b, jsonNullToken...)
	}
	return event.AppendJSONString(b, s)
}

// appendRecordedAt writes t (UTC) as a JSON string in
// event.RecordedAtLayout without going through time.Format.
func appendRecordedAt(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, event.RecordedAtLayout)
		return append(b, '"')
	}
	hour, minute, sec := t.Clock()
	us := t.Nanosecond() / 1000
	b = append(b, '"',
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+us/100000), byte('0'+us/10000%10), byte('0'+us/1000%10),
		byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10), 'Z', '"')
	return b
}

// appendRawSummary renders a summary row as TraceSummaryFrom's map is
// encoded (members sorted by name), split around the value of
// primary_entity_system, which the caller fills in from the first event.
func appendRawSummary(b []byte, s *store.RawTraceSummary) (before, after []byte) {
	b = append(b, `{"event_count":`...)
	b = strconv.AppendInt(b, s.EventCount, 10)
	b = append(b, `,"finished_at":`...)
	b = appendNullableString(b, s.FinishedAt)
	b = append(b, `,"last_log_seq":`...)
	b = strconv.AppendInt(b, s.LastLogSeq, 10)
	b = append(b, `,"outcome":`...)
	b = appendNullableString(b, s.Outcome)
	b = append(b, `,"primary_entity_id":`...)
	b = appendNullableString(b, s.PrimaryEntityID)
	b = append(b, `,"primary_entity_system":`...)
	split := len(b)
	b = append(b, `,"primary_entity_type":`...)
	b = appendNullableString(b, s.PrimaryEntityType)
	b = append(b, `,"started_at":`...)
	b = event.AppendJSONString(b, s.StartedAt)
	b = append(b, `,"title":`...)
	b = event.AppendJSONString(b, s.Title)
	b = append(b, `,"trace_id":`...)
	b = event.AppendJSONString(b, s.TraceID)
	b = append(b, `,"workflow":`...)
	b = event.AppendJSONString(b, s.Workflow)
	b = append(b, '}')
	return b[:split], b[split:]
}
