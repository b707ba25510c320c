package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Pipelined fast path. While one fast batch commits, the appender gathers
// the next; once that one is as large as the batch in flight (or the batch
// in flight has landed) it is ruled on the memory, which already includes
// the batch in flight, and sent on another connection. Its append lock
// waits in PostgreSQL until the batch before it commits, so the server goes
// from one batch to the next without waiting for a round trip and the
// appender's own work, and its check (dg_append_check_head) expects the head
// and chain heads as the batch before it leaves them: if that batch did not
// commit, the check cannot pass, nothing of it is written, and both batches
// are retried the read-then-write way in queue order. Every event still
// waits for exactly one commit after its own batch is sent.

// flight is a fast batch whose commit runs in its own goroutine.
type flight struct {
	lb     *loaded
	chk    *specCheck
	prev   *flight       // the batch in flight when this one was sent
	next   *flight       // the batch sent while this one was in flight
	landed chan struct{} // closed when err is set
	err    error
	undo   memUndo // what the memory held before lb's effects
	// settled is set once the requests are answered (by land).
	settled bool
}

func (f *flight) hasLanded() bool {
	select {
	case <-f.landed:
		return true
	default:
		return false
	}
}

// launch sends lb's checked write and takes its effects into the memory at
// once, so the next batch can be ruled on them. prev is the batch still in
// flight, if any.
func (s *Store) launch(lb *loaded, chk *specCheck, prev *flight) *flight {
	f := &flight{lb: lb, chk: chk, prev: prev, landed: make(chan struct{})}
	if prev != nil {
		prev.next = f
		s.pipelined.Add(1)
	}
	f.undo = s.undoFor(lb.ix)
	s.remember(lb.ix)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		f.err = s.commitSpeculative(ctx, f.lb, f.chk)
		if f.err != nil && prev != nil && isStaleHead(f.err) {
			// The lock may have come to this batch before the one sent
			// before it: wait for that one, and if it committed, try again
			// once (the check decides; nothing was written).
			<-prev.landed
			if prev.err == nil {
				f.err = s.commitSpeculative(ctx, f.lb, f.chk)
			}
		}
		cancel()
		close(f.landed)
	}()
	return f
}

// land waits for f's commit and answers its requests. If it failed, f's
// effects are taken out of the memory again; the batch sent after f, if
// any, was built on f and is waited for too (and its effects taken out);
// then f's requests, and the next batch's if it did not commit, are
// appended the read-then-write way, in queue order.
func (s *Store) land(f *flight) {
	<-f.landed
	f.settled = true
	if f.err == nil {
		s.answer(f.lb)
		return
	}
	s.speculationFailed(f.err)
	next := f.next
	if next != nil {
		<-next.landed
		next.settled = true
	}
	switch {
	case next != nil && next.err == nil:
		// f did commit after all (its answer was lost) and next on top of
		// it: the memory is not worth sorting out, read the log again.
		s.mem, s.memKnown = nil, false
	case next != nil:
		s.restore(next.undo)
		s.restore(f.undo)
	default:
		s.restore(f.undo)
	}
	s.commitBatch(f.lb.reqs)
	if next != nil {
		if next.err == nil {
			// f's retry above found its events in the log.
			s.answer(next.lb)
		} else {
			s.commitBatch(next.lb.reqs)
		}
	}
}

// memUndo is what the appender's memory held for the keys of one batch
// before the batch's effects were merged into it (nil: absent).
type memUndo struct {
	head   int64
	traces map[traceKey]*traceState
	chains map[string]*chainState
}

// undoFor records what the memory holds for ix's keys.
func (s *Store) undoFor(ix *logIndex) memUndo {
	u := memUndo{head: s.mem.head, traces: make(map[traceKey]*traceState, len(ix.traces)), chains: make(map[string]*chainState, len(ix.chains))}
	for k := range ix.traces {
		if v, ok := s.mem.traces[k]; ok {
			u.traces[k] = &v
		} else {
			u.traces[k] = nil
		}
	}
	for k := range ix.chains {
		if v, ok := s.mem.chains[k]; ok {
			u.chains[k] = &v
		} else {
			u.chains[k] = nil
		}
	}
	return u
}

// restore puts back what undoFor recorded. If the memory was dropped in
// the meantime there is nothing to put back.
func (s *Store) restore(u memUndo) {
	if s.mem == nil || !s.memKnown {
		return
	}
	s.mem.head = u.head
	for k, v := range u.traces {
		if v == nil {
			delete(s.mem.traces, k)
		} else {
			s.mem.traces[k] = *v
		}
	}
	for k, v := range u.chains {
		if v == nil {
			delete(s.mem.chains, k)
		} else {
			s.mem.chains[k] = *v
		}
	}
}

// gather takes queued requests while f is in flight, until there are as
// many as f carries (so batches keep their size) or f has landed.
func (s *Store) gather(f *flight) []*appendReq {
	target := min(len(f.lb.reqs), s.opts.MaxBatch)
	var batch []*appendReq
	for len(batch) < target {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-f.landed:
			return batch
		}
	}
	return batch
}

func isStaleHead(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40001" && strings.HasPrefix(pe.Message, "dg_append_stale: head")
}
