package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/decisiongraph/dg/pkg/event"
)

// appendResponse is the data of a 201 from POST /api/v1/events.
type appendResponse struct {
	Event                   json.RawMessage `json:"event"`
	ProjectionSyncTriggered bool            `json:"projection_sync_triggered"`
}

// handleAppendEvent appends one event envelope to the caller's tenant.
// Content type 415, body limit 413, JSON and missing members 400, rules
// 409/422 (events spec codes), storage 503. An idempotent retry returns
// the stored original, also with 201.
func (a *api) handleAppendEvent(w http.ResponseWriter, r *http.Request, p *Principal) {
	body, ok := a.readJSONBody(w, r)
	if !ok {
		return
	}
	env, derr := event.DecodeEnvelope(body)
	if derr != nil {
		a.writeFailure(w, r, derr)
		return
	}
	res, err := a.cfg.Log.Append(r.Context(), p.Tenant, env)
	if err != nil {
		a.writeFailure(w, r, err)
		return
	}
	raw, err := event.EncodeStoredEvent(res.Event)
	if err != nil { // stored, but not renderable: a bug, not a storage failure
		a.s.log.ErrorContext(r.Context(), "encode stored event", append(logAttrs(r), "event_id", res.Event.EventID, "err", err)...)
		a.s.writeError(w, r, http.StatusInternalServerError, "internal_error",
			fmt.Sprintf("event %s was stored (log_seq %d) but could not be rendered: %v", res.Event.EventID, res.Event.LogSeq, err), nil)
		return
	}
	synced := false
	if !res.Replayed && a.cfg.ProjectionSync != nil {
		synced = a.cfg.ProjectionSync(p.Tenant)
	}
	if res.Replayed {
		a.s.log.DebugContext(r.Context(), "idempotent append replayed", append(logAttrs(r), "event_id", res.Event.EventID, "log_seq", res.Event.LogSeq)...)
	}
	a.writeAppended(w, r, raw, synced)
}

// writeAppended writes the 201 success envelope around the stored event's
// JSON without re-encoding it (appends are the hot path).
func (a *api) writeAppended(w http.ResponseWriter, r *http.Request, raw []byte, synced bool) {
	rid, err := json.Marshal(requestID(r.Context()))
	if err != nil {
		a.s.writeData(w, r, http.StatusCreated, appendResponse{Event: raw, ProjectionSyncTriggered: synced})
		return
	}
	buf := make([]byte, 0, len(raw)+len(rid)+96)
	buf = append(buf, `{"data":{"event":`...)
	buf = append(buf, raw...)
	buf = append(buf, `,"projection_sync_triggered":`...)
	buf = strconv.AppendBool(buf, synced)
	buf = append(buf, `},"request_id":`...)
	buf = append(buf, rid...)
	buf = append(buf, '}', '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusCreated)
	if _, err := w.Write(buf); err != nil {
		a.s.log.DebugContext(r.Context(), "write append response", append(logAttrs(r), "err", err)...)
	}
}

// isJSONContentType accepts application/json and application/*+json, with
// any parameters (charset=utf-8).
func isJSONContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// readJSONBody checks the content type (415) and reads the body within the
// limit (413). A declared Content-Length over the limit is refused before
// anything is read; a chunked body is cut off by http.MaxBytesReader one
// byte past the limit, and the connection is closed after the answer.
func (a *api) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); !isJSONContentType(ct) {
		got := ct
		if got == "" {
			got = "none"
		}
		a.s.writeError(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"send the body as JSON with Content-Type: application/json (got "+got+")", map[string]any{"content_type": ct})
		return nil, false
	}
	limit := a.cfg.BodyLimit
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		a.tooLarge(w, r, limit)
		return nil, false
	}
	size := bytes.MinRead
	if r.ContentLength > 0 {
		// ReadFrom wants MinRead bytes free before each read; leave room
		// for the final (EOF) read so the buffer is never regrown.
		size = int(r.ContentLength) + bytes.MinRead
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a.tooLarge(w, r, limit)
			return nil, false
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			a.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "the request body ended early; send the whole JSON document", nil)
			return nil, false
		}
		a.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "could not read the request body: "+err.Error(), nil)
		return nil, false
	}
	return buf.Bytes(), true
}

func (a *api) tooLarge(w http.ResponseWriter, r *http.Request, limit int64) {
	a.s.writeError(w, r, http.StatusRequestEntityTooLarge, "payload_too_large",
		fmt.Sprintf("the request body is larger than the limit of %d bytes (server.body_limit); send one event per request", limit),
		map[string]any{"limit_bytes": limit})
}
