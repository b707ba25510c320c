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
// heads, as one snapshot of the log at that head (see consistentWith). For
// a batch of new events (the common case) it applies the rules to that
// memory instead of reading the log first, and sends, in one round trip:
// BEGIN, the append lock, dg_append_check_head (migration 0008: the head
// and the batch tenants' chain heads are still what the memory says, so
// nothing was appended or reset since and every remembered fact holds),
// the insert, the chain heads, NOTIFY and COMMIT. What the memory does not
// hold (idempotency keys, event ids, traces it has not seen) it takes as
// absent; the unique indexes refuse the insert when that is wrong. Either
// way nothing is written and the batch takes the read-then-write path. The
// rules that run are the same (logIndex.decide); only where their facts
// come from differs, and the database confirms those facts before anything
// commits.

// maxRememberedTraces bounds the appender's memory; past it, it forgets the
// traces (forgotten traces cost at most one failed attempt each, then are
// read again).
const maxRememberedTraces = 200_000

// speculationBackoff is how many batches go the read-then-write way after a
// failed check (another writer is probably active).
const speculationBackoff = 16

// specCheck is what dg_append_check_head is asked to confirm: the head and
// the chain heads of the batch's tenants.
type specCheck struct {
	head   int64
	chT    []string
	chHash []string
}

// remember merges what a committed (or read-only) batch knows into the
// appender's memory. ix must describe the same log as the memory (a fast
// batch built on it, or a read that consistentWith accepted); the read
// path drops the memory first otherwise. Only the appender goroutine calls
// it.
func (s *Store) remember(ix *logIndex) {
	if s.mem == nil {
		s.mem = newLogIndex()
	} else if len(s.mem.traces) > maxRememberedTraces {
		// The chain heads stay true; only the traces are forgotten.
		s.mem.traces = map[traceKey]traceState{}
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

// consistentWith tells whether ix, freshly read from the log for reqs
// under the append lock, describes the same log as the appender's memory:
// same head, and every chain head and trace state both hold agrees. When
// it does not (another process appended, a tenant was reset) the memory
// is dropped before the batch is remembered, so the memory never mixes
// facts of two different logs. Only the appender goroutine calls it.
func (s *Store) consistentWith(ix *logIndex, reqs []*appendReq) bool {
	if s.mem == nil || !s.memKnown || ix.head != s.mem.head {
		return false
	}
	for _, r := range reqs {
		if m, ok := s.mem.chains[r.p.tenant]; ok {
			if db, ok := ix.chains[r.p.tenant]; !ok || db != m {
				return false
			}
		}
	}
	for k, db := range ix.traces {
		if m, ok := s.mem.traces[k]; ok && m != db {
			return false
		}
	}
	return true
}

// speculate applies the rules to batch over the appender's memory. It
// returns nil when the fast path does not apply: no memory yet, backing
// off, a tenant whose chain head the memory does not hold, or some event
// would be refused or replayed (those answers must come from the log
// itself).
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
	for _, r := range batch {
		t, e := r.p.tenant, r.p.env
		tk := traceKey{t, e.TraceID}
		if _, done := ix.traces[tk]; !done {
			ix.traces[tk] = s.mem.traces[tk] // absent: taken as a new trace
		}
		if _, done := ix.chains[t]; !done {
			cs, ok := s.mem.chains[t]
			if !ok {
				return nil, nil // the read path learns the tenant's chain head
			}
			ix.chains[t] = cs
			chk.chT, chk.chHash = append(chk.chT, t), append(chk.chHash, cs.hash)
		}
	}
	lb := decideBatch(batch, ix)
	if len(lb.fresh) != len(batch) {
		return nil, nil
	}
	return lb, chk
}

// commitSpeculative sends the checked write of lb in one round trip. It
// plans with the default plan cache mode: none of its statements has a plan
// that depends on the parameters' values.
func (s *Store) commitSpeculative(ctx context.Context, lb *loaded, chk *specCheck) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("append: get a database connection: %w", err)
	}
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL READ COMMITTED`)
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, appendLockKey)
	b.Queue(`SELECT dg_append_check_head($1, $2, $3)`, chk.head, chk.chT, chk.chHash)
	queueWrite(b, lb.fresh, lb.freshP, lb.ix)
	br := conn.SendBatch(ctx, b)
	for i := 0; i < 3 && err == nil; i++ {
		if _, err = br.Exec(); err != nil && i == 1 {
			err = fmt.Errorf("take append lock: %w", err)
		}
	}
	if err == nil {
		err = readWrite(br, len(lb.fresh))
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
	case errors.As(err, &pe) && pe.Code == "23505":
		// A key the memory does not hold was in the log: an idempotent
		// retry, a reused event_id, a trace the appender has not seen. The
		// memory itself is still right (the check passed), so no back-off.
		s.staleChecks.Add(1)
	case errors.As(err, &pe) && pe.Code == "42883":
		// A database without the check function.
		s.specDisabled = true
	default:
		s.specOff = speculationBackoff
	}
}
