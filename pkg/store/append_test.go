package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// TestBatchSeesEarlierEvents pins the in-batch order: a later event of one
// transaction sees the earlier ones, retries inside the batch replay the
// first, and a failing event fails alone while the rest commit.
func TestBatchSeesEarlierEvents(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, store.Options{})
	ctx := context.Background()
	bad := env("b", 5, event.TypeInputObserved)
	envs := []*event.Envelope{
		env("b", 0, event.TypeTraceStarted),
		env("b", 1, event.TypeInputObserved),
		env("b", 0, event.TypeTraceStarted), // retry inside the batch
		bad,                                 // wrong trace_seq: fails alone
		with(env("b", 1, event.TypeInputObserved), func(e *event.Envelope) { e.Payload["input_id"] = "other" }), // conflict with #1
		env("b", 2, event.TypeEntityObserved),
		env("b", 3, event.TypeTraceFinished),
		env("b", 4, event.TypeActionCommitted), // after finish, same batch
	}
	res, errs, err := store.AppendBatchForTest(ctx, s, "acme", envs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ok", "ok", "ok", "DG_ERR_EVENT_SEQUENCE_INVALID", "DG_ERR_IDEMPOTENCY_CONFLICT", "ok", "ok", "DG_ERR_CONFLICT"}
	for i := range envs {
		if got := codeOf(errs[i]); got != want[i] {
			t.Fatalf("event %d: %s (%v), want %s", i, got, errs[i], want[i])
		}
	}
	if !res[2].Replayed || res[2].Event.LogSeq != res[0].Event.LogSeq || res[0].Replayed {
		t.Fatalf("in-batch retry: first %+v, retry %+v", res[0], res[2])
	}
	if res[6].Event.LogSeq != 4 {
		t.Fatalf("TraceFinished got log_seq %d, want 4 (no gaps from rejected events)", res[6].Event.LogSeq)
	}
	// Retry across batches returns the stored original.
	again, err := s.Append(ctx, "acme", env("b", 1, event.TypeInputObserved))
	if err != nil || !again.Replayed || again.Event.LogSeq != 2 || !again.Event.RecordedAt.Equal(res[1].Event.RecordedAt) {
		t.Fatalf("retry across batches: %+v, %v", again, err)
	}
	rep, err := s.Verify(ctx, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rep)
}

// TestConcurrentRetriesOfOneKey sends one envelope from many goroutines at
// once: exactly one writes, every other gets the same stored event back.
func TestConcurrentRetriesOfOneKey(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, store.Options{MaxWait: 20 * time.Millisecond})
	ctx := context.Background()
	const n = 32
	var wg sync.WaitGroup
	results := make([]*store.AppendResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Append(ctx, "acme", env("r", 0, event.TypeTraceStarted))
		}()
	}
	wg.Wait()
	written := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("append %d: %v", i, errs[i])
		}
		if !results[i].Replayed {
			written++
		}
		if results[i].Event.LogSeq != 1 {
			t.Fatalf("append %d got log_seq %d", i, results[i].Event.LogSeq)
		}
	}
	if written != 1 {
		t.Fatalf("%d appends wrote, want exactly 1", written)
	}
}

// writeTrace appends a full eight-event trace, retrying trace_seq from the
// error details when another writer got there first (one shared trace).
func writeTraces(ctx context.Context, s *store.Store, tenant string, traces []string) error {
	for _, tr := range traces {
		for seq, typ := range traceMix {
			if _, err := s.Append(ctx, tenant, env(tr, int64(seq), typ)); err != nil {
				return fmt.Errorf("trace %s seq %d: %w", tr, seq, err)
			}
		}
	}
	return nil
}

// appendShared makes one writer append count events to a trace shared with
// other writers, taking the next trace_seq from the sequence error.
func appendShared(ctx context.Context, s *store.Store, tenant, tr string, writer, count int) error {
	next := int64(1)
	for i := 0; i < count; {
		e := env(tr, next, event.TypeInputObserved)
		e.EventID = fmt.Sprintf("w%d-%d", writer, i)
		e.IdempotencyKey = e.EventID
		_, err := s.Append(ctx, tenant, e)
		var ee *event.Error
		switch {
		case err == nil:
			i++
			next++
		case asEventError(err, &ee) && ee.Code == event.CodeEventSequenceInvalid:
			exp, ok := ee.Details["expected_trace_seq"].(int64)
			if !ok {
				return fmt.Errorf("sequence error without expected_trace_seq: %v", err)
			}
			next = exp
		default:
			return err
		}
	}
	return nil
}

func asEventError(err error, target **event.Error) bool {
	e, ok := err.(*event.Error)
	if ok {
		*target = e
	}
	return ok
}

func checkContiguous(t *testing.T, s *store.Store, wantEvents int64) {
	t.Helper()
	ctx := context.Background()
	rep, err := s.Verify(ctx, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rep)
	if rep.Events != wantEvents || rep.HeadLogSeq != wantEvents {
		t.Fatalf("verify saw %d events, head %d; want %d", rep.Events, rep.HeadLogSeq, wantEvents)
	}
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	t.Run("64 writers on 64 traces", func(t *testing.T) {
		t.Parallel()
		s, _ := newTestStore(t, store.Options{})
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- writeTraces(ctx, s, fmt.Sprintf("tenant%d", w%4), []string{fmt.Sprintf("w%d", w)})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		checkContiguous(t, s, 64*8)
	})
	t.Run("64 writers on one trace", func(t *testing.T) {
		t.Parallel()
		s, _ := newTestStore(t, store.Options{})
		ctx := context.Background()
		if _, err := s.Append(ctx, "acme", env("shared", 0, event.TypeTraceStarted)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := range 64 {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- appendShared(ctx, s, "acme", "shared", w, 5) }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		evs, err := s.TraceEvents(ctx, "acme", "shared", -1, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range evs {
			if e.TraceSeq != int64(i) {
				t.Fatalf("trace_seq %d at position %d", e.TraceSeq, i)
			}
		}
		if len(evs) != 1+64*5 {
			t.Fatalf("%d events in the trace, want %d", len(evs), 1+64*5)
		}
		checkContiguous(t, s, 1+64*5)
	})
}

// TestTwoStoresOneDatabase runs two appenders (two Stores, two pools) on one
// database, as two dg processes would: the advisory lock keeps log_seq,
// trace_seq and the chain correct.
func TestTwoStoresOneDatabase(t *testing.T) {
	t.Parallel()
	_, dbURL := newTestDB(t)
	ctx := context.Background()
	var stores [2]*store.Store
	for i := range stores {
		s, err := store.Open(ctx, dbURL, store.Options{MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		stores[i] = s
	}
	if _, err := stores[0].Append(ctx, "acme", env("shared", 0, event.TypeTraceStarted)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 32 {
		s := stores[w%2]
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- writeTraces(ctx, s, fmt.Sprintf("t%d", w%3), []string{fmt.Sprintf("own%d", w)})
		}()
		go func() { defer wg.Done(); errs <- appendShared(ctx, s, "acme", "shared", w, 3) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkContiguous(t, stores[1], 1+32*8+32*3)
}

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, store.Options{})
	ctx := context.Background()
	e := env("rt", 0, event.TypeTraceStarted)
	big := "1234567890123456789012345678901234567890"
	e.Payload["big"] = json.Number(big)
	e.Payload["neg"] = json.Number("-98765432109876543210987654321098765432")
	e.Payload["text"] = "Grüße, 世界 🚀 <&> \u2028 \x1b \x00 end"
	e.Payload["nested"] = map[string]any{"z": []any{json.Number("1"), true, nil}, "a": map[string]any{}}
	e.Tags = []string{"ü-tag", "b"}
	res, err := s.Append(ctx, "acme", e)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.TraceEvents(ctx, "acme", "rt", -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := evs[0]
	if n, ok := got.Payload["big"].(json.Number); !ok || string(n) != big {
		t.Fatalf("big integer came back as %T %v", got.Payload["big"], got.Payload["big"])
	}
	want, _ := event.CanonicalJSON(e.Payload)
	have, _ := event.CanonicalJSON(got.Payload)
	if string(want) != string(have) {
		t.Fatalf("payload changed:\nwant %s\nhave %s", want, have)
	}
	if h, _ := event.PayloadHash(got.Payload); h != res.Event.PayloadHash || got.PayloadHash != h {
		t.Fatalf("payload hash %s, stored %s, appended %s", h, got.PayloadHash, res.Event.PayloadHash)
	}
	if strings.Join(got.Tags, "|") != "ü-tag|b" || !got.RecordedAt.Equal(res.Event.RecordedAt) || got.EventHash != res.Event.EventHash {
		t.Fatalf("read back %+v, appended %+v", got, res.Event)
	}
	// A float is rejected before storage.
	f := env("rt", 1, event.TypeInputObserved)
	f.Payload["amount"] = json.Number("1.0")
	if _, err := s.Append(ctx, "acme", f); codeOf(err) != "DG_ERR_SCHEMA_VIOLATION" {
		t.Fatalf("float payload: %v", err)
	}
}

func TestSubscribeSeesHead(t *testing.T) {
	t.Parallel()
	s, pool := newTestStore(t, store.Options{})
	ctx := context.Background()
	ch, cancel := s.Subscribe()
	defer cancel()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+store.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	for seq, typ := range traceMix[:3] {
		if _, err := s.Append(ctx, "acme", env("s", int64(seq), typ)); err != nil {
			t.Fatal(err)
		}
	}
	// Heads are published before Append returns, and coalesce: the channel
	// holds the newest head.
	select {
	case h := <-ch:
		if h != 3 {
			t.Fatalf("subscriber got head %d, want 3", h)
		}
	default:
		t.Fatal("no head delivered by the time Append returned")
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	n, err := conn.Conn().WaitForNotification(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel != store.NotifyChannel || n.Payload != "1" {
		t.Fatalf("first notification %s %q, want %s \"1\"", n.Channel, n.Payload, store.NotifyChannel)
	}
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel still open after cancel")
	}
}

func TestAppendOnlyGuard(t *testing.T) {
	t.Parallel()
	s, pool := newTestStore(t, store.Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, "acme", env("g", 0, event.TypeTraceStarted)); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE dg_event_log SET payload = '{"x":1}'`,
		`UPDATE dg_event_log SET log_seq = 7`,
		`DELETE FROM dg_event_log`,
		`TRUNCATE dg_event_log`,
	} {
		_, err := pool.Exec(ctx, sql)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v, want the append-only guard to refuse it", sql, err)
		}
	}
	// The finished lock holds against a stray INSERT too.
	for seq, typ := range []string{event.TypeInputObserved, event.TypeTraceFinished} {
		if _, err := s.Append(ctx, "acme", env("g", int64(seq+1), typ)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := pool.Exec(ctx, `INSERT INTO dg_event_log SELECT log_seq + 100, tenant_id, 'x', trace_id, trace_seq + 10, 'InputObserved',
		occurred_at, recorded_at, producer_id, source_system, source_subsystem, actor_type, actor_id, correlation_id, causation_event_id,
		'k', schema_version, tags, payload, payload_hash, event_hash, chain_hash FROM dg_event_log WHERE log_seq = 1`)
	if err == nil || !strings.Contains(err.Error(), "trace_finished") {
		t.Fatalf("insert after TraceFinished: %v", err)
	}
	rep, err := s.Verify(ctx, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rep)
}

// TestDatabaseFailureFailsAlone makes the database refuse one event of a
// batch (a trigger the rules know nothing about): that event gets
// DG_ERR_STORAGE, every other event of the batch is stored.
func TestDatabaseFailureFailsAlone(t *testing.T) {
	t.Parallel()
	s, pool := newTestStore(t, store.Options{MaxWait: 50 * time.Millisecond})
	ctx := context.Background()
	for _, q := range []string{
		`CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN IF NEW.event_id LIKE 'poison%' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER test_poison BEFORE INSERT ON dg_event_log FOR EACH ROW EXECUTE FUNCTION test_poison()`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := env(fmt.Sprintf("f%d", i), 0, event.TypeTraceStarted)
			if i == 5 {
				e.EventID = "poison-5"
			}
			_, errs[i] = s.Append(ctx, "acme", e)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		want := "ok"
		if i == 5 {
			want = "DG_ERR_STORAGE"
		}
		if got := codeOf(err); got != want {
			t.Fatalf("event %d: %s (%v), want %s", i, got, err, want)
		}
	}
	checkContiguous(t, s, n-1)
	// The appender keeps working afterwards.
	if _, err := s.Append(ctx, "acme", env("f0", 1, event.TypeInputObserved)); err != nil {
		t.Fatal(err)
	}
}

// TestFastPathNoticesOtherWriters: after its first batch the appender
// applies the rules to its memory of the log and lets the database confirm
// the facts in the same round trip. Another Store appending in between makes
// that memory stale; the check must catch it, and the events must still be
// sequenced and chained exactly.
func TestFastPathNoticesOtherWriters(t *testing.T) {
	t.Parallel()
	_, dbURL := newTestDB(t)
	ctx := context.Background()
	a, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	must := func(s *store.Store, e *event.Envelope, wantSeq int64) {
		t.Helper()
		res, err := s.Append(ctx, "acme", e)
		if err != nil {
			t.Fatal(err)
		}
		if res.Event.LogSeq != wantSeq {
			t.Fatalf("%s got log_seq %d, want %d", e.EventID, res.Event.LogSeq, wantSeq)
		}
	}
	must(a, env("x", 0, event.TypeTraceStarted), 1)  // reads the log, remembers
	must(a, env("x", 1, event.TypeInputObserved), 2) // fast path
	if st := a.Stats(); st.FastCommits != 1 || st.StaleChecks != 0 {
		t.Fatalf("after the second append: %+v, want one fast commit", st)
	}
	must(b, env("y", 0, event.TypeTraceStarted), 3)   // a's memory is now stale
	must(a, env("x", 2, event.TypeEntityObserved), 4) // check fails, log read, appended
	if st := a.Stats(); st.StaleChecks != 1 {
		t.Fatalf("stale memory not caught: %+v", st)
	}
	// A rule answer never comes from memory: a wrong trace_seq is judged on
	// the log (b has moved trace y on).
	must(b, env("y", 1, event.TypeInputObserved), 5)
	if _, err := a.Append(ctx, "acme", env("y", 1, event.TypeInputObserved)); err != nil {
		t.Fatalf("retry of b's event through a: %v", err)
	}
	if _, err := a.Append(ctx, "acme", with(env("y", 1, event.TypeInputObserved), func(e *event.Envelope) { e.IdempotencyKey, e.EventID = "other", "other" })); codeOf(err) != "DG_ERR_EVENT_SEQUENCE_INVALID" {
		t.Fatalf("wrong trace_seq through a: %v", err)
	}
	checkContiguous(t, a, 5)
}
