package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// appendLockKey is the transaction-scoped advisory lock every append
// transaction takes, so appenders of several processes serialise.
const appendLockKey int64 = 0x64675f617070656e // "dg_appen"

type appendReq struct {
	ctx  context.Context
	p    *prepared
	done chan appendAns // buffered 1: the appender never blocks on a caller
}

type appendAns struct {
	res *AppendResult
	err error
}

// Append validates env and appends it to tenant's log through the group
// commit appender. Rule failures are *event.Error (events spec §10); an
// idempotent retry returns the original event with Replayed set.
//
// If ctx ends while the event is queued it is not appended; if it ends
// while the batch is committing, the event may be stored anyway (retrying
// with the same idempotency key is safe).
func (s *Store) Append(ctx context.Context, tenant string, env *event.Envelope) (*AppendResult, error) {
	p, err := prepare(tenant, env, s.evOpts)
	if err != nil {
		return nil, err
	}
	req := &appendReq{ctx: ctx, p: p, done: make(chan appendAns, 1)}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case s.reqs <- req:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return nil, ctx.Err()
	}
	select {
	case ans := <-req.done:
		return ans.res, ans.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// AppendMany appends envs to tenant's log in order, as if each were given
// to Append one after the other by one caller: every event is validated and
// ruled on by itself, in order, and a later event sees the earlier ones
// (a trace can be started and continued in one call). There is one result
// or one error per event, at its index; a refused event fails alone and
// the events after it are still judged. All of them go through the same
// group commit as Append, usually in one batch, so a caller with many
// events pays for one commit rather than one per event. Events of other
// callers may be committed between them.
//
// If ctx ends, the events not yet queued get ctx's error and are not
// appended; those already queued behave as with Append.
func (s *Store) AppendMany(ctx context.Context, tenant string, envs []*event.Envelope) ([]*AppendResult, []error) {
	res := make([]*AppendResult, len(envs))
	errs := make([]error, len(envs))
	reqs := make([]*appendReq, len(envs))
	for i, env := range envs {
		p, err := prepare(tenant, env, s.evOpts)
		if err != nil {
			errs[i] = err
			continue
		}
		reqs[i] = &appendReq{ctx: ctx, p: p, done: make(chan appendAns, 1)}
	}
	// Queue all of them under one read lock, in order, so Close cannot come
	// between them.
	s.closeMu.RLock()
	for i, r := range reqs {
		if r == nil {
			continue
		}
		if s.closed {
			errs[i], reqs[i] = ErrClosed, nil
			continue
		}
		select {
		case s.reqs <- r:
		case <-ctx.Done():
			errs[i], reqs[i] = ctx.Err(), nil
		}
	}
	s.closeMu.RUnlock()
	for i, r := range reqs {
		if r == nil {
			continue
		}
		select {
		case ans := <-r.done:
			res[i], errs[i] = ans.res, ans.err
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return res, errs
}

// AppendResult is Append under the name MemLog also has, so callers can
// take either through one interface.
func (s *Store) AppendResult(ctx context.Context, tenant string, env *event.Envelope) (*AppendResult, error) {
	return s.Append(ctx, tenant, env)
}

// run is the appender, until Close: it takes the requests queued so far
// as one batch and appends it, one batch at a time.
func (s *Store) run() {
	defer close(s.stopped)
	for {
		batch, ok := s.next()
		if !ok {
			return
		}
		if batch = live(batch); len(batch) > 0 {
			s.appendBatch(batch)
		}
	}
}

// appendBatch appends one batch and answers its requests. The fast path
// (speculate.go) applies the rules to what this appender remembers of the
// log and sends check, insert and COMMIT in one round trip; when that is
// not possible or the check finds the memory stale, the batch takes the
// read-then-write path (appendTx, two round trips).
func (s *Store) appendBatch(batch []*appendReq) {
	if lb, chk := s.speculate(batch); lb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.commitSpeculative(ctx, lb, chk)
		cancel()
		if err == nil {
			s.remember(lb.ix)
			s.answer(lb)
			return
		}
		s.speculationFailed(err)
	}
	s.commitBatch(batch)
}

// next blocks for the first request of a batch and fills the batch. After
// Close it returns what is still queued, then false.
func (s *Store) next() ([]*appendReq, bool) {
	select {
	case r := <-s.reqs:
		return s.fill([]*appendReq{r}, true), true
	case <-s.quit:
		batch := s.fill(nil, false)
		return batch, len(batch) > 0
	}
}

// live answers requests whose caller has gone and returns the others.
func live(batch []*appendReq) []*appendReq {
	out := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- appendAns{err: err}
			continue
		}
		out = append(out, r)
	}
	return out
}

// answer replies to every request of a committed batch and wakes
// subscribers.
func (s *Store) answer(lb *loaded) {
	// Signal first: when Append returns, subscribers already know.
	if len(lb.fresh) > 0 {
		s.commits.Add(1)
		s.appended.Add(int64(len(lb.fresh)))
		s.publish(lb.ix.head)
	}
	for i, r := range lb.reqs {
		r.done <- lb.answers[i]
	}
}

// fallback appends each request in a transaction of its own, after a batch
// failed for a reason other than the rules, so a failing event fails alone.
func (s *Store) fallback(reqs []*appendReq) {
	for _, r := range reqs {
		s.commitBatch([]*appendReq{r})
	}
}

// abort rolls back whatever is open on conn and gives it back; a connection
// that cannot roll back is closed so the pool never reuses it
// mid-transaction.
func abort(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = conn.Conn().Close(ctx)
	}
	conn.Release()
}

// fill adds queued requests to batch up to MaxBatch, waiting up to MaxWait
// for more when wait is set and MaxWait is set.
func (s *Store) fill(batch []*appendReq, wait bool) []*appendReq {
	var deadline <-chan time.Time
	if wait && s.opts.MaxWait > 0 {
		t := time.NewTimer(s.opts.MaxWait)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < s.opts.MaxBatch {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
			continue
		default:
		}
		if deadline == nil {
			return batch
		}
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-deadline:
			return batch
		}
	}
	return batch
}

// commitBatch runs one batch and answers every request in it. If the
// transaction fails for a reason other than the rules (which fail events
// one by one), each event is retried in a transaction of its own, so a
// failing event fails alone.
func (s *Store) commitBatch(batch []*appendReq) {
	batch = live(batch)
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	answers, head, err := s.appendTx(ctx, batch)
	if err != nil && len(batch) > 1 {
		s.fallback(batch)
		return
	}
	if err != nil {
		batch[0].done <- appendAns{err: storageError(err)}
		return
	}
	if head > 0 {
		s.publish(head)
	}
	for i, r := range batch {
		r.done <- answers[i]
	}
}

func storageError(err error) error {
	var ee *event.Error
	if errors.As(err, &ee) {
		return err
	}
	return &event.Error{Code: event.CodeStorage, Message: fmt.Sprintf("append failed in the database (the event was not stored; retry with the same idempotency key): %v", err)}
}

// appendTx is one append transaction: lock, read what the batch's keys need,
// apply the rules in queue order, insert the accepted events with one
// statement, move the chain heads, notify, commit: two round trips.
// It returns one answer per request and the new head (0 if nothing was
// written).
func (s *Store) appendTx(ctx context.Context, reqs []*appendReq) (answers []appendAns, head int64, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("append: get a database connection: %w", err)
	}
	open := false // a transaction may be open on conn
	defer func() {
		if open {
			// Roll back whatever is left; a connection that cannot is
			// closed so the pool never reuses it mid-transaction.
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, rerr := conn.Exec(rctx, "ROLLBACK"); rerr != nil {
				_ = conn.Conn().Close(rctx)
			}
			cancel()
		}
		conn.Release()
	}()

	// Round trip 1: BEGIN, the append lock, and every lookup.
	open = true
	ix, err := loadBatchIndex(ctx, conn.Conn(), reqs)
	if err != nil {
		return nil, 0, err
	}
	if !s.consistentWith(ix, reqs) {
		s.mem, s.memKnown = nil, false // what ix read is remembered from scratch
	}
	lb := decideBatch(reqs, ix)
	answers, fresh, freshP := lb.answers, lb.fresh, lb.freshP
	if len(fresh) == 0 {
		s.remember(ix) // nothing written: ix is what the log holds
	}
	if len(fresh) == 0 {
		return answers, 0, nil // the deferred ROLLBACK ends the read-only transaction
	}
	// Round trip 2: insert, chain heads, NOTIFY, COMMIT.
	if err := writeEvents(ctx, conn.Conn(), fresh, freshP, ix); err != nil {
		return nil, 0, err
	}
	open = false
	s.remember(ix)
	s.commits.Add(1)
	s.appended.Add(int64(len(fresh)))
	return answers, ix.head, nil
}

// loaded is a batch whose append transaction is open, with the lookups
// read and the rules applied: what is left is to write and commit.
type loaded struct {
	reqs    []*appendReq
	ix      *logIndex
	answers []appendAns
	fresh   []*event.StoredEvent // events to insert, in log_seq order
	freshP  []*prepared          // their prepared forms
}

// decideBatch applies the rules to reqs in queue order over ix.
func decideBatch(reqs []*appendReq, ix *logIndex) *loaded {
	lb := &loaded{reqs: reqs, ix: ix, answers: make([]appendAns, len(reqs))}
	now := recordedNow()
	for i, r := range reqs {
		prev, rerr := ix.decide(r.p)
		switch {
		case rerr != nil:
			lb.answers[i] = appendAns{err: rerr}
		case prev != nil:
			lb.answers[i] = appendAns{res: &AppendResult{Event: prev, Replayed: true}}
		default:
			ev, err := ix.accept(r.p, now)
			if err != nil {
				lb.answers[i] = appendAns{err: err}
				continue
			}
			lb.fresh = append(lb.fresh, ev)
			lb.freshP = append(lb.freshP, r.p)
			lb.answers[i] = appendAns{res: &AppendResult{Event: ev}}
		}
	}
	return lb
}

// loadBatchIndex opens the append transaction on conn, takes the append
// lock and reads, all in one round trip, the log state every request of
// the batch depends on.
func loadBatchIndex(ctx context.Context, conn *pgx.Conn, reqs []*appendReq) (*logIndex, error) {
	b := &pgx.Batch{}
	queueLoad(b, reqs)
	br := conn.SendBatch(ctx, b)
	ix, err := readLoad(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return ix, err
}

// queueBegin queues the start of an append transaction: BEGIN, custom
// plans, the append lock. The append path's statements are prepared once
// per connection (and dg_append_check's inside PL/pgSQL); a generic plan
// cached while the log was nearly empty keeps probing the wrong index as the
// log grows (measured: 60 ms per batch at 8,000 events, scanning a tenant's
// rows for each key). Planning each statement with the log's current size
// costs far less.
func queueBegin(b *pgx.Batch) {
	b.Queue(`BEGIN ISOLATION LEVEL READ COMMITTED`)
	b.Queue(`SET LOCAL plan_cache_mode = force_custom_plan`)
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, appendLockKey)
}

// readBegin reads the results of queueBegin.
func readBegin(br pgx.BatchResults) error {
	for i := range 3 {
		if _, err := br.Exec(); err != nil {
			if i == 2 {
				return fmt.Errorf("take append lock: %w", err)
			}
			return fmt.Errorf("begin append transaction: %w", err)
		}
	}
	return nil
}

// queueLoad queues BEGIN, the append lock and the lookups for reqs.
func queueLoad(b *pgx.Batch, reqs []*appendReq) {
	var (
		idT, idP, idK []string
		eidT, eidE    []string
		trT, trID     []string
		tenants       []string
		seenIdem      = map[idemKey]bool{}
		seenID        = map[idKey]bool{}
		seenTrace     = map[traceKey]bool{}
		seenTenant    = map[string]bool{}
	)
	for _, r := range reqs {
		t, e := r.p.tenant, r.p.env
		if k := (idemKey{t, e.Source.ProducerID, e.IdempotencyKey}); !seenIdem[k] {
			seenIdem[k] = true
			idT, idP, idK = append(idT, t), append(idP, k.producer), append(idK, k.key)
		}
		if k := (idKey{t, e.EventID}); !seenID[k] {
			seenID[k] = true
			eidT, eidE = append(eidT, t), append(eidE, e.EventID)
		}
		if k := (traceKey{t, e.TraceID}); !seenTrace[k] {
			seenTrace[k] = true
			trT, trID = append(trT, t), append(trID, e.TraceID)
		}
		if !seenTenant[t] {
			seenTenant[t] = true
			tenants = append(tenants, t)
		}
	}

	queueBegin(b)
	b.Queue(`SELECT COALESCE(max(log_seq), 0) FROM dg_event_log`)
	// LATERAL makes each key one unique-index probe whatever the planner
	// thinks of unnest's row count (a hash join would scan the whole log).
	b.Queue(`SELECT `+eventColumns+` FROM unnest($1::text[], $2::text[], $3::text[]) AS k(t, p, i)
		CROSS JOIN LATERAL (SELECT * FROM dg_event_log x
		  WHERE x.tenant_id = k.t AND x.producer_id = k.p AND x.idempotency_key = k.i) e`, idT, idP, idK)
	b.Queue(`SELECT e.tenant_id, e.event_id FROM unnest($1::text[], $2::text[]) AS k(t, id)
		CROSS JOIN LATERAL (SELECT x.tenant_id, x.event_id FROM dg_event_log x
		  WHERE x.tenant_id = k.t AND x.event_id = k.id) e`, eidT, eidE)
	// Aggregates in LATERAL keep one index probe per trace; an EXISTS in
	// the select list may be planned as a hashed subplan over every
	// finished trace of the log.
	b.Queue(`SELECT k.t, k.tr, m.mx, f.fin
		FROM unnest($1::text[], $2::text[]) AS k(t, tr)
		CROSS JOIN LATERAL (SELECT max(x.trace_seq) AS mx FROM dg_event_log x
		  WHERE x.tenant_id = k.t AND x.trace_id = k.tr) m
		CROSS JOIN LATERAL (SELECT count(*) > 0 AS fin FROM dg_event_log x
		  WHERE x.tenant_id = k.t AND x.trace_id = k.tr AND x.event_type = 'TraceFinished') f`, trT, trID)
	b.Queue(`SELECT tenant_id, chain_hash, event_count FROM dg_chain_heads WHERE tenant_id = ANY($1::text[])`, tenants)
}

// readLoad reads the results queueLoad asked for.
func readLoad(br pgx.BatchResults) (*logIndex, error) {
	ix := newLogIndex()
	if err := readBegin(br); err != nil {
		return nil, err
	}
	if err := br.QueryRow().Scan(&ix.head); err != nil {
		return nil, fmt.Errorf("read log head: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("look up idempotency keys: %w", err)
	}
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("look up idempotency keys: %w", err)
		}
		ix.idem[idemKey{ev.TenantID, ev.Source.ProducerID, ev.IdempotencyKey}] = ev
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up idempotency keys: %w", err)
	}
	rows, err = br.Query()
	if err != nil {
		return nil, fmt.Errorf("look up event ids: %w", err)
	}
	for rows.Next() {
		var k idKey
		if err := rows.Scan(&k.tenant, &k.eventID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("look up event ids: %w", err)
		}
		ix.ids[k] = struct{}{}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up event ids: %w", err)
	}
	rows, err = br.Query()
	if err != nil {
		return nil, fmt.Errorf("look up traces: %w", err)
	}
	for rows.Next() {
		var k traceKey
		var maxSeq *int64
		var finished bool
		if err := rows.Scan(&k.tenant, &k.traceID, &maxSeq, &finished); err != nil {
			rows.Close()
			return nil, fmt.Errorf("look up traces: %w", err)
		}
		ts := traceState{finished: finished}
		if maxSeq != nil {
			ts.next = *maxSeq + 1
		}
		ix.traces[k] = ts
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up traces: %w", err)
	}
	rows, err = br.Query()
	if err != nil {
		return nil, fmt.Errorf("read chain heads: %w", err)
	}
	for rows.Next() {
		var t string
		var cs chainState
		if err := rows.Scan(&t, &cs.hash, &cs.count); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read chain heads: %w", err)
		}
		ix.chains[t] = cs
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read chain heads: %w", err)
	}
	return ix, nil
}

// writeEvents inserts the batch's new events with one multi-row INSERT,
// moves the chain heads of their tenants, queues the NOTIFY and commits, in
// one round trip.
func writeEvents(ctx context.Context, conn *pgx.Conn, evs []*event.StoredEvent, ps []*prepared, ix *logIndex) error {
	b := &pgx.Batch{}
	queueWrite(b, evs, ps, ix)
	br := conn.SendBatch(ctx, b)
	err := readWrite(br, len(evs))
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("commit %d events: %w", len(evs), cerr)
	}
	return err
}

// writeStatements is how many statements queueWrite queues.
const writeStatements = 4

// queueWrite queues the batch insert, the chain-head upsert, the NOTIFY and
// COMMIT.
func queueWrite(b *pgx.Batch, evs []*event.StoredEvent, ps []*prepared, ix *logIndex) {
	n := len(evs)
	var (
		logSeq, traceSeq, schemaVer                  = make([]int64, n), make([]int64, n), make([]int64, n)
		tenant, eventID, traceID, eventType, occured = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		producer, system, actorType, actorID, idem   = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		subsystem, corr, cause                       = make([]*string, n), make([]*string, n), make([]*string, n)
		tags, payload, payloadHash, eventHash, chain = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		recorded                                     = make([]time.Time, n)
	)
	for i, ev := range evs {
		logSeq[i], traceSeq[i], schemaVer[i] = ev.LogSeq, ev.TraceSeq, ev.SchemaVersion
		tenant[i], eventID[i], traceID[i], eventType[i], occured[i] = ev.TenantID, ev.EventID, ev.TraceID, ev.EventType, ev.OccurredAt
		producer[i], system[i], actorType[i], actorID[i], idem[i] = ev.Source.ProducerID, ev.Source.System, ev.Actor.ActorType, ev.Actor.ActorID, ev.IdempotencyKey
		subsystem[i], corr[i], cause[i] = ev.Source.Subsystem, ev.CorrelationID, ev.CausationEventID
		payloadHash[i], eventHash[i], chain[i] = ev.PayloadHash, ev.EventHash, ev.ChainHash
		recorded[i] = ev.RecordedAt
		payload[i], tags[i] = string(ps[i].payloadJSON), string(ps[i].tagsJSON)
	}

	// Chain heads of the tenants this batch touched, as they stand after it.
	var hT, hHash []string
	var hSeq, hCount []int64
	last := map[string]int64{}
	for _, ev := range evs {
		last[ev.TenantID] = ev.LogSeq
	}
	for t, seq := range last {
		cs := ix.chains[t]
		hT, hHash, hSeq, hCount = append(hT, t), append(hHash, cs.hash), append(hSeq, seq), append(hCount, cs.count)
	}

	b.Queue(`INSERT INTO dg_event_log (log_seq, tenant_id, event_id, trace_id, trace_seq, event_type, occurred_at,
			recorded_at, producer_id, source_system, source_subsystem, actor_type, actor_id, correlation_id,
			causation_event_id, idempotency_key, schema_version, tags, payload, payload_hash, event_hash, chain_hash)
		SELECT u.log_seq, u.tenant_id, u.event_id, u.trace_id, u.trace_seq, u.event_type, u.occurred_at,
			u.recorded_at, u.producer_id, u.source_system, u.source_subsystem, u.actor_type, u.actor_id, u.correlation_id,
			u.causation_event_id, u.idempotency_key, u.schema_version, u.tags::json, u.payload::json, u.payload_hash, u.event_hash, u.chain_hash
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
			$8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
			$15::text[], $16::text[], $17::bigint[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[])
		AS u(log_seq, tenant_id, event_id, trace_id, trace_seq, event_type, occurred_at,
			recorded_at, producer_id, source_system, source_subsystem, actor_type, actor_id, correlation_id,
			causation_event_id, idempotency_key, schema_version, tags, payload, payload_hash, event_hash, chain_hash)`,
		logSeq, tenant, eventID, traceID, traceSeq, eventType, occured,
		recorded, producer, system, subsystem, actorType, actorID, corr,
		cause, idem, schemaVer, tags, payload, payloadHash, eventHash, chain)
	b.Queue(`INSERT INTO dg_chain_heads (tenant_id, log_seq, chain_hash, event_count)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
		ON CONFLICT (tenant_id) DO UPDATE SET log_seq = EXCLUDED.log_seq, chain_hash = EXCLUDED.chain_hash, event_count = EXCLUDED.event_count`,
		hT, hSeq, hHash, hCount)
	b.Queue(`SELECT pg_notify($1, $2)`, NotifyChannel, strconv.FormatInt(ix.head, 10))
	b.Queue(`COMMIT`)
}

// readWrite reads the results of queueWrite's statements.
func readWrite(br pgx.BatchResults, n int) error {
	for i := range writeStatements {
		ct, err := br.Exec()
		if err != nil {
			if i == writeStatements-1 {
				return fmt.Errorf("commit %d events: %w", n, describePgError(err))
			}
			return fmt.Errorf("insert %d events: %w", n, describePgError(err))
		}
		// COMMIT of a failed transaction answers ROLLBACK without an error.
		if i == writeStatements-1 && ct.String() != "COMMIT" {
			return fmt.Errorf("commit %d events: the server answered %q; nothing was stored", n, ct.String())
		}
	}
	return nil
}

// describePgError adds the constraint name to PostgreSQL errors, which is
// what tells an operator which guard fired.
func describePgError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.ConstraintName != "" {
		return fmt.Errorf("%w (constraint %s)", err, pe.ConstraintName)
	}
	return err
}
