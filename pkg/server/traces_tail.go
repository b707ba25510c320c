package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/decisiongraph/dg/pkg/store"
)

// Concurrent warm reads of one trace share validation statements, the way
// a group commit shares a flush: while one statement for a trace runs,
// the requests for that trace that arrive meanwhile wait and then share
// the next one, which starts only after the running one has finished, so
// after every one of them arrived. Each response is therefore still
// checked against a snapshot taken after its request came in, exactly as
// when every request runs its own statement (and as strong: an append
// committed before a request arrived is in that snapshot, whichever
// process made it); there are just fewer statements when many clients
// read the same trace at once. Reads of different traces never wait for
// each other.
//
// The tenant mark statements of the trace cache (traces_cache.go) are
// shared the same way, keyed by tenant: there every warm read of the
// tenant, whatever its trace, may share the next statement.

// tailResult is one per-trace validation statement's answer, immutable
// once published to the requests that share it.
type tailResult struct {
	fallback   bool // the projection is behind or has no summary row
	tail       store.RawTraceTail
	mark       store.TenantMark
	sum1, sum2 []byte // the summary, split around primary_entity_system
}

// tailGroup shares per-trace validation statements (keyed by tenant and
// trace), markGroup tenant mark statements (keyed by tenant).
type (
	tailGroup = sharedGroup[tailResult]
	markGroup = sharedGroup[store.TenantMark]
)

type flight[R any] struct {
	done chan struct{}
	res  R
	err  error
}

// slot is one key's running statement and the one that waits for it
// (collecting the requests that arrive meanwhile).
type slot[R any] struct {
	running, next *flight[R]
}

// sharedGroup runs statements on behalf of concurrent callers with the same
// key, each caller getting the answer of a statement that started after
// it called.
type sharedGroup[R any] struct {
	mu   sync.Mutex
	m    map[string]*slot[R]
	runs atomic.Int64 // statements run
}

func (g *sharedGroup[R]) run(ctx context.Context, run func(context.Context) (R, error)) (R, error) {
	g.runs.Add(1)
	return run(ctx)
}

// do returns the answer of a run that started after do was called: its
// own, or one shared with other callers for the same key. A caller that
// shares a run started by another caller and gets an error runs its own
// statement (the error may be the other caller's cancelled context).
func (g *sharedGroup[R]) do(ctx context.Context, key string, run func(context.Context) (R, error)) (R, error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[string]*slot[R]{}
	}
	s := g.m[key]
	if s == nil {
		s = &slot[R]{}
		g.m[key] = s
	}
	if s.running == nil {
		f := &flight[R]{done: make(chan struct{})}
		s.running = f
		g.mu.Unlock()
		return g.finish(key, s, f, run, ctx)
	}
	f, leader := s.next, false
	if f == nil {
		f, leader = &flight[R]{done: make(chan struct{})}, true
		s.next = f
	}
	prev := s.running
	g.mu.Unlock()
	if leader {
		// The running statement is bounded by its caller's deadline; when
		// it finishes, finish makes f the running one.
		<-prev.done
		return g.finish(key, s, f, run, ctx)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
	if f.err != nil {
		return g.run(ctx, run)
	}
	return f.res, nil
}

// finish runs f's statement, publishes its answer and starts the waiting
// run, if any. A statement that panics is published as failed (so that the
// requests sharing it run their own) before the panic goes on.
func (g *sharedGroup[R]) finish(key string, s *slot[R], f *flight[R], run func(context.Context) (R, error), ctx context.Context) (R, error) {
	published := false
	defer func() {
		if !published {
			f.err = errSharedPanic
			g.publish(key, s, f)
		}
	}()
	f.res, f.err = g.run(ctx, run)
	published = true
	g.publish(key, s, f)
	return f.res, f.err
}

var errSharedPanic = errors.New("shared statement: the caller that ran it panicked")

func (g *sharedGroup[R]) publish(key string, s *slot[R], f *flight[R]) {
	g.mu.Lock()
	if s.next != nil {
		s.running, s.next = s.next, nil
	} else {
		s.running = nil
		delete(g.m, key)
	}
	g.mu.Unlock()
	close(f.done)
}
