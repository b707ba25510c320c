package projection

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// rebuildPage is how many events one read query of a rebuild returns
// (rows stream while they are decoded; pages bound a query's lifetime).
const rebuildPage = 50000

// decodeChunk is how many events a decoding worker takes at a time.
const decodeChunk = 1024

// copyFlushRows is how many buffered rows trigger a COPY into the rebuild
// tables.
const copyFlushRows = 20000

// RebuildOptions select what a rebuild does.
type RebuildOptions struct {
	Tenant string
	// Set selects the projections (0 means all).
	Set Set
	// DryRun builds and compares but never swaps.
	DryRun bool
	// Until stops the rebuild at this log_seq when HasUntil is set;
	// otherwise the rebuild goes to the tenant's head when it starts.
	Until    int64
	HasUntil bool
	// Progress, when set, is called every 100,000 events projected.
	Progress func(events int, logSeq int64)

	verify bool // recorded as mode "verify" in dg_projection_runs
}

// Difference is one projection whose rebuilt digest differs from the live one.
type Difference struct {
	Projection string `json:"projection"`
	Live       string `json:"live_digest"`
	Rebuilt    string `json:"rebuilt_digest"`
	// FirstRow names the first differing row in digest order.
	FirstRow string `json:"first_row"`
}

// RebuildReport says what a rebuild found and did.
type RebuildReport struct {
	JobID       string            `json:"job_id"`
	Tenant      string            `json:"tenant"`
	Projections []string          `json:"projections"`
	Head        int64             `json:"head"`
	Events      int               `json:"events"`
	LiveCursors map[string]int64  `json:"live_cursors"`
	Live        map[string]string `json:"live_digests"`
	Rebuilt     map[string]string `json:"rebuilt_digests"`
	Differences []Difference      `json:"differences"`
	DryRun      bool              `json:"dry_run"`
	Swapped     bool              `json:"swapped"`
	BuildTime   time.Duration     `json:"-"`
	BuildMillis int64             `json:"build_ms"`
	// ProjectMillis (read, decode, project, copy) and IndexMillis (index
	// builds and digests, concurrently) are the parts of BuildMillis.
	ProjectMillis int64   `json:"project_ms"`
	IndexMillis   int64   `json:"index_ms"`
	SwapMillis    int64   `json:"swap_ms"`
	EventsPerS    float64 `json:"events_per_second"`
}

func (s Set) names() []string {
	var out []string
	for _, n := range Names() {
		if m, _ := SetOf(n); s&m != 0 {
			out = append(out, n)
		}
	}
	return out
}

// rebuildColumns are the columns of dg_event_log the rules read.
const rebuildColumns = `log_seq, event_id, trace_id, trace_seq, event_type, occurred_at, actor_type, actor_id, payload::text, payload_hash`

// logChunk is a run of consecutive events read for a rebuild, decoded by
// a worker while the events before it are projected.
type logChunk struct {
	evs []event.StoredEvent
	raw [][]byte
	// verified[i]: the stored payload text hashes to the stored
	// payload_hash, so the payload needs no canonical re-encoding to be
	// checked (see stepVerified).
	verified []bool
	errAt    int // events from errAt on are not usable (len(evs) when all are)
	err      error
	done     chan struct{}
}

func (c *logChunk) decode() {
	c.verified = make([]bool, len(c.evs))
	c.errAt = len(c.evs)
	for i := range c.evs {
		ev := &c.evs[i]
		c.verified[i] = rawHashMatches(c.raw[i], ev.PayloadHash)
		p, err := event.DecodePayload(c.raw[i])
		if err != nil {
			c.errAt = i
			c.err = &event.Error{Code: event.CodeStorage, Message: fmt.Sprintf("event log_seq %d: stored payload is not a JSON object: %v", ev.LogSeq, err)}
			return
		}
		ev.Payload = p
		c.raw[i] = nil
	}
}

// rawHashMatches reports whether sha256(raw) is the stored payload hash
// ("sha256:" + 64 lowercase hex digits).
func rawHashMatches(raw []byte, stored string) bool {
	const prefix = "sha256:"
	if len(stored) != len(prefix)+64 || stored[:len(prefix)] != prefix {
		return false
	}
	sum := sha256.Sum256(raw)
	var hx [64]byte
	hex.Encode(hx[:], sum[:])
	return string(hx[:]) == stored[len(prefix):]
}

// stepVerified is Projector.Step for an event whose stored payload text
// was found to hash to its stored payload_hash. The appender stores the
// canonical JSON text that payload_hash covers, and canonical JSON
// re-encodes to itself, so Step's check (re-encode the decoded payload
// canonically and hash it) would pass: only the trace_seq check and the
// rules remain. Events whose text does not match go through Step, which
// decides (and reports a mismatch exactly as before).
func stepVerified(p *Projector, ev *event.StoredEvent, traces TraceEvents) (Changes, error) {
	expected := p.next[ev.TraceID]
	if ev.TraceSeq != expected {
		return Changes{}, &StepError{EventID: ev.EventID, LogSeq: ev.LogSeq, TraceID: ev.TraceID,
			Err: &event.Error{Code: event.CodeEventSequenceInvalid, Message: fmt.Sprintf("trace_seq %d, expected %d", ev.TraceSeq, expected)}}
	}
	ch, err := rules(ev, p.set, traces)
	if err != nil {
		return Changes{}, &StepError{EventID: ev.EventID, LogSeq: ev.LogSeq, TraceID: ev.TraceID, Err: err}
	}
	p.next[ev.TraceID] = expected + 1
	return ch, nil
}

// readLog streams the tenant's events with log_seq <= until, in log_seq
// order, to fn. One goroutine reads pages of rows, workers decode chunks of
// them in parallel, and fn sees them in order on the calling goroutine.
func (pg *PG) readLog(ctx context.Context, tenant string, until int64, fn func(ev *event.StoredEvent, verified bool) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *logChunk, 4)
	ordered := make(chan *logChunk, 8)
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), 4)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				c.decode()
				close(c.done)
			}
		}()
	}
	defer wg.Wait()
	readErr := make(chan error, 1)
	go func() {
		defer close(jobs)
		defer close(ordered)
		readErr <- pg.scanLog(ctx, tenant, until, func(c *logChunk) bool {
			select {
			case ordered <- c:
			case <-ctx.Done():
				return false
			}
			select {
			case jobs <- c:
			case <-ctx.Done():
				return false
			}
			return true
		})
	}()
	for c := range ordered {
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		for i := 0; i < c.errAt; i++ {
			if err := fn(&c.evs[i], c.verified[i]); err != nil {
				return err
			}
		}
		if c.err != nil {
			return c.err
		}
	}
	return <-readErr
}

// scanLog reads the events page by page into chunks handed to emit (which
// returns false to stop).
func (pg *PG) scanLog(ctx context.Context, tenant string, until int64, emit func(*logChunk) bool) error {
	after := int64(0)
	for after < until {
		rows, err := pg.pool.Query(ctx, `SELECT `+rebuildColumns+` FROM dg_event_log
			WHERE tenant_id = $1 AND log_seq > $2 AND log_seq <= $3 ORDER BY log_seq LIMIT $4`, tenant, after, until, rebuildPage)
		if err != nil {
			return fmt.Errorf("read events after log_seq %d: %w", after, err)
		}
		n := 0
		c := &logChunk{evs: make([]event.StoredEvent, 0, decodeChunk), raw: make([][]byte, 0, decodeChunk), done: make(chan struct{})}
		for rows.Next() {
			c.evs = append(c.evs, event.StoredEvent{TenantID: tenant})
			ev := &c.evs[len(c.evs)-1]
			var raw []byte
			if err := rows.Scan(&ev.LogSeq, &ev.EventID, &ev.TraceID, &ev.TraceSeq, &ev.EventType, &ev.OccurredAt,
				&ev.Actor.ActorType, &ev.Actor.ActorID, &raw, &ev.PayloadHash); err != nil {
				rows.Close()
				return fmt.Errorf("read events after log_seq %d: %w", after, err)
			}
			c.raw = append(c.raw, raw)
			n++
			after = ev.LogSeq
			if len(c.evs) == decodeChunk {
				if !emit(c) {
					rows.Close()
					return ctx.Err()
				}
				c = &logChunk{evs: make([]event.StoredEvent, 0, decodeChunk), raw: make([][]byte, 0, decodeChunk), done: make(chan struct{})}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read events after log_seq %d: %w", after, err)
		}
		if len(c.evs) > 0 && !emit(c) {
			return ctx.Err()
		}
		if n < rebuildPage {
			return nil
		}
	}
	return nil
}

// rebuildBuilder projects a log sequentially and keeps every row in memory
// (first writer wins on ids; a summary is kept open until its trace
// finishes). The rows give the rebuilt digests directly; unless the
// rebuild is a dry run they are also streamed to the copier.
type rebuildBuilder struct {
	tenant string
	proj   *Projector
	traces traceMemory

	nodeSeen, edgeSeen, evalSeen map[string]struct{}
	open                         map[string]*Summary
	rows                         Tables
	evals                        []PolicyEval

	copier  *shadowCopier // nil for a dry run
	flushed [5]int        // rows of nodes, edges, summaries, evals, precedents handed to the copier
}

func newRebuildBuilder(tenant string, set Set, copier *shadowCopier) *rebuildBuilder {
	return &rebuildBuilder{tenant: tenant, proj: NewProjector(set), traces: traceMemory{}, copier: copier,
		nodeSeen: map[string]struct{}{}, edgeSeen: map[string]struct{}{}, evalSeen: map[string]struct{}{}, open: map[string]*Summary{}}
}

func (b *rebuildBuilder) step(ev *event.StoredEvent, verified bool) error {
	var ch Changes
	var err error
	if verified {
		ch, err = stepVerified(b.proj, ev, b.traces.events)
	} else {
		ch, err = b.proj.Step(ev, b.traces.events)
	}
	if err != nil {
		return err
	}
	b.traces.note(ev)
	for _, n := range ch.Nodes {
		if _, ok := b.nodeSeen[n.NodeID]; !ok {
			b.nodeSeen[n.NodeID] = struct{}{}
			b.rows.Nodes = append(b.rows.Nodes, n)
		}
	}
	for _, e := range ch.Edges {
		if _, ok := b.edgeSeen[e.EdgeID]; !ok {
			b.edgeSeen[e.EdgeID] = struct{}{}
			b.rows.Edges = append(b.rows.Edges, e)
		}
	}
	if s := ch.StartSummary; s != nil {
		if old, ok := b.open[s.TraceID]; ok {
			old.EventCount++
			old.LastLogSeq = s.LastLogSeq
		} else {
			row := *s
			b.open[s.TraceID] = &row
		}
	}
	if f := ch.FinishSummary; f != nil {
		if row, ok := b.open[f.TraceID]; ok {
			outcome, at := f.Outcome, f.FinishedAt
			row.Outcome, row.FinishedAt = &outcome, &at
			row.EventCount++
			row.LastLogSeq = f.LogSeq
			// A finished trace never changes again: it is final now.
			b.rows.Summaries = append(b.rows.Summaries, *row)
			delete(b.open, f.TraceID)
		}
	}
	if pe := ch.PolicyEval; pe != nil {
		if _, ok := b.evalSeen[pe.IndexID]; !ok {
			b.evalSeen[pe.IndexID] = struct{}{}
			b.evals = append(b.evals, *pe)
		}
	}
	if ps := ch.Precedents; ps != nil {
		// Only TraceFinished writes precedents, once per trace.
		b.rows.Precedents = append(b.rows.Precedents, ps.Rows...)
	}
	if b.copier != nil && b.pending() >= copyFlushRows {
		return b.flush()
	}
	return nil
}

func (b *rebuildBuilder) pending() int {
	return len(b.rows.Nodes) - b.flushed[0] + len(b.rows.Edges) - b.flushed[1] + len(b.rows.Summaries) - b.flushed[2] +
		len(b.evals) - b.flushed[3] + len(b.rows.Precedents) - b.flushed[4]
}

// flush hands the rows not yet copied to the copier. The slices are only
// ever appended to, so the copier can read the handed-over part while the
// builder goes on.
func (b *rebuildBuilder) flush() error {
	t := b.tenant
	jobs := []copyJob{
		{liveTables.nodes, nodeCols, &nodeSource{tenant: t, rows: b.rows.Nodes[b.flushed[0]:]}},
		{liveTables.edges, edgeCols, &edgeSource{tenant: t, rows: b.rows.Edges[b.flushed[1]:]}},
		{liveTables.summary, summaryCols, &summarySource{tenant: t, rows: b.rows.Summaries[b.flushed[2]:]}},
		{liveTables.policyEval, evalCols, &evalSource{tenant: t, rows: b.evals[b.flushed[3]:]}},
		{liveTables.precedent, precCols, &precedentSource{tenant: t, rows: b.rows.Precedents[b.flushed[4]:]}},
	}
	b.flushed = [5]int{len(b.rows.Nodes), len(b.rows.Edges), len(b.rows.Summaries), len(b.evals), len(b.rows.Precedents)}
	for _, j := range jobs {
		if j.src.len() == 0 {
			continue
		}
		if err := b.copier.send(j); err != nil {
			return err
		}
	}
	return nil
}

// finish writes out the summaries of traces still open.
func (b *rebuildBuilder) finish() error {
	for _, s := range b.open {
		b.rows.Summaries = append(b.rows.Summaries, *s)
	}
	b.open = map[string]*Summary{}
	if b.copier != nil {
		return b.flush()
	}
	return nil
}

var (
	nodeCols    = []string{"tenant_id", "node_id", "node_type", "trace_id", "log_seq", "created_at"}
	edgeCols    = []string{"tenant_id", "edge_id", "edge_type", "from_node_id", "to_node_id", "trace_id", "log_seq", "created_at"}
	summaryCols = []string{"tenant_id", "trace_id", "workflow", "title", "primary_entity_type", "primary_entity_id", "outcome",
		"started_at", "finished_at", "event_count", "last_log_seq"}
	evalCols = []string{"tenant_id", "index_id", "trace_id", "policy_id", "policy_version", "log_seq", "created_at"}
	precCols = []string{"tenant_id", "source_event_id", "log_seq", "trace_id", "policy_id", "policy_version",
		"exception_id", "primary_entity_type", "primary_entity_system", "primary_entity_id"}
)

// rowSource is a pgx.CopyFromSource over one slice of typed rows.
type rowSource interface {
	pgx.CopyFromSource
	len() int
}

type nodeSource struct {
	tenant string
	rows   []Node
	i      int
	vals   []any
}

func (s *nodeSource) len() int   { return len(s.rows) }
func (s *nodeSource) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *nodeSource) Err() error { return nil }
func (s *nodeSource) Values() ([]any, error) {
	n := &s.rows[s.i-1]
	s.vals = append(s.vals[:0], s.tenant, n.NodeID, n.NodeType, n.TraceID, n.LogSeq, n.CreatedAt)
	return s.vals, nil
}

type edgeSource struct {
	tenant string
	rows   []Edge
	i      int
	vals   []any
}

func (s *edgeSource) len() int   { return len(s.rows) }
func (s *edgeSource) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *edgeSource) Err() error { return nil }
func (s *edgeSource) Values() ([]any, error) {
	e := &s.rows[s.i-1]
	s.vals = append(s.vals[:0], s.tenant, e.EdgeID, e.EdgeType, e.FromNodeID, e.ToNodeID, e.TraceID, e.LogSeq, e.CreatedAt)
	return s.vals, nil
}

type summarySource struct {
	tenant string
	rows   []Summary
	i      int
	vals   []any
}

func (s *summarySource) len() int   { return len(s.rows) }
func (s *summarySource) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *summarySource) Err() error { return nil }
func (s *summarySource) Values() ([]any, error) {
	r := &s.rows[s.i-1]
	s.vals = append(s.vals[:0], s.tenant, r.TraceID, r.Workflow, r.Title, r.PrimaryEntityType, r.PrimaryEntityID, r.Outcome,
		r.StartedAt, r.FinishedAt, r.EventCount, r.LastLogSeq)
	return s.vals, nil
}

type evalSource struct {
	tenant string
	rows   []PolicyEval
	i      int
	vals   []any
}

func (s *evalSource) len() int   { return len(s.rows) }
func (s *evalSource) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *evalSource) Err() error { return nil }
func (s *evalSource) Values() ([]any, error) {
	r := &s.rows[s.i-1]
	s.vals = append(s.vals[:0], s.tenant, r.IndexID, r.TraceID, r.PolicyID, r.PolicyVersion, r.LogSeq, r.CreatedAt)
	return s.vals, nil
}

type precedentSource struct {
	tenant string
	rows   []Precedent
	i      int
	vals   []any
}

func (s *precedentSource) len() int   { return len(s.rows) }
func (s *precedentSource) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *precedentSource) Err() error { return nil }
func (s *precedentSource) Values() ([]any, error) {
	r := &s.rows[s.i-1]
	s.vals = append(s.vals[:0], s.tenant, r.SourceEventID, r.LogSeq, r.TraceID, r.PolicyID, r.PolicyVersion,
		r.ExceptionID, r.PrimaryEntityType, r.PrimaryEntitySystem, r.PrimaryEntityID)
	return s.vals, nil
}

type copyJob struct {
	table string // live table the rows belong to
	cols  []string
	src   rowSource
}

// shadowCopier owns the rebuild's tables (one fresh table per live table,
// in partSchema, named <code>_<tenant key>_<run>) and COPYs rows into them
// from its own goroutine and connection, so Postgres ingests while Go
// projects.
type shadowCopier struct {
	conn   *pgx.Conn
	names  map[string]string // live table -> rebuild table (unqualified)
	jobs   chan copyJob
	done   chan struct{}
	err    error // set before done is closed
	cancel context.CancelFunc
}

func (c *shadowCopier) send(j copyJob) error {
	select {
	case c.jobs <- j:
		return nil
	case <-c.done:
		return c.err
	}
}

// wait closes the job queue and waits for the copies to end.
func (c *shadowCopier) wait() error {
	close(c.jobs)
	<-c.done
	return c.err
}

func (c *shadowCopier) run(ctx context.Context) {
	defer close(c.done)
	for j := range c.jobs {
		if c.err != nil {
			continue // drain
		}
		if _, err := c.conn.CopyFrom(ctx, pgx.Identifier{partSchema, c.names[j.table]}, j.cols, j.src); err != nil {
			c.err = fmt.Errorf("copy into the rebuilt %s: %w", j.table, err)
			c.cancel()
		}
	}
}

// shadowName is the name of a rebuild table of one run.
func shadowName(table, tenant, run string) string { return partName(table, tenant) + "_" + run }

// newShadowCopier creates the rebuild tables of the tables in set (with a
// CHECK constraint on the tenant, so ATTACH PARTITION needs no validation
// scan) and starts the copier. cancel is called when a copy fails.
func (pg *PG) newShadowCopier(ctx context.Context, tenant string, set Set, cancel context.CancelFunc) (*shadowCopier, error) {
	var rb [4]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, err
	}
	run := hex.EncodeToString(rb[:])
	conn, err := pg.dedicatedConn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open a connection for the rebuild copy: %w", err)
	}
	c := &shadowCopier{conn: conn, names: map[string]string{}, jobs: make(chan copyJob, 8), done: make(chan struct{}), cancel: cancel}
	for _, table := range liveTables.of(set) {
		name := shadowName(table, tenant, run)
		if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS, CHECK (tenant_id = %s))`,
			qualified(name), table, quoteLiteral(tenant))); err != nil {
			c.names[table] = name
			pg.dropTables(c.names)
			_ = conn.Close(context.Background())
			return nil, fmt.Errorf("create the rebuild table for %s: %w", table, err)
		}
		c.names[table] = name
	}
	go c.run(ctx)
	return c, nil
}

// dedicatedConn opens a session outside the pool (long COPYs and index
// builds must not hold the pool's connections, which appends need).
func (pg *PG) dedicatedConn(ctx context.Context) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, pg.pool.Config().ConnConfig.Copy())
}

// dropTables drops rebuild tables (best effort: a later rebuild of the
// tenant drops leftovers).
func (pg *PG) dropTables(names map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range names {
		_, _ = pg.pool.Exec(ctx, `DROP TABLE IF EXISTS `+qualified(name))
	}
}

// dropStaleShadows drops rebuild tables of the tenant left by a run that
// died (the caller holds the tenant's rebuild lock, so no run is live).
func (pg *PG) dropStaleShadows(ctx context.Context, tenant string) error {
	key := tenantKey(tenant)
	rows, err := pg.pool.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT c.relispartition AND c.relname ~ ('^[a-z_]+_' || $2 || '_[0-9a-f]{8}$')`, partSchema, key)
	if err != nil {
		return fmt.Errorf("list leftover rebuild tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list leftover rebuild tables: %w", err)
	}
	for _, name := range names {
		if _, err := pg.pool.Exec(ctx, `DROP TABLE IF EXISTS `+qualified(name)); err != nil {
			return fmt.Errorf("drop leftover rebuild table %s: %w", name, err)
		}
	}
	return nil
}

// indexDef is one index of a live table, as a statement template for a
// rebuild table: constraint holds "PRIMARY KEY (...)"-style text for
// constraint indexes, else body holds what follows "USING" in the index
// definition.
type indexDef struct {
	constraint string
	unique     bool
	body       string
}

// liveIndexDefs reads (once) the index definitions of the partitioned live
// tables, so rebuild tables get exactly the indexes ATTACH PARTITION
// matches with the parents' (and none has to be built during the swap).
func (pg *PG) liveIndexDefs(ctx context.Context, table string) ([]indexDef, error) {
	pg.indexMu.Lock()
	defer pg.indexMu.Unlock()
	if d, ok := pg.indexDefs[table]; ok {
		return d, nil
	}
	rows, err := pg.pool.Query(ctx, `SELECT pg_get_indexdef(i.indexrelid), i.indisunique, COALESCE(c.contype::text, ''), COALESCE(pg_get_constraintdef(c.oid), '')
		FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
		WHERE i.indrelid = $1::regclass ORDER BY i.indisprimary DESC, i.indexrelid`, table)
	if err != nil {
		return nil, fmt.Errorf("read index definitions of %s: %w", table, err)
	}
	var defs []indexDef
	var def, contype, condef string
	var unique bool
	_, err = pgx.ForEachRow(rows, []any{&def, &unique, &contype, &condef}, func() error {
		switch contype {
		case "p", "u":
			defs = append(defs, indexDef{constraint: condef})
		default:
			_, body, ok := strings.Cut(def, " USING ")
			if !ok {
				return fmt.Errorf("unexpected index definition %q", def)
			}
			defs = append(defs, indexDef{unique: unique, body: body})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read index definitions of %s: %w", table, err)
	}
	if pg.indexDefs == nil {
		pg.indexDefs = map[string][]indexDef{}
	}
	pg.indexDefs[table] = defs
	return defs, nil
}

// indexShadows builds the live tables' indexes on the rebuild tables and
// analyzes them, over two sessions.
func (pg *PG) indexShadows(ctx context.Context, names map[string]string) error {
	var stmts []string
	// Largest tables first, so the two sessions finish together.
	for _, table := range []string{liveTables.edges, liveTables.nodes, liveTables.precedent, liveTables.summary, liveTables.policyEval} {
		name, ok := names[table]
		if !ok {
			continue
		}
		defs, err := pg.liveIndexDefs(ctx, table)
		if err != nil {
			return err
		}
		for _, d := range defs {
			switch {
			case d.constraint != "":
				stmts = append(stmts, fmt.Sprintf(`ALTER TABLE %s ADD %s`, qualified(name), d.constraint))
			case d.unique:
				stmts = append(stmts, fmt.Sprintf(`CREATE UNIQUE INDEX ON %s USING %s`, qualified(name), d.body))
			default:
				stmts = append(stmts, fmt.Sprintf(`CREATE INDEX ON %s USING %s`, qualified(name), d.body))
			}
		}
		stmts = append(stmts, `ANALYZE `+qualified(name))
	}
	work := make(chan string, len(stmts))
	for _, s := range stmts {
		work <- s
	}
	close(work)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			errs <- func() error {
				conn, err := pg.dedicatedConn(ctx)
				if err != nil {
					return fmt.Errorf("open a connection for index builds: %w", err)
				}
				defer conn.Close(context.Background()) //nolint:errcheck
				// The rebuilt tables' first statistics come from a 6,000-row
				// sample (target 20) instead of 30,000: a third of the CPU and
				// a quarter of the time on a 100k-event log, and the live
				// queries look rows up by keys and by columns with few values.
				// Autovacuum's later analyzes use the configured target.
				if _, err := conn.Exec(ctx, `SET maintenance_work_mem = '256MB'; SET default_statistics_target = 20`); err != nil {
					return err
				}
				for s := range work {
					if _, err := conn.Exec(ctx, s); err != nil {
						cancel()
						return fmt.Errorf("index the rebuilt rows (%s): %w", s, err)
					}
				}
				return nil
			}()
		}()
	}
	return errors.Join(<-errs, <-errs)
}

// digestSorted sorts the tables' slices concurrently and digests them.
func digestSorted(t *Tables) Digests {
	var wg sync.WaitGroup
	for _, f := range []func(){
		func() { sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].NodeID < t.Nodes[j].NodeID }) },
		func() { sort.Slice(t.Edges, func(i, j int) bool { return t.Edges[i].EdgeID < t.Edges[j].EdgeID }) },
		func() {
			sort.Slice(t.Summaries, func(i, j int) bool { return t.Summaries[i].TraceID < t.Summaries[j].TraceID })
		},
		func() {
			sort.Slice(t.Precedents, func(i, j int) bool { return t.Precedents[i].SourceEventID < t.Precedents[j].SourceEventID })
		},
	} {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	wg.Wait()
	return t.Digest() // sorting sorted slices again is linear
}

// buildRebuild projects the tenant's events up to until into memory and,
// unless copier is nil, into the rebuild tables; it returns the rows and
// how many events it read.
func (pg *PG) buildRebuild(ctx context.Context, tenant string, set Set, until int64, copier *shadowCopier, progress func(events int, logSeq int64)) (*rebuildBuilder, int, error) {
	b := newRebuildBuilder(tenant, set, copier)
	count := 0
	err := pg.readLog(ctx, tenant, until, func(ev *event.StoredEvent, verified bool) error {
		if err := b.step(ev, verified); err != nil {
			return fmt.Errorf("rebuild stopped: %w", err)
		}
		count++
		if progress != nil && count%100000 == 0 {
			progress(count, ev.LogSeq)
		}
		return nil
	})
	if err != nil {
		return b, count, err
	}
	return b, count, b.finish()
}

// Rebuild rebuilds projections of one tenant from the start of the log
// into the shadow tables, computes their digests, compares them with the
// live tables and (unless DryRun) swaps the rebuilt rows in, in one
// transaction under the projections' locks, setting their checkpoints to
// the rebuilt position and clearing their failures.
func (pg *PG) Rebuild(ctx context.Context, o RebuildOptions) (*RebuildReport, error) {
	return pg.rebuild(ctx, o, nil)
}

// rebuild is Rebuild comparing with the live tables as seen by snap (a
// REPEATABLE READ transaction opened before the build) when snap is given,
// else with a snapshot taken after the build.
func (pg *PG) rebuild(ctx context.Context, o RebuildOptions, snap pgx.Tx) (*RebuildReport, error) {
	set := o.Set
	if set == 0 {
		set = SetAll
	}
	rep := &RebuildReport{Tenant: o.Tenant, Projections: set.names(), DryRun: o.DryRun,
		LiveCursors: map[string]int64{}, Live: map[string]string{}, Rebuilt: map[string]string{}, Differences: []Difference{}}
	head := o.Until
	if !o.HasUntil {
		h, err := pg.TenantHead(ctx, o.Tenant)
		if err != nil {
			return nil, err
		}
		head = h
	}
	rep.Head = head
	// One rebuild or verify of a tenant at a time: they share its shadow
	// rows. The session lock is held until the shadow rows are dropped.
	conn, err := pg.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("reserve a connection for the rebuild lock: %w", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, batchLockClass, scopeKey(o.Tenant, "shadow")).Scan(&got); err != nil {
		return nil, fmt.Errorf("lock shadow tables of tenant %s: %w", o.Tenant, err)
	}
	if !got {
		return nil, fmt.Errorf("tenant %s: %w", o.Tenant, ErrRebuildLocked)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1, hashtext($2))`, batchLockClass, scopeKey(o.Tenant, "shadow")) //nolint:errcheck
	job := pg.startRun(ctx, conn, o, set, head)
	rep.JobID = job
	rep, err = pg.rebuildLocked(ctx, o, set, head, snap, rep)
	pg.finishRun(conn, job, rep, err)
	return rep, err
}

// liveRead is the live side of a comparison: digests, rows, checkpoints.
type liveRead struct {
	d       Digests
	t       *Tables
	cursors map[string]int64
	err     error
}

// rebuildLocked is the part of a rebuild done under the tenant's rebuild
// lock.
func (pg *PG) rebuildLocked(ctx context.Context, o RebuildOptions, set Set, head int64, snap pgx.Tx, rep *RebuildReport) (*RebuildReport, error) {
	start := time.Now()
	if err := pg.dropStaleShadows(ctx, o.Tenant); err != nil {
		return rep, err
	}
	// The live side is read while the rebuild is built (in its own
	// snapshot, or in snap): the comparison needs both.
	liveCh := make(chan liveRead, 1)
	go func() {
		lr := liveRead{cursors: map[string]int64{}}
		if snap != nil {
			lr.d, lr.t, lr.err = readSnapshot(ctx, pg, snap, o.Tenant, set, lr.cursors)
		} else {
			lr.d, lr.t, lr.err = pg.liveSnapshot(ctx, o.Tenant, set, lr.cursors)
		}
		liveCh <- lr
	}()
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var copier *shadowCopier
	if !o.DryRun {
		err := pg.parts.ensure(ctx, pg.pool, o.Tenant)
		if err == nil {
			copier, err = pg.newShadowCopier(bctx, o.Tenant, set, cancel)
		}
		if err != nil {
			<-liveCh
			return rep, err
		}
		defer copier.conn.Close(context.Background()) //nolint:errcheck
		defer func() {
			if !rep.Swapped {
				pg.dropTables(copier.names)
			}
		}()
	}
	b, n, err := pg.buildRebuild(bctx, o.Tenant, set, head, copier, o.Progress)
	rep.Events = n
	if copier != nil {
		if cerr := copier.wait(); cerr != nil && err == nil || errors.Is(err, context.Canceled) && cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		<-liveCh
		return rep, err
	}
	rep.ProjectMillis = time.Since(start).Milliseconds()

	// Index the rebuilt tables (Postgres) while the digests are computed (Go).
	indexStart := time.Now()
	indexErr := make(chan error, 1)
	if copier != nil {
		go func() { indexErr <- pg.indexShadows(ctx, copier.names) }()
	} else {
		indexErr <- nil
	}
	rebuiltTables := &b.rows
	rebuilt := digestSorted(rebuiltTables)
	lr := <-liveCh
	if err := <-indexErr; err != nil {
		return rep, err
	}
	rep.IndexMillis = time.Since(indexStart).Milliseconds()
	if lr.err != nil {
		return rep, lr.err
	}
	rep.LiveCursors = lr.cursors
	rep.BuildTime = time.Since(start)
	rep.BuildMillis = rep.BuildTime.Milliseconds()
	if s := rep.BuildTime.Seconds(); s > 0 {
		rep.EventsPerS = float64(n) / s
	}
	for _, name := range rep.Projections {
		rep.Rebuilt[name], rep.Live[name] = rebuilt.Of(name), lr.d.Of(name)
		if rebuilt.Of(name) != lr.d.Of(name) {
			rep.Differences = append(rep.Differences, Difference{Projection: name, Live: lr.d.Of(name), Rebuilt: rebuilt.Of(name),
				FirstRow: FirstDifference(name, lr.t, rebuiltTables)})
		}
	}
	if set == SetAll {
		rep.Rebuilt[FullProjection], rep.Live[FullProjection] = rebuilt.FullProjection, lr.d.FullProjection
	}
	if o.DryRun {
		return rep, nil
	}
	swapStart := time.Now()
	if err := pg.swapPartitions(ctx, o.Tenant, set, head, copier.names); err != nil {
		return rep, err
	}
	rep.Swapped = true
	rep.SwapMillis = time.Since(swapStart).Milliseconds()
	return rep, pg.saveRebuiltDigests(ctx, o.Tenant, set, rebuilt, head)
}

// liveSnapshot reads the live rows and checkpoints of a tenant in one
// snapshot.
func (pg *PG) liveSnapshot(ctx context.Context, tenant string, set Set, cursors map[string]int64) (Digests, *Tables, error) {
	tx, err := pg.beginSnapshot(ctx)
	if err != nil {
		return Digests{}, nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	return readSnapshot(ctx, pg, tx, tenant, set, cursors)
}

func (pg *PG) beginSnapshot(ctx context.Context) (pgx.Tx, error) {
	tx, err := pg.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin live snapshot: %w", err)
	}
	return tx, nil
}

// readSnapshot reads checkpoints and rows of the live tables in one
// snapshot transaction.
func readSnapshot(ctx context.Context, pg *PG, tx pgx.Tx, tenant string, set Set, cursors map[string]int64) (Digests, *Tables, error) {
	for _, name := range set.names() {
		c, err := pg.Cursor(ctx, tx, tenant, name)
		if err != nil {
			return Digests{}, nil, err
		}
		cursors[name] = c
	}
	t, err := readTables(ctx, tx, tenant, liveTables, set)
	if err != nil {
		return Digests{}, nil, err
	}
	return t.Digest(), t, nil
}

// swapLockTimeout bounds how long a swap waits for the live tables: it
// needs them exclusively for a moment, and must not queue every reader of
// every tenant behind a long holder (a pg_dump, say) for long.
const swapLockTimeout = "30s"

// swapPartitions makes the rebuild tables the tenant's partitions of the
// live tables of set, in one transaction under the projections' locks:
// the old partitions are detached and dropped, the new ones renamed and
// attached (their indexes match the parents', so nothing is built), the
// checkpoints set to head and the failures cleared. Rows of the tenant
// left in a default partition are deleted (the rebuild replaces them).
func (pg *PG) swapPartitions(ctx context.Context, tenant string, set Set, head int64, names map[string]string) error {
	tx, err := pg.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin swap: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+swapLockTimeout+`'`); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	for _, name := range set.names() {
		if err := lockScope(ctx, tx, tenant, name); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, batchLockClass, partitionsLockKey(tenant)); err != nil {
		return fmt.Errorf("lock partitions of tenant %s: %w", tenant, err)
	}
	var tables []string
	for _, t := range lockOrder {
		if _, ok := names[t]; ok {
			tables = append(tables, t)
		}
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(tables, ", ")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("swap: lock the live tables (another session holds them; retry later): %w", err)
	}
	lit := quoteLiteral(tenant)
	for _, table := range tables {
		part := partName(table, tenant)
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, qualified(part)).Scan(&exists); err != nil {
			return fmt.Errorf("look up partition %s: %w", part, err)
		}
		var stmts []string
		if exists {
			stmts = append(stmts, fmt.Sprintf(`ALTER TABLE %s DETACH PARTITION %s`, table, qualified(part)), `DROP TABLE `+qualified(part))
		}
		stmts = append(stmts,
			fmt.Sprintf(`DELETE FROM %s WHERE tenant_id = %s`, defaultPart(table), lit),
			fmt.Sprintf(`ALTER TABLE %s RENAME TO %s`, qualified(names[table]), pgx.Identifier{part}.Sanitize()),
			fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES IN (%s)`, table, qualified(part), lit))
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("swap the rebuilt rows into %s: %w", table, err)
			}
		}
	}
	for _, name := range set.names() {
		if err := setCursor(ctx, tx, tenant, name, head); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dg_projection_failures WHERE tenant_id = $1 AND projection_name = $2`, tenant, name); err != nil {
			return fmt.Errorf("clear failures of %s: %w", name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit swap: %w", err)
	}
	return nil
}

// ErrRebuildLocked means another rebuild or verify of the tenant is running.
var ErrRebuildLocked = errors.New("another rebuild or verify of this tenant is running; wait for it to finish and retry")

// Verify rebuilds the selected projections of a tenant in the shadow
// tables, each up to its live checkpoint, and compares digests without
// swapping. The report's Differences is empty when derived state equals a
// rebuild of the log.
func (pg *PG) Verify(ctx context.Context, tenant string, set Set) (*RebuildReport, error) {
	if set == 0 {
		set = SetAll
	}
	// The live side is one snapshot taken before building, so workers that
	// move on meanwhile cannot make the comparison race.
	snap, err := pg.beginSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer snap.Rollback(ctx) //nolint:errcheck
	cursors := map[string]int64{}
	for _, name := range set.names() {
		c, err := pg.Cursor(ctx, snap, tenant, name)
		if err != nil {
			return nil, err
		}
		cursors[name] = c
	}
	same := true
	for _, name := range set.names() {
		same = same && cursors[name] == cursors[set.names()[0]]
	}
	if same {
		return pg.rebuild(ctx, RebuildOptions{Tenant: tenant, Set: set, DryRun: true, Until: cursors[set.names()[0]], HasUntil: true, verify: true}, snap)
	}
	// Checkpoints differ: verify each projection at its own position.
	var merged *RebuildReport
	for _, name := range set.names() {
		one, _ := SetOf(name)
		rep, err := pg.rebuild(ctx, RebuildOptions{Tenant: tenant, Set: one, DryRun: true, Until: cursors[name], HasUntil: true, verify: true}, snap)
		if err != nil {
			return rep, err
		}
		if merged == nil {
			merged = rep
			merged.Projections = set.names()
			continue
		}
		merged.Events += rep.Events
		merged.BuildMillis += rep.BuildMillis
		merged.Head = max(merged.Head, rep.Head)
		for k, v := range rep.LiveCursors {
			merged.LiveCursors[k] = v
		}
		for k, v := range rep.Live {
			merged.Live[k] = v
		}
		for k, v := range rep.Rebuilt {
			merged.Rebuilt[k] = v
		}
		merged.Differences = append(merged.Differences, rep.Differences...)
	}
	return merged, nil
}

// saveRebuiltDigests records the digests of freshly swapped projections
// (their rows are exactly the rebuilt ones, at checkpoint head), without
// reading the tables again. full_projection is recorded when all three
// were rebuilt.
func (pg *PG) saveRebuiltDigests(ctx context.Context, tenant string, set Set, d Digests, head int64) error {
	names := set.names()
	if set == SetAll {
		names = append(names, FullProjection)
	}
	for _, name := range names {
		if _, err := pg.pool.Exec(ctx, `INSERT INTO dg_projection_digests (tenant_id, projection_name, digest_value, last_log_seq, updated_at)
			VALUES ($1, $2, $3, $4, now())
			ON CONFLICT (tenant_id, projection_name) DO UPDATE SET digest_value = EXCLUDED.digest_value,
				last_log_seq = EXCLUDED.last_log_seq, updated_at = now()`, tenant, name, d.Of(name), head); err != nil {
			return fmt.Errorf("save digests of tenant %s: %w", tenant, err)
		}
	}
	return nil
}

// startRun records a rebuild or verify in dg_projection_runs as running.
// Its caller holds the tenant's rebuild lock, so any run of the tenant
// still marked queued or running belongs to a process that died: those are
// closed as failed ("orphaned") first. Bookkeeping failures are not fatal.
func (pg *PG) startRun(ctx context.Context, conn *pgxpool.Conn, o RebuildOptions, set Set, head int64) string {
	if _, err := conn.Exec(ctx, `UPDATE dg_projection_runs SET status = 'failed', error_code = 'orphaned',
			error_message = 'the process running it stopped before it finished', finished_at = now()
		WHERE tenant_id = $1 AND status IN ('queued', 'running')`, o.Tenant); err != nil {
		return ""
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return ""
	}
	job := "run-" + hex.EncodeToString(b[:])
	name := "all"
	if set != SetAll {
		name = strings.Join(set.names(), "+")
	}
	mode := "rebuild"
	if o.verify {
		mode = "verify"
	}
	meta := fmt.Sprintf(`{"dry_run":%t}`, o.DryRun)
	if _, err := conn.Exec(ctx, `INSERT INTO dg_projection_runs (job_id, tenant_id, projection_name, mode, status, started_at,
			since_log_seq, until_log_seq, metadata_json) VALUES ($1, $2, $3, $4, 'running', now(), 0, $5, $6)`,
		job, o.Tenant, name, mode, head, meta); err != nil {
		return ""
	}
	return job
}

// finishRun closes a run row as completed or failed.
func (pg *PG) finishRun(conn *pgxpool.Conn, job string, rep *RebuildReport, runErr error) {
	if job == "" || rep == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, code, msg := "completed", (*string)(nil), (*string)(nil)
	if runErr != nil {
		status = "failed"
		c, ok := event.CodeOf(runErr)
		if !ok {
			c = event.CodeStorage
		}
		cs, m := c.Name(), runErr.Error()
		code, msg = &cs, &m
	}
	_, _ = conn.Exec(ctx, `UPDATE dg_projection_runs SET status = $2, finished_at = now(), processed_events = $3,
		last_log_seq = $4, error_code = $5, error_message = $6 WHERE job_id = $1`, job, status, rep.Events, rep.Head, code, msg)
}
