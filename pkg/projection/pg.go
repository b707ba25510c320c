package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Advisory-lock classes (the first key of pg_advisory_*lock(int, int)); the
// second key is hashtext("tenant:projection").
const (
	// batchLockClass serialises every write to one projection of one tenant
	// (live batches, rebuild swaps), transaction-scoped.
	batchLockClass int32 = 0x64670001
	// ownerLockClass elects the one process that runs a live worker for a
	// projection of a tenant, session-scoped.
	ownerLockClass int32 = 0x64670002
)

// DefaultBatchSize is the number of events one catch-up transaction
// projects (projection_batch_size in the reference).
const DefaultBatchSize = 250

// PG runs projections against a Postgres event log and its projection
// tables.
type PG struct {
	st        *store.Store
	pool      *pgxpool.Pool
	batchSize int
	parts     partitions
	indexMu   sync.Mutex
	indexDefs map[string][]indexDef // live table -> its index definitions
}

// NewPG returns the Postgres projection engine of a store. batchSize <= 0
// means DefaultBatchSize.
func NewPG(st *store.Store, batchSize int) *PG {
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	return &PG{st: st, pool: st.Pool(), batchSize: batchSize}
}

func scopeKey(tenant, projection string) string { return tenant + ":" + projection }

// Cursor returns the durable checkpoint of one projection of a tenant.
func (pg *PG) Cursor(ctx context.Context, q queryer, tenant, projection string) (int64, error) {
	var c int64
	err := q.QueryRow(ctx, `SELECT last_log_seq FROM dg_projection_cursors WHERE tenant_id = $1 AND projection_name = $2`, tenant, projection).Scan(&c)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint of %s for tenant %s: %w", projection, tenant, err)
	}
	return c, nil
}

const setCursorSQL = `INSERT INTO dg_projection_cursors (tenant_id, projection_name, last_log_seq, updated_at)
		VALUES ($1, $2, $3, now())
		ON CONFLICT (tenant_id, projection_name) DO UPDATE SET last_log_seq = EXCLUDED.last_log_seq, updated_at = now()`

func setCursor(ctx context.Context, tx pgx.Tx, tenant, projection string, seq int64) error {
	_, err := tx.Exec(ctx, setCursorSQL, tenant, projection, seq)
	if err != nil {
		return fmt.Errorf("write checkpoint of %s for tenant %s: %w", projection, tenant, err)
	}
	return nil
}

func lockScope(ctx context.Context, tx pgx.Tx, tenant, projection string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, batchLockClass, scopeKey(tenant, projection)); err != nil {
		return fmt.Errorf("lock projection %s of tenant %s: %w", projection, tenant, err)
	}
	return nil
}

// TenantHead is the highest log_seq of a tenant's events (0 if none).
func (pg *PG) TenantHead(ctx context.Context, tenant string) (int64, error) {
	var h int64
	err := pg.pool.QueryRow(ctx, `SELECT COALESCE(max(log_seq), 0) FROM dg_event_log WHERE tenant_id = $1`, tenant).Scan(&h)
	if err != nil {
		return 0, fmt.Errorf("read head of tenant %s: %w", tenant, err)
	}
	return h, nil
}

// traceEvents reads one trace's events from the log for its precedent
// rows, page by page.
func (pg *PG) traceEvents(ctx context.Context, tenant string) TraceEvents {
	return func(traceID string) ([]event.StoredEvent, error) {
		var out []event.StoredEvent
		since := int64(-1)
		for {
			evs, err := pg.st.TraceEvents(ctx, tenant, traceID, since, store.MaxQueryLimit)
			if code, ok := event.CodeOf(err); ok && code == event.CodeNotFound {
				return out, nil
			}
			if err != nil {
				return nil, err
			}
			for _, ev := range evs {
				out = append(out, *ev)
			}
			if len(evs) < store.MaxQueryLimit {
				return out, nil
			}
			since = evs[len(evs)-1].TraceSeq
		}
	}
}

// Catcher catches one projection of one tenant up with the log, batch by
// batch. It keeps its Projector between batches while the durable
// checkpoint is where it left it, and starts afresh otherwise (after a
// rebuild swap, or another process's progress).
type Catcher struct {
	pg     *PG
	tenant string
	name   string
	set    Set
	proj   *Projector
	seen   int64 // checkpoint the projector state belongs to (-1: none)
	size   int   // events to read for the next batch (see nextSize)
}

// NewCatcher returns a catcher for projection name of tenant.
func (pg *PG) NewCatcher(tenant, name string) (*Catcher, error) {
	set, ok := SetOf(name)
	if !ok || set == SetAll {
		return nil, fmt.Errorf("unknown projection %q: use context_graph, trace_summary or precedent_index", name)
	}
	return &Catcher{pg: pg, tenant: tenant, name: name, set: set, seen: -1, size: pg.batchSize}, nil
}

// maxBatchGrowth bounds how far a catcher far behind the log grows its
// batches: up to this many times the configured batch size.
const maxBatchGrowth = 16

// nextSize is the batch size after a batch: a full read means the worker
// is behind, so the next batch is four times larger (up to maxBatchGrowth
// times the configured size, and at most 4000 events unless the
// configured size is larger); a short read means it reached the head, and
// the next batch starts at the configured size again.
func (c *Catcher) nextSize(full bool) int {
	base := c.pg.batchSize
	if !full {
		return base
	}
	return min(4*c.size, max(base, min(base*maxBatchGrowth, 4000)))
}

// CatchUpResult reports one catch-up.
type CatchUpResult struct {
	Projection string `json:"projection"`
	Tenant     string `json:"tenant"`
	LastLogSeq int64  `json:"last_log_seq"`
	Processed  int    `json:"processed_events"`
}

// CatchUp projects events after the checkpoint until the tenant's head (or
// until, when until > 0). Each batch commits its rows and the checkpoint in
// one transaction under the scope's advisory lock. When an event fails, the
// events before it in its batch are committed, the checkpoint stops just
// before it and the *StepError is returned.
func (c *Catcher) CatchUp(ctx context.Context, until int64) (CatchUpResult, error) {
	res := CatchUpResult{Projection: c.name, Tenant: c.tenant}
	for {
		n, last, err := c.batch(ctx, until)
		if last < 0 {
			continue // the checkpoint moved under us: read again
		}
		res.Processed += n
		if last > 0 {
			res.LastLogSeq = last
		}
		if err != nil || n == 0 {
			if res.LastLogSeq == 0 {
				res.LastLogSeq, _ = c.pg.Cursor(ctx, c.pg.pool, c.tenant, c.name)
			}
			return res, err
		}
	}
}

// batch projects one batch; it returns the number of events committed and
// the new checkpoint (0 when nothing moved, -1 when the batch must be read
// again). The transaction takes two round trips: BEGIN, the scope lock,
// the checkpoint and the log lookups the rules need in one, then the rows,
// the checkpoint, resolved failures and COMMIT in the other.
func (c *Catcher) batch(ctx context.Context, until int64) (int, int64, error) {
	cursor := c.seen
	cached := c.proj != nil && cursor >= 0
	if !cached {
		var err error
		if cursor, err = c.pg.Cursor(ctx, c.pg.pool, c.tenant, c.name); err != nil {
			return 0, 0, err
		}
	}
	size := c.size
	// Each catcher reads the log itself: sharing one read between a
	// tenant's catchers left a worker idle behind the head in loaded runs
	// of TestRebuildWhileLive (see docs/decisions.md).
	evs, verified, err := c.pg.readEvents(ctx, c.tenant, cursor, size)
	if err != nil {
		return 0, 0, err
	}
	full := len(evs) == size
	if until > 0 {
		for i, ev := range evs {
			if ev.LogSeq > until {
				evs = evs[:i]
				break
			}
		}
	}
	if len(evs) == 0 {
		if cached {
			// Nothing after the checkpoint this catcher remembers; but a
			// rebuild (in this process or another) may have moved the
			// stored checkpoint back to where its snapshot ended, and then
			// no new event would ever send us through the check below.
			stored, err := c.pg.Cursor(ctx, c.pg.pool, c.tenant, c.name)
			if err != nil {
				return 0, 0, err
			}
			if stored != cursor {
				c.proj, c.seen = nil, -1
				return 0, -1, nil
			}
		}
		return 0, 0, nil
	}
	if err := c.pg.parts.ensure(ctx, c.pg.pool, c.tenant); err != nil {
		return 0, 0, err
	}
	if c.proj == nil || c.seen != cursor {
		c.proj = NewProjector(c.set)
	}
	conn, err := c.pg.pool.Acquire(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("begin projection batch: %w", err)
	}
	defer conn.Release()
	open := true // a transaction may be open on conn
	defer func() {
		if open {
			// A failed ROLLBACK leaves the session out of idle; the pool
			// then drops the connection on Release.
			_, _ = conn.Exec(context.Background(), "ROLLBACK")
		}
	}()

	// Round trip 1: BEGIN, lock, checkpoint, trace positions and precedent inputs.
	unknown := c.unknownTraces(evs)
	finished := finishedTraces(c.set, evs)
	q := &pgx.Batch{}
	q.Queue("BEGIN")
	q.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2))`, batchLockClass, scopeKey(c.tenant, c.name))
	q.Queue(`SELECT COALESCE((SELECT last_log_seq FROM dg_projection_cursors WHERE tenant_id = $1 AND projection_name = $2), 0)`, c.tenant, c.name)
	if len(unknown) > 0 {
		q.Queue(tracePositionsSQL, c.tenant, cursor, unknown)
	}
	if len(finished) > 0 {
		q.Queue(precedentInputsSQL, c.tenant, finished)
	}
	br := conn.SendBatch(ctx, q)
	var locked int64
	var pre map[string][]event.StoredEvent
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("begin projection batch: %w", err)
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("lock projection %s of tenant %s: %w", c.name, c.tenant, err)
		}
		if err := br.QueryRow().Scan(&locked); err != nil {
			return fmt.Errorf("read checkpoint of %s for tenant %s: %w", c.name, c.tenant, err)
		}
		if len(unknown) > 0 {
			rows, err := br.Query()
			if err != nil {
				return fmt.Errorf("read trace positions: %w", err)
			}
			if err := c.loadTracker(rows, unknown); err != nil {
				return err
			}
		}
		if len(finished) > 0 {
			rows, err := br.Query()
			if err != nil {
				return fmt.Errorf("read precedent inputs: %w", err)
			}
			if pre, err = readPrecedentInputs(rows, c.tenant, finished); err != nil {
				return err
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("begin projection batch: %w", cerr)
	}
	if err != nil {
		c.proj = nil
		return 0, 0, err
	}
	if locked != cursor {
		// Someone else moved the checkpoint since we read it (or since our
		// last batch): start again from the stored one.
		c.proj, c.seen = nil, -1
		return 0, -1, nil
	}

	bc := newBatchChanges()
	traces := c.pg.traceEvents(ctx, c.tenant)
	if pre != nil {
		fallback := traces
		traces = func(traceID string) ([]event.StoredEvent, error) {
			if evs, ok := pre[traceID]; ok {
				return evs, nil
			}
			return fallback(traceID)
		}
	}
	var stepErr error
	done := 0
	for i, ev := range evs {
		var ch Changes
		var err error
		if verified[i] {
			ch, err = stepVerified(c.proj, ev, traces)
		} else {
			ch, err = c.proj.Step(ev, traces)
		}
		if err != nil {
			stepErr = err
			break
		}
		bc.add(&ch)
		done++
	}
	if done == 0 {
		// The projector may have learnt trace positions for events that
		// are not committed; it still belongs to cursor.
		c.seen = cursor
		return 0, 0, stepErr
	}
	last := evs[done-1].LogSeq
	// Round trip 2: rows, checkpoint, resolved failures, COMMIT.
	q = &pgx.Batch{}
	bc.queue(q, c.tenant, liveTables)
	q.Queue(setCursorSQL, c.tenant, c.name, last)
	q.Queue(`UPDATE dg_projection_failures SET status = 'resolved', resolved_at = now(), updated_at = now()
		WHERE tenant_id = $1 AND projection_name = $2 AND status = 'open' AND log_seq <= $3`, c.tenant, c.name, last)
	q.Queue("COMMIT")
	if err := conn.SendBatch(ctx, q).Close(); err != nil {
		c.proj, c.seen = nil, -1
		return 0, 0, fmt.Errorf("write %s rows and checkpoint for tenant %s: %w", c.name, c.tenant, err)
	}
	open = false
	c.seen = last
	if stepErr == nil {
		c.size = c.nextSize(full)
	} else {
		c.size = c.pg.batchSize
	}
	return done, last, stepErr
}

// readEvents reads up to n events of tenant after log_seq after, with only
// the columns the rules read; verified[i] says the stored payload text
// hashes to the stored payload_hash (see stepVerified).
func (pg *PG) readEvents(ctx context.Context, tenant string, after int64, n int) ([]*event.StoredEvent, []bool, error) {
	rows, err := pg.pool.Query(ctx, `SELECT `+rebuildColumns+` FROM dg_event_log
		WHERE tenant_id = $1 AND log_seq > $2 ORDER BY log_seq LIMIT $3`, tenant, after, n)
	if err != nil {
		return nil, nil, fmt.Errorf("read events after log_seq %d: %w", after, err)
	}
	c := &logChunk{}
	for rows.Next() {
		c.evs = append(c.evs, event.StoredEvent{TenantID: tenant})
		ev := &c.evs[len(c.evs)-1]
		var raw []byte
		if err := rows.Scan(&ev.LogSeq, &ev.EventID, &ev.TraceID, &ev.TraceSeq, &ev.EventType, &ev.OccurredAt,
			&ev.Actor.ActorType, &ev.Actor.ActorID, &raw, &ev.PayloadHash); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read events after log_seq %d: %w", after, err)
		}
		c.raw = append(c.raw, raw)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read events after log_seq %d: %w", after, err)
	}
	c.decode()
	if c.err != nil && c.errAt == 0 {
		return nil, nil, c.err
	}
	// Events before an undecodable one are projected; the next batch
	// starts at it and reports it.
	evs := make([]*event.StoredEvent, c.errAt)
	for i := range evs {
		evs[i] = &c.evs[i]
	}
	return evs, c.verified[:c.errAt], nil
}

// unknownTraces lists the traces of evs whose next trace_seq the projector
// does not know yet and must read from the log. A trace whose first event
// in evs has trace_seq 0 is known to start after the checkpoint (next 0)
// without a read: trace_seq is unique per trace (dg_event_log_trace_seq),
// and a checkpoint never passes an event out of sequence, so any event of
// the trace at or below the checkpoint would be a second trace_seq 0.
func (c *Catcher) unknownTraces(evs []*event.StoredEvent) []string {
	var unknown []string
	seen := map[string]bool{}
	for _, ev := range evs {
		if seen[ev.TraceID] || c.proj.Known(ev.TraceID) {
			continue
		}
		seen[ev.TraceID] = true
		if ev.TraceSeq == 0 {
			c.proj.SetNext(ev.TraceID, 0)
			continue
		}
		unknown = append(unknown, ev.TraceID)
	}
	return unknown
}

// finishedTraces lists the traces finished in evs when set needs their
// precedent inputs.
func finishedTraces(set Set, evs []*event.StoredEvent) []string {
	if set&SetPrecedentIndex == 0 {
		return nil
	}
	var finished []string
	for _, ev := range evs {
		if ev.EventType == event.TypeTraceFinished {
			finished = append(finished, ev.TraceID)
		}
	}
	return finished
}

// precedentInputsSQL reads the events that the precedent rows of the
// traces $2 are built from (TraceStarted, PolicyEvaluated,
// ExceptionRequested), in one query instead of one per trace: one walk of
// the (tenant_id, trace_id, trace_seq) index per trace. The ORDER BY keeps
// the LATERAL subquery from being flattened into a join; flattened, or
// written trace_id = ANY($2), the planner walked every event of the three
// types through the event_type index whenever its statistics were stale
// (100+ ms a batch at 100k events, right after a bulk load). Rows of one
// trace come out together, in trace_seq order.
const precedentInputsSQL = `SELECT e.trace_id, e.trace_seq, e.event_id, e.event_type, e.log_seq, e.payload::text
	FROM unnest($2::text[]) AS t(trace_id)
	CROSS JOIN LATERAL (SELECT trace_id, trace_seq, event_id, event_type, log_seq, payload FROM dg_event_log l
		WHERE l.tenant_id = $1 AND l.trace_id = t.trace_id
			AND l.event_type IN ('TraceStarted', 'PolicyEvaluated', 'ExceptionRequested')
		ORDER BY l.trace_seq) e`

// readPrecedentInputs collects the rows of precedentInputsSQL by trace.
func readPrecedentInputs(rows pgx.Rows, tenant string, finished []string) (map[string][]event.StoredEvent, error) {
	out := make(map[string][]event.StoredEvent, len(finished))
	for _, t := range finished {
		out[t] = nil
	}
	var ev event.StoredEvent
	var payload []byte
	_, err := pgx.ForEachRow(rows, []any{&ev.TraceID, &ev.TraceSeq, &ev.EventID, &ev.EventType, &ev.LogSeq, &payload}, func() error {
		p, derr := event.DecodePayload(payload)
		if derr != nil {
			return fmt.Errorf("event %s: stored payload: %w", ev.EventID, derr)
		}
		e := ev
		e.TenantID = tenant
		e.Payload = p
		out[ev.TraceID] = append(out[ev.TraceID], e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read precedent inputs: %w", err)
	}
	return out, nil
}

// tracePositionsSQL reads the next trace_seq, at or below the checkpoint
// $2, of the traces $3 that have events there: one backward walk of the
// (tenant_id, trace_id, trace_seq) index per trace, stopped at the first
// event at or below the checkpoint (written as a GROUP BY over
// trace_id = ANY($3), it cost 30+ ms for a thousand traces).
const tracePositionsSQL = `SELECT t.trace_id, p.next FROM unnest($3::text[]) AS t(trace_id)
	CROSS JOIN LATERAL (SELECT l.trace_seq + 1 AS next FROM dg_event_log l
		WHERE l.tenant_id = $1 AND l.trace_id = t.trace_id AND l.log_seq <= $2
		ORDER BY l.trace_seq DESC LIMIT 1) p`

// loadTracker teaches the projector the next trace_seq of the traces
// unknown (0 unless rows, from tracePositionsSQL, say otherwise).
func (c *Catcher) loadTracker(rows pgx.Rows, unknown []string) error {
	for _, t := range unknown {
		c.proj.SetNext(t, 0)
	}
	var trace string
	var next int64
	_, err := pgx.ForEachRow(rows, []any{&trace, &next}, func() error {
		c.proj.SetNext(trace, next)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read trace positions: %w", err)
	}
	return nil
}

// LiveTables reads one tenant's live projection rows.
func (pg *PG) LiveTables(ctx context.Context, tenant string) (*Tables, error) {
	return readTables(ctx, pg.pool, tenant, liveTables, SetAll)
}

// LiveDigests computes the digests of one tenant's live tables.
func (pg *PG) LiveDigests(ctx context.Context, tenant string) (Digests, error) {
	t, err := pg.LiveTables(ctx, tenant)
	if err != nil {
		return Digests{}, err
	}
	return t.Digest(), nil
}

// saveDigests records digests with the checkpoints they belong to.
func saveDigests(ctx context.Context, tx pgx.Tx, tenant string, d Digests, cursors map[string]int64) error {
	minCursor := int64(-1)
	for _, name := range Names() {
		c := cursors[name]
		if minCursor < 0 || c < minCursor {
			minCursor = c
		}
	}
	for _, name := range append(Names(), FullProjection) {
		c := cursors[name]
		if name == FullProjection {
			c = minCursor
		}
		if _, err := tx.Exec(ctx, `INSERT INTO dg_projection_digests (tenant_id, projection_name, digest_value, last_log_seq, updated_at)
			VALUES ($1, $2, $3, $4, now())
			ON CONFLICT (tenant_id, projection_name) DO UPDATE SET digest_value = EXCLUDED.digest_value,
				last_log_seq = EXCLUDED.last_log_seq, updated_at = now()`, tenant, name, d.Of(name), c); err != nil {
			return fmt.Errorf("save digests of tenant %s: %w", tenant, err)
		}
	}
	return nil
}

// RefreshDigests recomputes and stores one tenant's digests from its live
// tables, under every projection's lock so rows and checkpoints agree.
func (pg *PG) RefreshDigests(ctx context.Context, tenant string) (Digests, error) {
	tx, err := pg.pool.Begin(ctx)
	if err != nil {
		return Digests{}, fmt.Errorf("begin digest refresh: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	cursors := map[string]int64{}
	for _, name := range Names() {
		if err := lockScope(ctx, tx, tenant, name); err != nil {
			return Digests{}, err
		}
		if cursors[name], err = pg.Cursor(ctx, tx, tenant, name); err != nil {
			return Digests{}, err
		}
	}
	t, err := readTables(ctx, tx, tenant, liveTables, SetAll)
	if err != nil {
		return Digests{}, err
	}
	d := t.Digest()
	if err := saveDigests(ctx, tx, tenant, d, cursors); err != nil {
		return Digests{}, err
	}
	return d, tx.Commit(ctx)
}

// recordFailure writes (or bumps) the open failure row of a scope.
func (pg *PG) recordFailure(ctx context.Context, tenant, name string, se *StepError, recoverable bool) error {
	code, _ := event.CodeOf(se.Err)
	if code == "" {
		code = event.CodeStorage
	}
	_, err := pg.pool.Exec(ctx, `INSERT INTO dg_projection_failures (tenant_id, projection_name, log_seq, trace_id, event_id,
			error_code, error_message, recoverable, retry_count, status, recorded_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, 'open', now(), now())
		ON CONFLICT (tenant_id, projection_name, log_seq) WHERE status = 'open'
		DO UPDATE SET retry_count = dg_projection_failures.retry_count + 1, error_code = EXCLUDED.error_code,
			error_message = EXCLUDED.error_message, updated_at = now()`,
		tenant, name, se.LogSeq, se.TraceID, se.EventID, string(code), se.Err.Error(), recoverable)
	if err != nil {
		return fmt.Errorf("record projection failure at log_seq %d: %w", se.LogSeq, err)
	}
	return nil
}
