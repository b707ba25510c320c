package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// rawOf copies the strings of a raw event for comparison.
func rawMatches(t *testing.T, raw *store.RawEvent, ev *event.StoredEvent) {
	t.Helper()
	nullable := func(b []byte, s *string) bool {
		if s == nil {
			return b == nil
		}
		return b != nil && string(b) == *s
	}
	canon, err := event.CanonicalJSON(ev.Payload)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := event.CanonicalJSON(ev.Tags)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"log_seq", raw.LogSeq == ev.LogSeq}, {"trace_seq", raw.TraceSeq == ev.TraceSeq},
		{"schema_version", raw.SchemaVersion == ev.SchemaVersion}, {"recorded_at", raw.RecordedAt.Equal(ev.RecordedAt) && raw.RecordedAt.Location() == ev.RecordedAt.Location()},
		{"tenant_id", string(raw.TenantID) == ev.TenantID}, {"event_id", string(raw.EventID) == ev.EventID},
		{"trace_id", string(raw.TraceID) == ev.TraceID}, {"event_type", string(raw.EventType) == ev.EventType},
		{"occurred_at", string(raw.OccurredAt) == ev.OccurredAt}, {"producer_id", string(raw.ProducerID) == ev.Source.ProducerID},
		{"system", string(raw.SourceSystem) == ev.Source.System}, {"subsystem", nullable(raw.SourceSubsystem, ev.Source.Subsystem)},
		{"actor_type", string(raw.ActorType) == ev.Actor.ActorType}, {"actor_id", string(raw.ActorID) == ev.Actor.ActorID},
		{"correlation_id", nullable(raw.CorrelationID, ev.CorrelationID)}, {"causation_event_id", nullable(raw.CausationEventID, ev.CausationEventID)},
		{"idempotency_key", string(raw.IdempotencyKey) == ev.IdempotencyKey},
		{"payload", bytes.Equal(raw.Payload, canon)}, {"tags", bytes.Equal(raw.Tags, tags)},
		{"payload_hash", string(raw.PayloadHash) == ev.PayloadHash}, {"event_hash", string(raw.EventHash) == ev.EventHash},
		{"chain_hash", string(raw.ChainHash) == ev.ChainHash},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("event %s: %s differs between the raw and the decoded read", ev.EventID, c.name)
		}
	}
}

func appendRawTestTrace(t *testing.T, st *store.Store, tenant, traceID string, n int) []*event.StoredEvent {
	t.Helper()
	ctx := context.Background()
	var out []*event.StoredEvent
	for i := 0; i < n; i++ {
		env := store.BenchEnvelope(traceID, i%7)
		env.TraceSeq = int64(i)
		env.EventID = fmt.Sprintf("%s-%d", traceID, i)
		env.IdempotencyKey = fmt.Sprintf("%s:%d", traceID, i)
		if i == 0 {
			env = store.BenchEnvelope(traceID, 0)
			env.EventID, env.IdempotencyKey = traceID+"-0", traceID+":0"
		} else {
			env.EventType = event.TypeInputObserved
			env.Payload = store.BenchEnvelope(traceID, 1).Payload
			env.Payload["note"] = "é <&> \u2028 \x00 " + fmt.Sprint(i)
			env.Payload["big"] = []any{nil, true}
		}
		if i%2 == 1 {
			sub, corr := "sub", "corr-"+traceID
			env.Source.Subsystem, env.CorrelationID, env.CausationEventID = &sub, &corr, &corr
			env.Tags = nil
		}
		res, err := st.Append(ctx, tenant, env)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, res.Event)
	}
	return out
}

func TestReadTraceRaw(t *testing.T) {
	ctx := context.Background()
	pool, _ := newTestDB(t)
	st, err := store.New(ctx, pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := appendRawTestTrace(t, st, "raw-a", "trace-raw-1", 12)
	appendRawTestTrace(t, st, "raw-b", "trace-raw-1", 3) // same id, other tenant

	var got int
	if err := st.ReadTraceRaw(ctx, "raw-a", "trace-raw-1", func(ev *store.RawEvent) error {
		if got >= len(want) {
			t.Fatalf("more events than appended")
		}
		rawMatches(t, ev, want[got])
		got++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Fatalf("%d events, want %d", got, len(want))
	}
	err = st.ReadTraceRaw(ctx, "raw-a", "no-such-trace", func(*store.RawEvent) error { return nil })
	if code, ok := event.CodeOf(err); !ok || code != event.CodeNotFound {
		t.Fatalf("unknown trace: %v", err)
	}
	stop := errors.New("stop")
	if err := st.ReadTraceRaw(ctx, "raw-a", "trace-raw-1", func(*store.RawEvent) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: %v", err)
	}
}

func TestReadTraceRawWithSummary(t *testing.T) {
	ctx := context.Background()
	pool, _ := newTestDB(t)
	st, err := store.New(ctx, pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := appendRawTestTrace(t, st, "raw-a", "trace-raw-2", 5)
	appendRawTestTrace(t, st, "raw-b", "trace-raw-2", 2)
	head := want[len(want)-1].LogSeq

	read := func(tenant, traceID string) (store.RawTraceMeta, []int64, string) {
		t.Helper()
		var m store.RawTraceMeta
		var seqs []int64
		var title string
		metas := 0
		err := st.ReadTraceRawWithSummary(ctx, tenant, traceID, "trace_summary", func(rm *store.RawTraceMeta) error {
			metas++
			m = *rm
			title = string(rm.Summary.Title)
			return nil
		}, func(ev *store.RawEvent) error {
			seqs = append(seqs, ev.TraceSeq)
			rawMatches(t, ev, want[ev.TraceSeq])
			return nil
		})
		if err != nil || metas != 1 {
			t.Fatalf("read: %v (%d meta rows)", err, metas)
		}
		return m, seqs, title
	}
	m, seqs, _ := read("raw-a", "trace-raw-2")
	if m.Head != head || m.Checkpoint != 0 || m.HasSummary || len(seqs) != 5 {
		t.Fatalf("before projection: %+v %v", m, seqs)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO dg_projection_cursors (tenant_id, projection_name, last_log_seq) VALUES ('raw-a', 'trace_summary', $1)`, head); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO dg_trace_summary (tenant_id, trace_id, workflow, title, primary_entity_type, started_at, event_count, last_log_seq)
		VALUES ('raw-a', 'trace-raw-2', 'wf', 'Title é', 'ticket', '2026-01-01T00:00:00Z', 5, $1)`, head); err != nil {
		t.Fatal(err)
	}
	m, seqs, title := read("raw-a", "trace-raw-2")
	s := m.Summary
	if m.Checkpoint != head || !m.HasSummary || title != "Title é" || string(s.PrimaryEntityType) != "ticket" || s.PrimaryEntityID != nil ||
		s.Outcome != nil || s.FinishedAt != nil || s.EventCount != 5 || s.LastLogSeq != head || len(seqs) != 5 {
		t.Fatalf("with summary: %+v %v", m, seqs)
	}
	// Unknown trace: the meta row alone.
	m, seqs, _ = read("raw-a", "no-such-trace")
	if m.HasSummary || len(seqs) != 0 || m.Head != head {
		t.Fatalf("unknown trace: %+v %v", m, seqs)
	}
	// A tenant without events: head 0.
	m, _, _ = read("raw-c", "trace-raw-2")
	if m.Head != 0 || m.Checkpoint != 0 {
		t.Fatalf("empty tenant: %+v", m)
	}
	// meta's error stops the read.
	stop := errors.New("stop")
	err = st.ReadTraceRawWithSummary(ctx, "raw-a", "trace-raw-2", "trace_summary", func(*store.RawTraceMeta) error { return stop },
		func(*store.RawEvent) error { t.Fatal("event after a failed meta"); return nil })
	if !errors.Is(err, stop) {
		t.Fatalf("meta error: %v", err)
	}
}

func TestReadTraceTail(t *testing.T) {
	ctx := context.Background()
	pool, _ := newTestDB(t)
	st, err := store.New(ctx, pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := appendRawTestTrace(t, st, "raw-a", "trace-raw-3", 4)
	appendRawTestTrace(t, st, "raw-a", "trace-raw-4", 2) // a later event of the tenant
	last := want[len(want)-1]
	read := func(traceID string) (store.RawTraceMeta, store.RawTraceTail, string) {
		t.Helper()
		var m store.RawTraceMeta
		var tail store.RawTraceTail
		var chain string
		if err := st.ReadTraceTail(ctx, "raw-a", traceID, "trace_summary", func(rm *store.RawTraceMeta, rt *store.RawTraceTail) error {
			m, tail, chain = *rm, *rt, string(rt.ChainHash)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return m, tail, chain
	}
	m, tail, chain := read("trace-raw-3")
	if !tail.Exists || tail.TraceSeq != last.TraceSeq || tail.LogSeq != last.LogSeq || tail.RecordedAt != last.RecordedAt.UnixMicro() ||
		chain != last.ChainHash || m.Head != last.LogSeq+2 || m.HasSummary {
		t.Fatalf("tail %+v (chain %s), meta %+v; want the event %+v", tail, chain, m, last)
	}
	if _, tail, _ := read("no-such-trace"); tail.Exists {
		t.Fatalf("unknown trace: %+v", tail)
	}

	// The tenant's mark: the same from both statements, naming the
	// tenant's last event; no cursor row yet.
	mark := func() store.TenantMark {
		t.Helper()
		mk, err := st.ReadTenantMark(ctx, "raw-a", "trace_summary")
		if err != nil {
			t.Fatal(err)
		}
		return mk
	}
	head := appendRawTestTrace(t, st, "raw-a", "trace-raw-5", 1)[0]
	m1 := mark()
	mt, _, _ := read("trace-raw-3")
	if m1 != mt.Mark || m1.Head != head.LogSeq || m1.HeadRecordedAt != head.RecordedAt.UnixMicro() || m1.HeadChain != head.ChainHash ||
		m1.Checkpoint != 0 || m1.CheckpointAt != 0 || m1.CheckpointXmin != 0 {
		t.Fatalf("mark %+v, tail's %+v; want the head %+v and no cursor", m1, mt.Mark, head)
	}
	if m, err := st.ReadTenantMark(ctx, "no-such-tenant", "trace_summary"); err != nil || m != (store.TenantMark{}) {
		t.Fatalf("unknown tenant: %+v, %v", m, err)
	}
	// A cursor row written twice at the same checkpoint: the mark changes
	// each time (the row's transaction), and the log's part stays.
	setCursor := func() store.TenantMark {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO dg_projection_cursors (tenant_id, projection_name, last_log_seq, updated_at)
			VALUES ('raw-a', 'trace_summary', $1, now()) ON CONFLICT (tenant_id, projection_name)
			DO UPDATE SET last_log_seq = EXCLUDED.last_log_seq, updated_at = now()`, head.LogSeq); err != nil {
			t.Fatal(err)
		}
		return mark()
	}
	m2 := setCursor()
	m3 := setCursor()
	if m2.Checkpoint != head.LogSeq || m2.CheckpointAt == 0 || m2.CheckpointXmin == 0 || m2 == m3 || m2.CheckpointXmin == m3.CheckpointXmin ||
		m2.Head != m1.Head || m2.HeadChain != m1.HeadChain || m3.Head != m1.Head {
		t.Fatalf("marks around two cursor writes: %+v, %+v (before %+v)", m2, m3, m1)
	}
	if mt, _, _ := read("trace-raw-3"); mt.Mark != m3 {
		t.Fatalf("tail's mark %+v, want %+v", mt.Mark, m3)
	}
	// Another tenant's append leaves it; this tenant's changes it.
	appendRawTestTrace(t, st, "raw-b", "trace-raw-6", 1)
	if m := mark(); m != m3 {
		t.Fatalf("after another tenant's append: %+v, want %+v", m, m3)
	}
	next := appendRawTestTrace(t, st, "raw-a", "trace-raw-7", 1)[0]
	if m := mark(); m.Head != next.LogSeq || m.HeadChain != next.ChainHash || m.Checkpoint != m3.Checkpoint || m.CheckpointXmin != m3.CheckpointXmin {
		t.Fatalf("after an append: %+v, want the head %+v", m, next)
	}
}

// BenchmarkReadTraceTail is the trace cache's per-request validation
// statement alone (32 concurrent callers), next to a trivial statement on
// the same pool, to tell the statement's own cost from the round trip's:
//
//	go test ./pkg/store -run '^$' -bench 'ReadTraceTail|ReadTenantMark|SelectOne' -benchtime 20000x
func BenchmarkReadTraceTail(b *testing.B) { benchTail(b, "tail") }

// BenchmarkReadTenantMark is the trace cache's tenant mark statement alone
// (what confirms a cached trace while the tenant is unchanged).
func BenchmarkReadTenantMark(b *testing.B) { benchTail(b, "mark") }

// BenchmarkSelectOne is BenchmarkReadTraceTail's baseline: SELECT 1.
func BenchmarkSelectOne(b *testing.B) { benchTail(b, "one") }

func benchTail(b *testing.B, mode string) {
	ctx := context.Background()
	pool, _ := newTestDB(b)
	st, err := store.New(ctx, pool, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < 100; i++ {
		env := store.BenchEnvelope("bench-tail-trace", i%7)
		env.TraceSeq = int64(i)
		env.EventID = fmt.Sprintf("bench-tail-%d", i)
		env.IdempotencyKey = fmt.Sprintf("bench-tail:%d", i)
		if i == 0 {
			env = store.BenchEnvelope("bench-tail-trace", 0)
			env.EventID, env.IdempotencyKey = "bench-tail-0", "bench-tail:0"
		} else {
			env.EventType = event.TypeInputObserved
			env.Payload = store.BenchEnvelope("bench-tail-trace", 1).Payload
		}
		if _, err := st.Append(ctx, "bench", env); err != nil {
			b.Fatal(err)
		}
	}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var err error
			switch mode {
			case "one":
				var n int
				err = st.Pool().QueryRow(ctx, "SELECT 1").Scan(&n)
			case "mark":
				var m store.TenantMark
				if m, err = st.ReadTenantMark(ctx, "bench", "trace_summary"); err == nil && m.Head != 100 {
					err = fmt.Errorf("mark %+v", m)
				}
			default:
				err = st.ReadTraceTail(ctx, "bench", "bench-tail-trace", "trace_summary", func(_ *store.RawTraceMeta, rt *store.RawTraceTail) error {
					if !rt.Exists {
						return errors.New("no tail")
					}
					return nil
				})
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if mode == "tail" {
		rows, err := st.Pool().Query(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%LATERAL%'`)
		if err == nil {
			for rows.Next() {
				var g, c int64
				if rows.Scan(&g, &c) == nil {
					b.Logf("one connection's prepared statement: %d generic plans, %d custom plans", g, c)
				}
			}
			rows.Close()
		}
	}
}
