package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
				res := g.do(context.Background(), key, func(context.Context) tailResult {
					runs.Add(1)
					started := clock.Add(1)
					time.Sleep(20 * time.Microsecond)
					var r tailResult
					r.tail.LogSeq = started
					r.sum1 = []byte(key)
					return r
				})
				if res.err != nil || res.tail.LogSeq <= arrived || string(res.sum1) != key {
					t.Errorf("arrived at %d, got the run of %q started at %d (err %v)", arrived, res.sum1, res.tail.LogSeq, res.err)
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
	go g.do(context.Background(), "k", func(context.Context) tailResult {
		close(first)
		<-release
		return tailResult{}
	})
	<-first
	// The leader of the next run, whose run fails, and a follower.
	leaderIn := make(chan tailResult, 1)
	go func() {
		leaderIn <- g.do(context.Background(), "k", func(context.Context) tailResult {
			return tailResult{err: context.Canceled}
		})
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
	followerOut := make(chan tailResult, 1)
	go func() {
		followerOut <- g.do(context.Background(), "k", func(context.Context) tailResult {
			var r tailResult
			r.tail.LogSeq = 7
			return r
		})
	}()
	time.Sleep(10 * time.Millisecond) // the follower joins the waiting run (or runs its own: the same answer)
	close(release)
	if r := <-leaderIn; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("leader: %+v", r)
	}
	if r := <-followerOut; r.err != nil || r.tail.LogSeq != 7 {
		t.Fatalf("follower: %+v", r)
	}
}
