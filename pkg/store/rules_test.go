package store_test

import (
	"context"
	"testing"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

type appender interface {
	AppendResult(ctx context.Context, tenant string, env *event.Envelope) (*store.AppendResult, error)
}

// logs returns both implementations of the append rules, so every rule
// test runs against the Postgres store and MemLog alike.
func logs(t *testing.T) map[string]func(t *testing.T) appender {
	return map[string]func(t *testing.T) appender{
		"postgres": func(t *testing.T) appender { s, _ := newTestStore(t, store.Options{}); return s },
		"memory":   func(t *testing.T) appender { return store.NewMemLog(event.Options{}) },
	}
}

type step struct {
	name   string
	tenant string
	env    *event.Envelope
	code   string // "ok" or an error code
	replay bool
	logSeq int64 // expected log_seq when ok (0: don't check)
}

func with(e *event.Envelope, f func(*event.Envelope)) *event.Envelope { f(e); return e }

func ruleSteps() []step {
	return []step{
		{name: "first event must be TraceStarted", env: env("t1", 0, event.TypeInputObserved), code: "DG_ERR_EVENT_SEQUENCE_INVALID"},
		{name: "new trace must start at 0", env: env("t1", 1, event.TypeTraceStarted), code: "DG_ERR_EVENT_SEQUENCE_INVALID"},
		{name: "start", env: env("t1", 0, event.TypeTraceStarted), code: "ok", logSeq: 1},
		{name: "gap in trace_seq", env: env("t1", 2, event.TypeInputObserved), code: "DG_ERR_EVENT_SEQUENCE_INVALID"},
		{name: "TraceStarted again at 1", env: with(env("t1", 1, event.TypeTraceStarted), func(e *event.Envelope) { e.IdempotencyKey = "restart" }), code: "DG_ERR_EVENT_SEQUENCE_INVALID"},
		{name: "validation fails before idempotency reuse", env: with(env("t1", 0, event.TypeTraceStarted), func(e *event.Envelope) { e.Payload = map[string]any{"workflow": "wf"} }), code: "DG_ERR_SCHEMA_VIOLATION"},
		{name: "PII guard", env: with(env("t1", 1, event.TypeInputObserved), func(e *event.Envelope) { e.Tags = []string{"task-1"} }), code: "DG_ERR_PII_POLICY_VIOLATION"},
		{name: "retry returns original", env: env("t1", 0, event.TypeTraceStarted), code: "ok", replay: true, logSeq: 1},
		{name: "retry with later trace_seq, new event_id and occurred_at is still a retry", env: with(env("t1", 0, event.TypeTraceStarted), func(e *event.Envelope) {
			e.TraceSeq, e.EventID, e.OccurredAt = 5, "other-id", "2026-01-01T00:00:00Z"
		}), code: "ok", replay: true, logSeq: 1},
		{name: "same key, different payload", env: with(env("t1", 0, event.TypeTraceStarted), func(e *event.Envelope) { e.Payload["title"] = "changed" }), code: "DG_ERR_IDEMPOTENCY_CONFLICT"},
		{name: "same key, different actor", env: with(env("t1", 0, event.TypeTraceStarted), func(e *event.Envelope) { e.Actor.ActorID = "someone" }), code: "DG_ERR_IDEMPOTENCY_CONFLICT"},
		{name: "same key, different tags", env: with(env("t1", 0, event.TypeTraceStarted), func(e *event.Envelope) { e.Tags = []string{"x"} }), code: "DG_ERR_IDEMPOTENCY_CONFLICT"},
		{name: "same key, subsystem null vs empty", env: with(env("t1", 0, event.TypeTraceStarted), func(e *event.Envelope) { e.Source.Subsystem = strp("") }), code: "DG_ERR_IDEMPOTENCY_CONFLICT"},
		{name: "same key, other producer is a new event", env: with(env("t1", 1, event.TypeInputObserved), func(e *event.Envelope) {
			e.IdempotencyKey = "TraceStarted:t1:0"
			e.Source.ProducerID = "other"
		}), code: "ok", logSeq: 2},
		{name: "duplicate event_id under a new key", env: with(env("t1", 2, event.TypeEntityObserved), func(e *event.Envelope) { e.EventID = "t1-e0" }), code: "DG_ERR_CONFLICT"},
		{name: "same event_id in another tenant is fine", tenant: "other", env: env("t1", 0, event.TypeTraceStarted), code: "ok", logSeq: 3},
		{name: "idempotency is per tenant", tenant: "other", env: env("t1", 0, event.TypeTraceStarted), code: "ok", replay: true, logSeq: 3},
		{name: "seq 2", env: env("t1", 2, event.TypeEntityObserved), code: "ok", logSeq: 4},
		{name: "finish", env: env("t1", 3, event.TypeTraceFinished), code: "ok", logSeq: 5},
		{name: "append after finish", env: env("t1", 4, event.TypeActionCommitted), code: "DG_ERR_CONFLICT"},
		{name: "second TraceFinished", env: with(env("t1", 4, event.TypeTraceFinished), func(e *event.Envelope) { e.IdempotencyKey = "finish-again" }), code: "DG_ERR_CONFLICT"},
		{name: "retry of TraceFinished after finish returns original", env: env("t1", 3, event.TypeTraceFinished), code: "ok", replay: true, logSeq: 5},
		{name: "retry of an earlier event of a finished trace", env: env("t1", 2, event.TypeEntityObserved), code: "ok", replay: true, logSeq: 4},
		{name: "blank tenant", tenant: " ", env: env("t9", 0, event.TypeTraceStarted), code: "DG_ERR_INVALID_ARGUMENT"},
		{name: "NUL in a text column", env: with(env("t9", 0, event.TypeTraceStarted), func(e *event.Envelope) { e.CorrelationID = strp("a\x00b") }), code: "DG_ERR_INVALID_ARGUMENT"},
		{name: "NUL inside the payload is stored", env: with(env("t9", 0, event.TypeTraceStarted), func(e *event.Envelope) { e.Payload["note"] = "a\x00b" }), code: "ok", logSeq: 6},
	}
}

func TestAppendRules(t *testing.T) {
	t.Parallel()
	for name, open := range logs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := open(t)
			ctx := context.Background()
			for _, st := range ruleSteps() {
				tenant := st.tenant
				if tenant == "" {
					tenant = "acme"
				}
				res, err := l.AppendResult(ctx, tenant, st.env)
				if got := codeOf(err); got != st.code {
					t.Fatalf("%s: got %s (%v), want %s", st.name, got, err, st.code)
				}
				if err != nil {
					continue
				}
				if res.Replayed != st.replay {
					t.Fatalf("%s: replayed=%v, want %v", st.name, res.Replayed, st.replay)
				}
				if st.logSeq != 0 && res.Event.LogSeq != st.logSeq {
					t.Fatalf("%s: log_seq %d, want %d", st.name, res.Event.LogSeq, st.logSeq)
				}
			}
		})
	}
}

// TestMemLogMatchesPostgres appends every golden fixture to both logs and
// requires identical stored events (sequences, hashes, chain).
func TestMemLogMatchesPostgres(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, store.Options{})
	mem := store.NewMemLog(event.Options{})
	ctx := context.Background()
	for _, sc := range scenarios {
		for i, e := range fixture(t, sc) {
			e1, e2 := e, e
			pr, err := s.Append(ctx, sc, &e1)
			if err != nil {
				t.Fatalf("%s event %d: postgres: %v", sc, i, err)
			}
			mr, err := mem.AppendResult(ctx, sc, &e2)
			if err != nil {
				t.Fatalf("%s event %d: memory: %v", sc, i, err)
			}
			p, m := pr.Event, mr.Event
			if p.LogSeq != m.LogSeq || p.TraceSeq != int64(i) || p.PayloadHash != m.PayloadHash || p.EventHash != m.EventHash || p.ChainHash != m.ChainHash {
				t.Fatalf("%s event %d differs:\npostgres %d %s %s %s\nmemory   %d %s %s %s", sc, i,
					p.LogSeq, p.PayloadHash, p.EventHash, p.ChainHash, m.LogSeq, m.PayloadHash, m.EventHash, m.ChainHash)
			}
		}
	}
	if got := mem.Head(); got != 26 {
		t.Fatalf("memory head %d, want 26", got)
	}
	heads, err := s.ChainHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range heads {
		if mh := mem.ChainHead(h.TenantID); mh != h {
			t.Fatalf("chain head of %s: postgres %+v, memory %+v", h.TenantID, h, mh)
		}
	}
	rep, err := s.Verify(ctx, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rep)
	if rep.Events != 26 || len(rep.Tenants) != 3 {
		t.Fatalf("verify checked %d events of %d tenants, want 26 of 3", rep.Events, len(rep.Tenants))
	}
}
