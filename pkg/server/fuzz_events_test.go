package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

// memEventLog serves the API from a MemLog (no database per fuzz input).
type memEventLog struct{ m *store.MemLog }

func (l memEventLog) Append(ctx context.Context, tenant string, env *event.Envelope) (*store.AppendResult, error) {
	return l.m.AppendResult(ctx, tenant, env)
}

func (l memEventLog) TraceEvents(_ context.Context, tenant, traceID string, since int64, limit int) ([]*event.StoredEvent, error) {
	evs, err := l.m.TraceEvents(tenant, traceID)
	if err != nil {
		return nil, err
	}
	var out []*event.StoredEvent
	for _, ev := range evs {
		if ev.TraceSeq > since && (limit <= 0 || len(out) < limit) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// FuzzAppendEventHTTP drives POST /api/v1/events through the real handler
// chain (auth, body limit, decoder, validation, append, envelope) with
// arbitrary bodies and content types. Every answer is a JSON envelope; no
// input gets a 5xx; a 201 names an event that a retry of the same body
// gets again (idempotent, same log_seq).
func FuzzAppendEventHTTP(f *testing.F) {
	valid := `{"event_id":"e0","trace_id":"t","trace_seq":0,"event_type":"TraceStarted","occurred_at":"2026-01-01T00:00:00Z",` +
		`"source":{"producer_id":"p","system":"s"},"actor":{"actor_type":"agent","actor_id":"a"},"idempotency_key":"k0",` +
		`"payload":{"workflow":"w","title":"t","primary_entity":{"entity_type":"x","entity_id":"y"}}}`
	f.Add([]byte(valid), "application/json")
	f.Add([]byte(valid[:40]), "application/json")
	f.Add([]byte(`{"event_id":"\u0000"}`), "application/json; charset=utf-8")
	f.Add([]byte("\xff\xfe"), "application/json")
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`), "application/problem+json")
	f.Add([]byte(`{"trace_seq":1e400}`), "application/json")
	f.Add([]byte(valid), "text/plain")
	if seeds, err := filepath.Glob("../event/testdata/*.json"); err == nil {
		for _, s := range seeds {
			if b, err := os.ReadFile(s); err == nil && len(b) < 4096 {
				f.Add(b, "application/json")
			}
		}
	}
	reg := auth.NewRegistry(auth.DevSet())
	srv := server.New(server.Config{Env: "dev", API: &server.APIConfig{
		Log: memEventLog{store.NewMemLog(event.Options{})}, Accounts: reg, BodyLimit: 64 << 10,
		RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1}}})
	h := srv.Handler()
	post := func(body []byte, ct string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/events", bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+auth.DevWriterToken)
		r.Header.Set("x-tenant-id", "default")
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		rec := post(body, ct)
		if rec.Code >= 500 {
			t.Fatalf("HTTP %d for %q: %s", rec.Code, body, rec.Body)
		}
		var env struct {
			Data *struct {
				Event struct {
					EventID string `json:"event_id"`
					LogSeq  int64  `json:"log_seq"`
				} `json:"event"`
			} `json:"data"`
			Error *struct {
				Code    string         `json:"code"`
				Message string         `json:"message"`
				Details map[string]any `json:"details"`
			} `json:"error"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Fatalf("HTTP %d body is not JSON: %v: %q", rec.Code, err, rec.Body)
		}
		if !utf8.Valid(rec.Body.Bytes()) || env.RequestID == "" {
			t.Fatalf("bad envelope: %q", rec.Body)
		}
		switch {
		case rec.Code == http.StatusCreated:
			if env.Data == nil || env.Data.Event.EventID == "" || env.Data.Event.LogSeq < 1 {
				t.Fatalf("201 without the stored event: %s", rec.Body)
			}
			again := post(body, ct)
			if again.Code != http.StatusCreated {
				t.Fatalf("retry of an accepted body: HTTP %d %s", again.Code, again.Body)
			}
			if !bytes.Contains(again.Body.Bytes(), []byte(`"log_seq":`+itoa(env.Data.Event.LogSeq)+`,`)) {
				t.Fatalf("retry answered another event: %s vs %s", again.Body, rec.Body)
			}
		case rec.Code >= 400:
			if env.Error == nil || env.Error.Code == "" || env.Error.Message == "" || env.Error.Details == nil {
				t.Fatalf("HTTP %d without a complete error envelope: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("unexpected HTTP %d: %s", rec.Code, rec.Body)
		}
	})
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
