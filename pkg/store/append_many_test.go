package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// TestAppendManyJudgesEachEventInOrder: one call carries a whole trace plus
// events the rules refuse or replay; each gets its own answer at its index,
// a refused event fails alone, and later events see the earlier ones.
func TestAppendManyJudgesEachEventInOrder(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, store.Options{})
	ctx := context.Background()
	bad := env("m", 2, event.TypeEntityObserved)
	bad.EventType = "" // fails validation, before the log is looked at
	envs := []*event.Envelope{
		env("m", 0, event.TypeTraceStarted),
		env("m", 1, event.TypeInputObserved),
		bad,
		env("m", 3, event.TypePolicyEvaluated), // wrong seq: 2 is next
		env("m", 2, event.TypeEntityObserved),
		env("m", 1, event.TypeInputObserved), // retry of the second
		with(env("m", 3, event.TypePolicyEvaluated), func(e *event.Envelope) { e.EventID = "m-e0" }), // reused event_id
		env("m", 3, event.TypeTraceFinished),
		env("m", 4, event.TypeActionCommitted), // after TraceFinished
	}
	want := []string{"ok", "ok", "DG_ERR_SCHEMA_VIOLATION", "DG_ERR_EVENT_SEQUENCE_INVALID", "ok", "ok", "DG_ERR_CONFLICT", "ok", "DG_ERR_CONFLICT"}
	res, errs := s.AppendMany(ctx, "acme", envs)
	if len(res) != len(envs) || len(errs) != len(envs) {
		t.Fatalf("got %d results and %d errors for %d events", len(res), len(errs), len(envs))
	}
	var seqs []int64
	for i := range envs {
		if got := codeOf(errs[i]); got != want[i] {
			t.Fatalf("event %d: %s (%v), want %s", i, got, errs[i], want[i])
		}
		if errs[i] == nil {
			if res[i] == nil || res[i].Event == nil {
				t.Fatalf("event %d: no result", i)
			}
			if !res[i].Replayed {
				seqs = append(seqs, res[i].Event.LogSeq)
			}
		} else if res[i] != nil {
			t.Fatalf("event %d: both a result and an error", i)
		}
	}
	if !res[5].Replayed || res[5].Event.LogSeq != res[1].Event.LogSeq {
		t.Fatalf("retry: %+v, want the original (log_seq %d) replayed", res[5], res[1].Event.LogSeq)
	}
	for i, seq := range seqs {
		if seq != int64(i+1) {
			t.Fatalf("log_seqs %v, want 1..%d in call order", seqs, len(seqs))
		}
	}
	rep, err := s.Verify(ctx, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rep)
}

// TestAppendManyConcurrent: many callers each appending whole traces in one
// call, interleaved with single Appends, give a contiguous, verified log
// with every trace in order.
func TestAppendManyConcurrent(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, store.Options{})
	ctx := context.Background()
	const callers, traces = 8, 6
	var wg sync.WaitGroup
	errc := make(chan error, callers+1)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tr := range traces {
				id := fmt.Sprintf("c%d-t%d", c, tr)
				envs := make([]*event.Envelope, len(traceMix))
				for seq, typ := range traceMix {
					envs[seq] = env(id, int64(seq), typ)
				}
				res, errs := s.AppendMany(ctx, fmt.Sprintf("tenant%d", c%3), envs)
				for i, err := range errs {
					if err != nil {
						errc <- fmt.Errorf("%s event %d: %w", id, i, err)
						return
					}
					if i > 0 && res[i].Event.LogSeq <= res[i-1].Event.LogSeq {
						errc <- fmt.Errorf("%s: log_seq %d after %d", id, res[i].Event.LogSeq, res[i-1].Event.LogSeq)
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq, typ := range traceMix {
			if _, err := s.Append(ctx, "tenant0", env("single", int64(seq), typ)); err != nil {
				errc <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	n := int64((callers*traces + 1) * len(traceMix))
	checkContiguous(t, s, n)
	rep, err := s.Verify(ctx, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rep)
}

// TestAppendManyCanceled: a canceled context appends nothing that was not
// yet queued and says so for every such event.
func TestAppendManyCanceled(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, store.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errs := s.AppendMany(ctx, "acme", []*event.Envelope{env("c", 0, event.TypeTraceStarted), env("c", 1, event.TypeInputObserved)})
	for i, err := range errs {
		if err == nil {
			t.Fatalf("event %d appended with a canceled context", i)
		}
	}
}

// TestFastPathUnknownKeysHitTheIndexes: a Store that has never seen a trace
// takes its events as new; when the log already holds them (another
// process wrote them) the unique indexes refuse the fast insert, nothing is
// written, and the read path gives the rule's answer.
func TestFastPathUnknownKeysHitTheIndexes(t *testing.T) {
	t.Parallel()
	_, dbURL := newTestDB(t)
	ctx := context.Background()
	a, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for seq := range 3 {
		if _, err := a.Append(ctx, "acme", env("x", int64(seq), traceMix[seq])); err != nil {
			t.Fatal(err)
		}
	}
	b, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// b learns the tenant's chain head (read path), then knows nothing of x.
	if _, err := b.Append(ctx, "acme", env("y", 0, event.TypeTraceStarted)); err != nil {
		t.Fatal(err)
	}
	fast := b.Stats().FastCommits
	// A retry of x's first event: same idempotency key, replayed.
	res, err := b.Append(ctx, "acme", env("x", 0, event.TypeTraceStarted))
	if err != nil || !res.Replayed || res.Event.LogSeq != 1 {
		t.Fatalf("retry through b: %+v, %v; want log_seq 1 replayed", res, err)
	}
	// A new event reusing x's first event_id: conflict.
	_, err = b.Append(ctx, "acme", with(env("z", 0, event.TypeTraceStarted), func(e *event.Envelope) { e.EventID = "x-e0" }))
	if codeOf(err) != "DG_ERR_CONFLICT" {
		t.Fatalf("reused event_id through b: %v", err)
	}
	// A new event restarting x: the retry above made b read x, so this is
	// refused from the log without a fast attempt.
	_, err = b.Append(ctx, "acme", with(env("x", 0, event.TypeTraceStarted), func(e *event.Envelope) { e.EventID, e.IdempotencyKey = "x-again", "x-again" }))
	if codeOf(err) != "DG_ERR_EVENT_SEQUENCE_INVALID" {
		t.Fatalf("restart of x through b: %v", err)
	}
	if st := b.Stats(); st.FastCommits != fast || st.StaleChecks != 2 {
		t.Fatalf("stats %+v: want no fast commit and a failed fast attempt for the first two (fast commits before: %d)", st, fast)
	}
	// b's memory was right all along: its next new event goes the fast way.
	if _, err := b.Append(ctx, "acme", env("y", 1, event.TypeInputObserved)); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.FastCommits != fast+1 {
		t.Fatalf("stats %+v: want one more fast commit", st)
	}
	checkContiguous(t, b, 5)
	rep, err := b.Verify(ctx, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rep)
}

// TestFastPathNoticesTenantReset: a tenant's events and chain head removed
// behind the appender's back (what dg seed --reset does, under the append
// lock) while the log's head stays put: the chain-head check catches it,
// the appender forgets what it remembered and judges on the log again.
func TestFastPathNoticesTenantReset(t *testing.T) {
	t.Parallel()
	s, pool := newTestStore(t, store.Options{})
	ctx := context.Background()
	for seq := range 3 {
		if _, err := s.Append(ctx, "acme", env("x", int64(seq), traceMix[seq])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "beta", env("b", 0, event.TypeTraceStarted)); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE dg_event_log DISABLE TRIGGER dg_event_log_append_only`,
		`DELETE FROM dg_event_log WHERE tenant_id = 'acme'`,
		`ALTER TABLE dg_event_log ENABLE TRIGGER dg_event_log_append_only`,
		`DELETE FROM dg_chain_heads WHERE tenant_id = 'acme'`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The log's head is beta's event, unchanged; x no longer exists.
	_, err = s.Append(ctx, "acme", env("x", 3, traceMix[3]))
	if codeOf(err) != "DG_ERR_EVENT_SEQUENCE_INVALID" {
		t.Fatalf("x continued after the reset: %v", err)
	}
	if st := s.Stats(); st.StaleChecks != 1 {
		t.Fatalf("stats %+v: want the fast attempt's chain-head check to have failed once", st)
	}
	res, err := s.Append(ctx, "acme", env("x", 0, event.TypeTraceStarted))
	if err != nil || res.Replayed || res.Event.LogSeq != 5 {
		t.Fatalf("x restarted: %+v, %v; want a new event at log_seq 5", res, err)
	}
	if res.Event.ChainHash != event.NextChainHash(event.ChainGenesis("acme"), res.Event.EventHash) {
		t.Fatalf("the reset tenant's chain did not restart from its genesis")
	}
	if _, err := s.Append(ctx, "acme", env("x", 1, traceMix[1])); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx, store.VerifyOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if p.Kind != store.ProblemLogSeqGap {
			t.Fatalf("acme after its reset: log_seq %d %s: %s", p.LogSeq, p.Kind, p.Message)
		}
	}
}

// TestFastPathUnderMixedLoad: many callers, two Stores on one database
// (each one's memory goes stale through the other), idempotent retries and
// reused event ids mixed into the stream of new events, so fast batches
// fail and are retried the read-then-write way. Every answer must be what
// the rules give, and the log contiguous and verified.
func TestFastPathUnderMixedLoad(t *testing.T) {
	t.Parallel()
	_, dbURL := newTestDB(t)
	ctx := context.Background()
	var stores []*store.Store
	for range 2 {
		s, err := store.Open(ctx, dbURL, store.Options{MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	const callers, traces = 12, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	appended := 0
	errc := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[c%2]
			tenant := fmt.Sprintf("t%d", c%3)
			for tr := range traces {
				id := fmt.Sprintf("c%d-t%d", c, tr)
				for seq, typ := range traceMix {
					e := env(id, int64(seq), typ)
					res, err := s.Append(ctx, tenant, e)
					if err != nil || res.Replayed {
						errc <- fmt.Errorf("%s/%d: %+v %v", id, seq, res, err)
						return
					}
					mu.Lock()
					appended++
					mu.Unlock()
					switch (seq + c) % 3 {
					case 0: // a retry through the other store
						again, err := stores[(c+1)%2].Append(ctx, tenant, env(id, int64(seq), typ))
						if err != nil || !again.Replayed || again.Event.LogSeq != res.Event.LogSeq {
							errc <- fmt.Errorf("%s/%d retry: %+v %v, want log_seq %d replayed", id, seq, again, err, res.Event.LogSeq)
							return
						}
					case 1: // a new event reusing this event's id
						_, err := s.Append(ctx, tenant, with(env("other-"+id, 0, event.TypeTraceStarted), func(x *event.Envelope) { x.EventID = e.EventID }))
						if codeOf(err) != "DG_ERR_CONFLICT" {
							errc <- fmt.Errorf("%s/%d reused event_id: %v", id, seq, err)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	checkContiguous(t, stores[0], int64(appended))
	t.Logf("stats: %+v, %+v", stores[0].Stats(), stores[1].Stats())
}
