package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// queryLog appends two tenants' traces interleaved: tenant a gets log_seq
// 1,3,5,... (trace ta), tenant b 2,4,6,... (trace tb), 8 events each.
func queryLog(t *testing.T) *store.Store {
	t.Helper()
	s, _ := newTestStore(t, store.Options{})
	ctx := context.Background()
	for seq, typ := range traceMix {
		for _, tenant := range []string{"a", "b"} {
			if _, err := s.Append(ctx, tenant, env("t"+tenant, int64(seq), typ)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

func seqs(evs []*event.StoredEvent) string {
	out := ""
	for i, e := range evs {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprint(e.LogSeq)
	}
	return out
}

func TestQueries(t *testing.T) {
	t.Parallel()
	s := queryLog(t)
	ctx := context.Background()

	tr, err := s.TraceEvents(ctx, "b", "tb", -1, 0)
	if err != nil || seqs(tr) != "2,4,6,8,10,12,14,16" {
		t.Fatalf("trace events: %s %v", seqs(tr), err)
	}
	tr, err = s.TraceEvents(ctx, "b", "tb", 5, 0)
	if err != nil || seqs(tr) != "14,16" || tr[0].TraceSeq != 6 {
		t.Fatalf("trace events after trace_seq 5: %s %v", seqs(tr), err)
	}
	if _, err := s.TraceEvents(ctx, "a", "tb", -1, 0); codeOf(err) != "DG_ERR_NOT_FOUND" {
		t.Fatalf("trace of another tenant: %v", err)
	}
	if _, err := s.TraceEvents(ctx, "a", "ta", -1, 10001); codeOf(err) != "DG_ERR_INVALID_ARGUMENT" {
		t.Fatalf("limit over 10000: %v", err)
	}

	// Range: since exclusive, until inclusive, paged by cursor.
	p, err := s.ListEvents(ctx, store.ListQuery{Since: 3, Until: 9, Limit: 4})
	if err != nil || seqs(p.Events) != "4,5,6,7" || p.NextCursor != 7 {
		t.Fatalf("page 1: %s next %d %v", seqs(p.Events), p.NextCursor, err)
	}
	p, err = s.ListEvents(ctx, store.ListQuery{Since: p.NextCursor, Until: 9, Limit: 4})
	if err != nil || seqs(p.Events) != "8,9" || p.NextCursor != 0 {
		t.Fatalf("page 2: %s next %d %v", seqs(p.Events), p.NextCursor, err)
	}
	p, err = s.ListEvents(ctx, store.ListQuery{Tenant: "a", EventType: event.TypePolicyEvaluated})
	if err != nil || seqs(p.Events) != "7" {
		t.Fatalf("filtered: %s %v", seqs(p.Events), err)
	}
	for _, q := range []store.ListQuery{{Since: 5, Until: 4}, {Since: -1}, {Limit: 10001}, {Limit: -1}} {
		if _, err := s.ListEvents(ctx, q); codeOf(err) != "DG_ERR_INVALID_ARGUMENT" {
			t.Fatalf("%+v: %v", q, err)
		}
	}

	// Streaming batches: all tenants and one tenant, no gaps, no duplicates.
	var got []*event.StoredEvent
	last, err := s.Stream(ctx, "", 0, 5, func(evs []*event.StoredEvent) error { got = append(got, evs...); return nil })
	if err != nil || last != 16 || len(got) != 16 || got[0].LogSeq != 1 || got[15].LogSeq != 16 {
		t.Fatalf("stream all: last %d, %s, %v", last, seqs(got), err)
	}
	b, err := s.ReadBatch(ctx, "a", 4, 3)
	if err != nil || seqs(b) != "5,7,9" {
		t.Fatalf("batch of tenant a after 4: %s %v", seqs(b), err)
	}
	if _, err := s.ReadBatch(ctx, "", 0, 0); codeOf(err) != "DG_ERR_INVALID_ARGUMENT" {
		t.Fatalf("batch size 0: %v", err)
	}
	last5, err := s.LastEvents(ctx, "b", 2)
	if err != nil || seqs(last5) != "14,16" {
		t.Fatalf("last events: %s %v", seqs(last5), err)
	}

	head, err := s.Head(ctx)
	if err != nil || head != 16 {
		t.Fatalf("head %d %v", head, err)
	}
	tenants, err := s.Tenants(ctx)
	if err != nil || fmt.Sprint(tenants) != "[a b]" {
		t.Fatalf("tenants %v %v", tenants, err)
	}
	heads, err := s.ChainHeads(ctx)
	if err != nil || len(heads) != 2 || heads[1].LogSeq != 16 || heads[1].EventCount != 8 || heads[1].ChainHash != got[15].ChainHash {
		t.Fatalf("chain heads %+v %v", heads, err)
	}
	h, err := s.ChainHead(ctx, "nobody")
	if err != nil || h.ChainHash != event.ChainGenesis("nobody") || h.EventCount != 0 {
		t.Fatalf("chain head of an empty tenant %+v %v", h, err)
	}
}

// TestFollowSeesOtherProcesses follows one Store while another Store (a
// second process, as far as the database can tell) appends: NOTIFY wakes the
// follower, which sees every event once, in order.
func TestFollowSeesOtherProcesses(t *testing.T) {
	t.Parallel()
	_, dbURL := newTestDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	follower, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	writer, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()

	got := make(chan int64, 64)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		// A long poll interval: only NOTIFY can make this test pass in time.
		done <- follower.Follow(fctx, "acme", 0, time.Hour, func(ev *event.StoredEvent) error {
			got <- ev.LogSeq
			return nil
		})
	}()
	for seq, typ := range traceMix {
		if _, err := writer.Append(ctx, "acme", env("fw", int64(seq), typ)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for want := int64(1); want <= 8; want++ {
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("follower saw log_seq %d, want %d", g, want)
			}
		case <-ctx.Done():
			t.Fatalf("follower stopped at log_seq %d", want-1)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Follow returned %v after cancel", err)
	}
}
