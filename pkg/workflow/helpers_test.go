package workflow_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/decisiongraph/dg/pkg/workflow"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// clock is an injectable clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(s string) *clock {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &clock{t: t}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a fresh database with an event log and a workflow service.
type env struct {
	t     testing.TB
	pool  *pgxpool.Pool
	st    *store.Store
	svc   *workflow.Service
	clock *clock
	seqs  map[string]int64
}

const t0 = "2026-03-02T09:00:00Z"

func newEnv(t testing.TB, cfg workflow.Config) *env {
	t.Helper()
	pool := pgtest.New(t)
	return newEnvOn(t, pool, cfg, newClock(t0))
}

func newEnvOn(t testing.TB, pool *pgxpool.Pool, cfg workflow.Config, c *clock) *env {
	t.Helper()
	st, err := store.New(ctxT(t), pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	cfg.Now = c.Now
	return &env{t: t, pool: pool, st: st, svc: workflow.New(pool, st, cfg, workflow.Options{}), clock: c, seqs: map[string]int64{}}
}

// add appends the next event of a trace (trace_seq tracked per tenant+trace).
func (e *env) add(tenant, trace, typ, occurredAt string, payload map[string]any) *event.StoredEvent {
	e.t.Helper()
	k := tenant + "/" + trace
	seq := e.seqs[k]
	e.seqs[k] = seq + 1
	env := &event.Envelope{
		EventID:        fmt.Sprintf("%s-%d", trace, seq),
		TraceID:        trace,
		TraceSeq:       seq,
		EventType:      typ,
		OccurredAt:     occurredAt,
		Source:         event.Source{ProducerID: "agent", System: "deal-desk"},
		Actor:          event.Actor{ActorType: "agent", ActorID: "agent-7"},
		IdempotencyKey: fmt.Sprintf("%s:%d", trace, seq),
		Payload:        payload,
	}
	env.ApplyDefaults()
	res, err := e.st.Append(ctxT(e.t), tenant, env)
	if err != nil {
		e.t.Fatalf("append %s %s/%d: %v", typ, trace, seq, err)
	}
	return res.Event
}

func (e *env) start(tenant, trace, at string) {
	e.add(tenant, trace, event.TypeTraceStarted, at, map[string]any{"workflow": "deal_approval", "title": "Deal " + trace,
		"primary_entity": map[string]any{"entity_type": "opportunity", "entity_id": "opp-" + trace}})
}

func (e *env) exception(tenant, trace, exID, at, reason string) *event.StoredEvent {
	return e.add(tenant, trace, event.TypeExceptionRequested, at, map[string]any{"exception_id": exID,
		"policy": map[string]any{"policy_id": "discount_limit", "policy_version": "v3"}, "reason": reason,
		"evidence": []any{map[string]any{"locator": "crm://opp/" + trace}}})
}

// openException starts a trace and requests one exception at t0.
func (e *env) openException(tenant, trace string) string {
	e.start(tenant, trace, t0)
	e.exception(tenant, trace, "ex-1", t0, "discount above limit")
	return trace + ":exception:ex-1"
}

func (e *env) get(tenant, wid string) *workflow.Detail {
	e.t.Helper()
	d, err := e.svc.Get(ctxT(e.t), tenant, wid)
	if err != nil {
		e.t.Fatalf("get %s: %v", wid, err)
	}
	return d
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(ctxT(e.t), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (e *env) notes(tenant, wid, category string) int {
	return e.count(`SELECT count(*) FROM dg_workflow_notifications WHERE tenant_id = $1 AND workflow_id = $2 AND category = $3`, tenant, wid, category)
}

var admin = &workflow.Caller{AccountID: "ops-admin", Permissions: []string{"*"}}

func act(e *env, tenant, wid string, c *workflow.Caller, req workflow.ActionRequest) (*workflow.ActionResult, error) {
	return e.svc.Act(ctxT(e.t), tenant, wid, c, req)
}

func code(err error) string { return workflow.ErrorCode(err) }
