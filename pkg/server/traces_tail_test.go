package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/store"
)

// Every caller of tailGroup.do gets the answer of a run that started
// after it called, whether it ran the statement or shared one.
func TestTailGroupRunsStartAfterArrival(t *testing.T) {
	var g tailGroup
	var clock, runs atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < 32; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				key := []string{"t\x00a", "t\x00b"}[(c+i)%2]
				arrived := clock.Add(1)
				res, err := g.do(context.Background(), key, func(context.Context) (tailResult, error) {
					runs.Add(1)
					started := clock.Add(1)
					time.Sleep(20 * time.Microsecond)
					var r tailResult
					r.tail.LogSeq = started
					r.sum1 = []byte(key)
					return r, nil
				})
				if err != nil || res.tail.LogSeq <= arrived || string(res.sum1) != key {
					t.Errorf("arrived at %d, got the run of %q started at %d (err %v)", arrived, res.sum1, res.tail.LogSeq, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d calls, %d statements", 32*200, runs.Load())
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.m) != 0 {
		t.Fatalf("idle slots left: %d", len(g.m))
	}
}

// A caller that shared a run which failed (for instance because the
// caller who ran it went away) runs its own.
func TestTailGroupSharedErrorRetries(t *testing.T) {
	var g tailGroup
	release := make(chan struct{})
	first := make(chan struct{})
	go g.do(context.Background(), "k", func(context.Context) (tailResult, error) {
		close(first)
		<-release
		return tailResult{}, nil
	})
	<-first
	// The leader of the next run, whose run fails, and a follower.
	leaderIn := make(chan error, 1)
	go func() {
		_, err := g.do(context.Background(), "k", func(context.Context) (tailResult, error) {
			return tailResult{}, context.Canceled
		})
		leaderIn <- err
	}()
	for {
		g.mu.Lock()
		ready := g.m["k"].next != nil
		g.mu.Unlock()
		if ready {
			break
		}
		time.Sleep(time.Millisecond)
	}
	type out struct {
		res tailResult
		err error
	}
	followerOut := make(chan out, 1)
	go func() {
		res, err := g.do(context.Background(), "k", func(context.Context) (tailResult, error) {
			var r tailResult
			r.tail.LogSeq = 7
			return r, nil
		})
		followerOut <- out{res, err}
	}()
	time.Sleep(10 * time.Millisecond) // the follower joins the waiting run (or runs its own: the same answer)
	close(release)
	if err := <-leaderIn; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v", err)
	}
	if r := <-followerOut; r.err != nil || r.res.tail.LogSeq != 7 {
		t.Fatalf("follower: %+v", r)
	}
}

// A caller whose statement panics publishes it as failed, so that the
// callers waiting to share it run their own instead of waiting for ever.
func TestSharedGroupPanicReleasesWaiters(t *testing.T) {
	var g markGroup
	release := make(chan struct{})
	started := make(chan struct{})
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		g.do(context.Background(), "tenant", func(context.Context) (store.TenantMark, error) {
			close(started)
			<-release
			panic("boom")
		})
	}()
	<-started
	// Two callers queue behind the running statement: the leader of the
	// next run and one that shares it.
	got := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			m, err := g.do(context.Background(), "tenant", func(context.Context) (store.TenantMark, error) {
				return store.TenantMark{Head: 9}, nil
			})
			if err == nil && m.Head != 9 {
				err = fmt.Errorf("mark %+v", m)
			}
			got <- err
		}()
	}
	time.Sleep(10 * time.Millisecond)
	close(release)
	if p := <-panicked; p != "boom" {
		t.Fatalf("the panic did not go on: %v", p)
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a caller waits for ever behind a statement that panicked")
		}
	}
}
