package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/decisiongraph/dg/internal/fixtures"
	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/client"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	writerToken = "writer-e2e-token"
	readerToken = "reader-e2e-token"
	tenant      = "tenant-e2e"
)

// startNode serves the API over real HTTP on a fresh migrated database.
func startNode(tb testing.TB, limits server.RateLimits) (*httptest.Server, *store.Store) {
	tb.Helper()
	return startNodeWith(tb, limits, store.Options{})
}

func startNodeWith(tb testing.TB, limits server.RateLimits, opts store.Options) (*httptest.Server, *store.Store) {
	tb.Helper()
	st, err := store.New(context.Background(), pgtest.New(tb), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	reg, err := auth.Load(auth.Config{LookupEnv: func(k string) (string, bool) {
		if k == auth.EnvAccountsJSON {
			return `{"operator_console_account_id": "writer-e2e", "service_accounts": [
				{"account_id": "writer-e2e", "roles": ["writer"], "tenant_ids": ["` + tenant + `"], "tokens": ["` + writerToken + `"]},
				{"account_id": "reader-e2e", "roles": ["reader"], "tenant_ids": ["` + tenant + `"],
				 "token_sha256": ["` + auth.HashToken(readerToken).Hex() + `"]}]}`, true
		}
		return "", false
	}})
	if err != nil {
		tb.Fatal(err)
	}
	srv := server.New(server.Config{Env: "dev",
		HealthDetails: map[string]func(context.Context) (any, error){"auth": func(context.Context) (any, error) { return reg.Health(), nil }},
		API:           &server.APIConfig{Log: st, Accounts: reg, RateLimits: limits}})
	ts := httptest.NewServer(srv.Handler())
	tb.Cleanup(ts.Close)
	return ts, st
}

// goldenDir is ../shared/fixtures/golden beside the repository (skips when absent).
func goldenDir(t *testing.T) string { return fixtures.Path(t, "golden") }

// TestGoldenFixturesOverHTTP appends the three golden fixtures through the
// client against a real server and reads every trace back.
func TestGoldenFixturesOverHTTP(t *testing.T) {
	g := goldenDir(t)
	ts, _ := startNode(t, server.RateLimits{Read: -1, Write: -1})
	ctx := context.Background()
	w := client.New(ts.URL, writerToken, tenant)
	r := client.New(ts.URL, readerToken, tenant)

	h, err := r.Healthz(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a := h["auth"].(map[string]any); a["bootstrap_source"] != "env_json" || a["configured_accounts"] != float64(2) {
		t.Fatalf("healthz auth: %v", a)
	}

	dirs, _ := filepath.Glob(filepath.Join(g, "*", "events.json"))
	if len(dirs) != 3 {
		t.Fatalf("want 3 golden fixtures, found %d in %s", len(dirs), g)
	}
	var lastSeq int64
	for _, path := range dirs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		envs, err := event.DecodeEvents(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := filepath.Base(filepath.Dir(path))
		stored := map[string]int64{}
		for i := range envs {
			res, err := w.AppendEvent(ctx, &envs[i])
			if err != nil {
				t.Fatalf("%s event %d: %v", name, i, err)
			}
			if res.Event.LogSeq <= lastSeq || res.Event.TenantID != tenant || res.RequestID == "" {
				t.Fatalf("%s event %d: log_seq %d after %d, tenant %q", name, i, res.Event.LogSeq, lastSeq, res.Event.TenantID)
			}
			lastSeq = res.Event.LogSeq
			stored[res.Event.EventID] = res.Event.LogSeq
		}
		// An idempotent retry of the whole fixture returns the originals.
		for i := range envs {
			res, err := w.AppendEvent(ctx, &envs[i])
			if err != nil || res.Event.LogSeq != stored[envs[i].EventID] {
				t.Fatalf("%s retry %d: %v log_seq %v", name, i, err, res)
			}
		}
		tr, err := r.GetTrace(ctx, envs[0].TraceID)
		if err != nil {
			t.Fatalf("%s: get trace: %v", name, err)
		}
		if len(tr.Events) != len(envs) {
			t.Fatalf("%s: read %d events, appended %d", name, len(tr.Events), len(envs))
		}
		for i, ev := range tr.Events {
			want := envs[i]
			hash, verr := event.ValidateAndHash(&want, event.Options{})
			if verr != nil {
				t.Fatal(verr)
			}
			if ev.EventID != want.EventID || ev.TraceSeq != int64(i) || ev.EventType != want.EventType ||
				ev.OccurredAt != want.OccurredAt || ev.PayloadHash != hash ||
				ev.LogSeq != stored[want.EventID] || ev.TenantID != tenant {
				t.Fatalf("%s event %d differs: got %+v", name, i, ev)
			}
		}
	}
}

func TestClientTypedErrors(t *testing.T) {
	ts, _ := startNode(t, server.RateLimits{Read: -1, Write: -1})
	ctx := context.Background()
	r := client.New(ts.URL, readerToken, tenant)
	env := &event.Envelope{EventID: "e1", TraceID: "t1", EventType: "TraceStarted", OccurredAt: "2026-01-01T00:00:00Z",
		Source: event.Source{ProducerID: "p", System: "s"}, Actor: event.Actor{ActorType: "agent", ActorID: "a"},
		IdempotencyKey: "k1", SchemaVersion: 1, Payload: map[string]any{"workflow": "w", "title": "t",
			"primary_entity": map[string]any{"entity_type": "x", "entity_id": "1", "system": "s"}}}
	_, err := r.AppendEvent(ctx, env)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || ce.Code != "forbidden" || ce.RequestID == "" {
		t.Fatalf("reader append: %#v", err)
	}
	_, err = r.GetTrace(ctx, "no:such/trace")
	if client.CodeOf(err) != "not_found" || !errors.As(err, &ce) || ce.Status != 404 || ce.Details["trace_id"] != "no:such/trace" {
		t.Fatalf("missing trace: %v", err)
	}
	bad := client.New(ts.URL, "wrong", tenant)
	if _, err := bad.GetTrace(ctx, "x"); client.CodeOf(err) != "unauthorized" {
		t.Fatalf("bad token: %v", err)
	}
	w := client.New(ts.URL, writerToken, tenant)
	env.TraceSeq = 3
	if _, err := w.AppendEvent(ctx, env); client.CodeOf(err) != "event_sequence_invalid" {
		t.Fatalf("sequence: %v", err)
	}
	if got := client.EscapeSegment("a:b/c d"); got != "a%3Ab%2Fc%20d" {
		t.Fatalf("EscapeSegment = %q", got)
	}
}
