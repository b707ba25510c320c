package server

import (
	"context"
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

// tailResult is one validation statement's answer, immutable once
// published to the requests that share it.
type tailResult struct {
	err        error
	fallback   bool // the projection is behind or has no summary row
	tail       store.RawTraceTail
	sum1, sum2 []byte // the summary, split around primary_entity_system
}

type tailFlight struct {
	done chan struct{}
	res  tailResult
}

// tailSlot is one trace's running statement and the one that waits for
// it (collecting the requests that arrive meanwhile).
type tailSlot struct {
	running, next *tailFlight
}

type tailGroup struct {
	mu   sync.Mutex
	m    map[string]*tailSlot
	runs atomic.Int64 // statements run
}

func (g *tailGroup) run(ctx context.Context, run func(context.Context) tailResult) tailResult {
	g.runs.Add(1)
	return run(ctx)
}

// do returns the answer of a run that started after do was called: its
// own, or one shared with other callers for the same key. A caller that
// shares a run started by another caller and gets an error runs its own
// statement (the error may be the other caller's cancelled context).
func (g *tailGroup) do(ctx context.Context, key string, run func(context.Context) tailResult) tailResult {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[string]*tailSlot{}
	}
	s := g.m[key]
	if s == nil {
		s = &tailSlot{}
		g.m[key] = s
	}
	if s.running == nil {
		f := &tailFlight{done: make(chan struct{})}
		s.running = f
		g.mu.Unlock()
		return g.finish(key, s, f, g.run(ctx, run))
	}
	f, leader := s.next, false
	if f == nil {
		f, leader = &tailFlight{done: make(chan struct{})}, true
		s.next = f
	}
	prev := s.running
	g.mu.Unlock()
	if leader {
		// The running statement is bounded by its caller's deadline; when
		// it finishes, finish makes f the running one.
		<-prev.done
		return g.finish(key, s, f, g.run(ctx, run))
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return tailResult{err: ctx.Err()}
	}
	if f.res.err != nil {
		return g.run(ctx, run)
	}
	return f.res
}

// finish publishes f's result and starts the waiting run, if any.
func (g *tailGroup) finish(key string, s *tailSlot, f *tailFlight, res tailResult) tailResult {
	f.res = res
	g.mu.Lock()
	if s.next != nil {
		s.running, s.next = s.next, nil
	} else {
		s.running = nil
		delete(g.m, key)
	}
	g.mu.Unlock()
	close(f.done)
	return res
}
