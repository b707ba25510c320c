package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The appender remembers what its own batches read and wrote: the head
// log_seq, the state of recently touched traces and the tenants' chain
// heads. For a batch of new events (the common case) it applies the rules
// to that memory instead of reading the log first, and sends, in one round
// trip: BEGIN, the append lock, dg_append_check (which verifies under the
// lock every fact the rules used: head, absent keys and ids, trace states,
// chain heads), the insert, the chain heads, NOTIFY and COMMIT. If anything
// changed (another process appended, a key is a retry, a trace was
// forgotten) the check raises before the insert, nothing is written, and the
// batch takes the read-then-write path. The rules that run are the same
// (logIndex.decide); only where their facts come from differs, and the
// database confirms those facts before anything commits.

// maxRememberedTraces bounds the appender's memory; past it, it starts over
// (forgotten traces cost one failed check each, then are read again).
const maxRememberedTraces = 200_000

// speculationBackoff is how many batches go the read-then-write way after a
// failed check (another writer is probably active).
const speculationBackoff = 16

// specCheck is what dg_append_check is asked to confirm.
type specCheck struct {
	head                int64
	idemT, idemP, idemK []string
	idT, idE            []string
	trT, trID           []string
	trNext              []int64
	trFinished          []bool
	chT                 []string
	chHash              []*string
}

// remember merges what a committed (or read-only) batch knows into the
// appender's memory. Only the appender goroutine calls it.
func (s *Store) remember(ix *logIndex) {
	if s.mem == nil || len(s.mem.traces) > maxRememberedTraces {
		s.mem = newLogIndex()
	}
	s.mem.head = ix.head
	s.memKnown = true
	for k, v := range ix.traces {
		s.mem.traces[k] = v
	}
	for k, v := range ix.chains {
		s.mem.chains[k] = v
	}
}

// speculate applies the rules to batch over the appender's memory. It
// returns nil when the fast path does not apply: no memory yet, backing
// off, or some event would be refused or replayed (those answers must come
// from the log itself).
func (s *Store) speculate(batch []*appendReq) (*loaded, *specCheck) {
	if s.specDisabled || !s.memKnown {
		return nil, nil
	}
	if s.specOff > 0 {
		s.specOff--
		return nil, nil
	}
	ix := newLogIndex()
	ix.head = s.mem.head
	chk := &specCheck{head: ix.head}
	seenIdem := map[idemKey]bool{}
	seenID := map[idKey]bool{}
	for _, r := range batch {
		t, e := r.p.tenant, r.p.env
		if k := (idemKey{t, e.Source.ProducerID, e.IdempotencyKey}); !seenIdem[k] {
			seenIdem[k] = true
			chk.idemT, chk.idemP, chk.idemK = append(chk.idemT, t), append(chk.idemP, k.producer), append(chk.idemK, k.key)
		}
		if k := (idKey{t, e.EventID}); !seenID[k] {
			seenID[k] = true
			chk.idT, chk.idE = append(chk.idT, t), append(chk.idE, e.EventID)
		}
		tk := traceKey{t, e.TraceID}
		if _, done := ix.traces[tk]; !done {
			ts := s.mem.traces[tk] // absent: a new trace
			ix.traces[tk] = ts
			chk.trT, chk.trID = append(chk.trT, t), append(chk.trID, e.TraceID)
			chk.trNext, chk.trFinished = append(chk.trNext, ts.next), append(chk.trFinished, ts.finished)
		}
		if _, done := ix.chains[t]; !done {
			chk.chT = append(chk.chT, t)
			if cs, ok := s.mem.chains[t]; ok {
				ix.chains[t] = cs
				h := cs.hash
				chk.chHash = append(chk.chHash, &h)
			} else {
				chk.chHash = append(chk.chHash, nil)
			}
		}
	}
	lb := decideBatch(batch, ix)
	if len(lb.fresh) != len(batch) {
		return nil, nil
	}
	return lb, chk
}

// commitSpeculative sends the checked write of lb in one round trip.
func (s *Store) commitSpeculative(ctx context.Context, lb *loaded, chk *specCheck) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("append: get a database connection: %w", err)
	}
	b := &pgx.Batch{}
	queueBegin(b)
	b.Queue(`SELECT dg_append_check($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		chk.head, chk.idemT, chk.idemP, chk.idemK, chk.idT, chk.idE,
		chk.trT, chk.trID, chk.trNext, chk.trFinished, chk.chT, chk.chHash)
	queueWrite(b, lb.fresh, lb.freshP, lb.ix)
	br := conn.SendBatch(ctx, b)
	if err = readBegin(br); err == nil {
		if _, err = br.Exec(); err == nil {
			err = readWrite(br, len(lb.fresh))
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		abort(conn)
		return err
	}
	conn.Release()
	s.fastCommits.Add(1)
	return nil
}

// speculationFailed decides what a failed fast path means for the next
// batches. The batch itself is retried the read-then-write way.
func (s *Store) speculationFailed(err error) {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "40001" && strings.HasPrefix(pe.Message, "dg_append_stale"):
		s.staleChecks.Add(1)
		s.specOff = speculationBackoff
	case errors.As(err, &pe) && pe.Code == "42883":
		// A database migrated before dg_append_check existed.
		s.specDisabled = true
	default:
		s.specOff = speculationBackoff
	}
}
