package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/decisiongraph/dg/internal/fixtures"
	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newTestDB gives a test its own fresh, migrated database (internal/pgtest:
// DG_TEST_DATABASE_URL, else a throwaway cluster), dropped when it ends.
func newTestDB(t testing.TB) (pool *pgxpool.Pool, dbURL string) {
	t.Helper()
	dbURL = pgtest.NewURL(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, dbURL
}

// newBenchDB creates a migrated database for benchmarks on the server named
// by DG_BENCH_DATABASE_URL (or DG_TEST_DATABASE_URL), with a pool of
// maxConns, and drops it at the end. Benchmarks pick their server
// explicitly because the figures depend on its durability settings.
func newBenchDB(b *testing.B, maxConns int32) *pgxpool.Pool {
	b.Helper()
	base := os.Getenv("DG_BENCH_DATABASE_URL")
	if base == "" {
		base = os.Getenv("DG_TEST_DATABASE_URL")
	}
	if base == "" {
		b.Fatal("set DG_BENCH_DATABASE_URL (or DG_TEST_DATABASE_URL) to a PostgreSQL superuser URL; use fsync=on and synchronous_commit=on for meaningful figures")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatalf("connect to benchmark server: %v", err)
	}
	defer admin.Close(ctx)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "store_bench_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatalf("create benchmark database: %v", err)
	}
	b.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			b.Errorf("drop benchmark database: %v", err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			b.Errorf("drop benchmark database: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatalf("connect to benchmark database: %v", err)
	}
	b.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool); err != nil {
		b.Fatalf("migrate benchmark database: %v", err)
	}
	return pool
}

func newTestStore(t testing.TB, opts store.Options) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool, _ := newTestDB(t)
	s, err := store.New(context.Background(), pool, opts)
	if err != nil {
		t.Fatalf("store.New: %v", err)
	}
	t.Cleanup(s.Close)
	return s, pool
}

// fixture loads a golden fixture's envelopes.
func fixture(t testing.TB, scenario string) []event.Envelope {
	t.Helper()
	data, err := os.ReadFile(fixtures.Path(t, "golden", scenario, "events.json"))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	envs, err := event.DecodeEvents(data)
	if err != nil {
		t.Fatalf("decode fixture %s: %v", scenario, err)
	}
	return envs
}

var scenarios = []string{"dealdesk", "renewal", "support"}

func strp(s string) *string { return &s }

// env builds a valid envelope of the given type for trace tr at seq.
func env(tr string, seq int64, typ string) *event.Envelope {
	payloads := map[string]map[string]any{
		event.TypeTraceStarted:       {"workflow": "wf", "title": "t", "primary_entity": map[string]any{"entity_type": "account", "entity_id": "a1"}},
		event.TypeInputObserved:      {"input_id": "i1", "source": map[string]any{"system": "crm", "object_type": "o", "object_id": "1"}, "facts": []any{}},
		event.TypeEntityObserved:     {"entity": map[string]any{"entity_type": "account", "entity_id": "a1"}, "role": "primary", "facts": []any{}},
		event.TypePolicyEvaluated:    {"policy": map[string]any{"policy_id": "p", "policy_version": "1"}, "inputs": []any{"i1"}, "decision": "require_exception"},
		event.TypeExceptionRequested: {"exception_id": "x1", "policy": map[string]any{"policy_id": "p", "policy_version": "1"}, "reason": "r"},
		event.TypeApprovalRecorded:   {"approval_id": "ap1", "subject": map[string]any{"subject_type": "exception", "subject_id": "x1"}, "approver": map[string]any{"actor_type": "person", "actor_id": "boss"}, "decision": "approved"},
		event.TypeActionCommitted:    {"action_id": "ac1", "status": "success"},
		event.TypeTraceFinished:      {"outcome": "success"},
	}
	p, ok := payloads[typ]
	if !ok {
		panic("no payload for " + typ)
	}
	return &event.Envelope{
		EventID:        fmt.Sprintf("%s-e%d", tr, seq),
		TraceID:        tr,
		TraceSeq:       seq,
		EventType:      typ,
		OccurredAt:     "2025-12-31T10:00:00Z",
		Source:         event.Source{ProducerID: "prod", System: "agent"},
		Actor:          event.Actor{ActorType: "agent", ActorID: "bot"},
		IdempotencyKey: fmt.Sprintf("%s:%s:%d", typ, tr, seq),
		SchemaVersion:  1,
		Payload:        p,
		Tags:           []string{},
	}
}

// traceMix is the realistic eight-event trace used by tests and benchmarks.
var traceMix = []string{
	event.TypeTraceStarted, event.TypeInputObserved, event.TypeEntityObserved, event.TypePolicyEvaluated,
	event.TypeExceptionRequested, event.TypeApprovalRecorded, event.TypeActionCommitted, event.TypeTraceFinished,
}

func codeOf(err error) string {
	if err == nil {
		return "ok"
	}
	if c, ok := event.CodeOf(err); ok {
		return string(c)
	}
	return "error: " + err.Error()
}

func mustOK(t testing.TB, rep *store.VerifyReport) {
	t.Helper()
	if !rep.OK {
		var b strings.Builder
		for _, p := range rep.Problems {
			fmt.Fprintf(&b, "\n  log_seq %d %s: %s", p.LogSeq, p.Kind, p.Message)
		}
		t.Fatalf("verify found problems:%s", b.String())
	}
}
