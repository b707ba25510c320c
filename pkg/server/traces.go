package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// traceResponse is the data of GET /api/v1/traces/{trace_id}.
type traceResponse struct {
	Events  []json.RawMessage `json:"events"`
	Summary any               `json:"summary"`
}

// handleGetTrace returns a trace's events (trace_seq order) and its
// projected summary. The summary comes from APIConfig.TraceSummaryPG (read
// with the events in one statement) or APIConfig.TraceSummary, which
// answer 409 projection_out_of_date while the trace_summary projection is
// behind and 404 when it has no row; without either the summary is null
// and a trace with no events is 404.
//
// The events are rendered from their stored text (traces_fast.go); the
// decoding path below is the reference the fast path must match byte for
// byte and what answers whenever the fast path cannot.
func (a *api) handleGetTrace(w http.ResponseWriter, r *http.Request, p *Principal) {
	traceID := pathParam(r, "trace_id")
	hook := a.cfg.TraceSummary
	if pg := a.cfg.TraceSummaryPG; pg != nil {
		if a.serveTraceWithSummaryRaw(w, r, p, traceID) {
			return
		}
		hook = TraceSummaryFrom(pg)
	}
	var summary any
	if hook != nil {
		s, err := hook(r.Context(), p.Tenant, traceID)
		if err != nil {
			a.writeFailure(w, r, err)
			return
		}
		summary = s
	}
	if a.serveTraceRaw(w, r, p, traceID, summary) {
		return
	}
	a.serveTraceDecoded(w, r, p, traceID, summary)
}

// serveTraceDecoded answers from decoded events (store.TraceEvents and
// event.EncodeStoredEvent) with the summary already read.
func (a *api) serveTraceDecoded(w http.ResponseWriter, r *http.Request, p *Principal, traceID string, summary any) {
	var out []json.RawMessage
	var evs0 []*event.StoredEvent // the first page (starts with TraceStarted)
	since := int64(-1)
	for {
		evs, err := a.cfg.Log.TraceEvents(r.Context(), p.Tenant, traceID, since, store.MaxQueryLimit)
		if code, ok := event.CodeOf(err); ok && code == event.CodeNotFound {
			if len(out) > 0 {
				break
			}
			a.s.writeError(w, r, http.StatusNotFound, "not_found", "Trace not found: "+traceID, map[string]any{"trace_id": traceID})
			return
		}
		if err != nil {
			a.writeFailure(w, r, err)
			return
		}
		if evs0 == nil {
			evs0 = evs
		}
		for _, ev := range evs {
			raw, err := event.EncodeStoredEvent(ev)
			if err != nil {
				a.s.log.ErrorContext(r.Context(), "encode stored event", append(logAttrs(r), "event_id", ev.EventID, "err", err)...)
				a.s.writeError(w, r, http.StatusInternalServerError, "internal_error",
					fmt.Sprintf("event %s of the trace could not be rendered: %v", ev.EventID, err), nil)
				return
			}
			out = append(out, raw)
		}
		if len(evs) < store.MaxQueryLimit {
			break
		}
		since = evs[len(evs)-1].TraceSeq
	}
	if m, ok := summary.(map[string]any); ok && m["primary_entity_system"] == nil && len(evs0) > 0 {
		// The summary table has no entity system; the TraceStarted event has it.
		if pe, ok := evs0[0].Payload["primary_entity"].(map[string]any); ok {
			if sys, ok := pe["system"].(string); ok {
				m["primary_entity_system"] = sys
			}
		}
	}
	a.s.writeData(w, r, http.StatusOK, traceResponse{Events: out, Summary: summary})
}

// TraceSummaryFrom adapts the projections' trace-summary query to
// APIConfig.TraceSummary, in the TraceSummary shape of HTTP spec §10.2
// (primary_entity_system is filled in from the trace's TraceStarted event).
// The query answers 409 projection_out_of_date while trace_summary is
// behind the tenant's log, so set it only on a node whose projection
// runtime runs.
func TraceSummaryFrom(pg *projection.PG) func(ctx context.Context, tenant, traceID string) (any, error) {
	return func(ctx context.Context, tenant, traceID string) (any, error) {
		s, err := pg.TraceSummary(ctx, tenant, traceID)
		if err != nil {
			if code, ok := event.CodeOf(err); ok && code == event.CodeNotFound {
				return nil, &event.Error{Code: event.CodeNotFound, Message: "Trace not found: " + traceID, Details: map[string]any{"trace_id": traceID}}
			}
			return nil, err
		}
		return map[string]any{
			"trace_id":              s.TraceID,
			"workflow":              s.Workflow,
			"title":                 s.Title,
			"primary_entity_type":   s.PrimaryEntityType,
			"primary_entity_system": nil,
			"primary_entity_id":     s.PrimaryEntityID,
			"started_at":            s.StartedAt,
			"finished_at":           s.FinishedAt,
			"outcome":               s.Outcome,
			"event_count":           s.EventCount,
			"last_log_seq":          s.LastLogSeq,
		}, nil
	}
}
