package projection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// rebuildReadBatch is how many events a rebuild reads per query.
const rebuildReadBatch = 5000

// copyFlushRows is how many buffered rows trigger a COPY into the shadow
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
	SwapMillis  int64             `json:"swap_ms"`
	EventsPerS  float64           `json:"events_per_second"`
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

// shadowBuilder projects a log sequentially into the shadow tables with
// COPY. It keeps only what first-writer-wins needs (the ids written so far),
// open traces' summaries and their precedent inputs.
type shadowBuilder struct {
	ctx    context.Context
	tx     pgx.Tx
	tenant string
	set    Set
	proj   *Projector
	traces traceMemory

	nodeSeen, edgeSeen, evalSeen map[string]struct{}
	open                         map[string]*Summary
	nodes, edges, summaries      [][]any
	evals, precs                 [][]any
}

func (b *shadowBuilder) step(ev *event.StoredEvent) error {
	ch, err := b.proj.Step(ev, b.traces.events)
	if err != nil {
		return err
	}
	b.traces.note(ev)
	t := b.tenant
	for _, n := range ch.Nodes {
		if _, ok := b.nodeSeen[n.NodeID]; !ok {
			b.nodeSeen[n.NodeID] = struct{}{}
			b.nodes = append(b.nodes, []any{t, n.NodeID, n.NodeType, n.TraceID, n.LogSeq, n.CreatedAt})
		}
	}
	for _, e := range ch.Edges {
		if _, ok := b.edgeSeen[e.EdgeID]; !ok {
			b.edgeSeen[e.EdgeID] = struct{}{}
			b.edges = append(b.edges, []any{t, e.EdgeID, e.EdgeType, e.FromNodeID, e.ToNodeID, e.TraceID, e.LogSeq, e.CreatedAt})
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
			// A finished trace never changes again: write it out now.
			b.summaries = append(b.summaries, summaryRow(t, row))
			delete(b.open, f.TraceID)
		}
	}
	if pe := ch.PolicyEval; pe != nil {
		if _, ok := b.evalSeen[pe.IndexID]; !ok {
			b.evalSeen[pe.IndexID] = struct{}{}
			b.evals = append(b.evals, []any{t, pe.IndexID, pe.TraceID, pe.PolicyID, pe.PolicyVersion, pe.LogSeq, pe.CreatedAt})
		}
	}
	if ps := ch.Precedents; ps != nil {
		// Only TraceFinished writes precedents, once per trace.
		for _, r := range ps.Rows {
			b.precs = append(b.precs, []any{t, r.SourceEventID, r.LogSeq, r.TraceID, r.PolicyID, r.PolicyVersion,
				r.ExceptionID, r.PrimaryEntityType, r.PrimaryEntitySystem, r.PrimaryEntityID})
		}
	}
	if len(b.nodes)+len(b.edges)+len(b.summaries)+len(b.evals)+len(b.precs) >= copyFlushRows {
		return b.flush()
	}
	return nil
}

func summaryRow(tenant string, s *Summary) []any {
	return []any{tenant, s.TraceID, s.Workflow, s.Title, s.PrimaryEntityType, s.PrimaryEntityID, s.Outcome,
		s.StartedAt, s.FinishedAt, s.EventCount, s.LastLogSeq}
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

func (b *shadowBuilder) flush() error {
	for _, c := range []struct {
		table string
		cols  []string
		rows  *[][]any
	}{
		{shadowTables.nodes, nodeCols, &b.nodes},
		{shadowTables.edges, edgeCols, &b.edges},
		{shadowTables.summary, summaryCols, &b.summaries},
		{shadowTables.policyEval, evalCols, &b.evals},
		{shadowTables.precedent, precCols, &b.precs},
	} {
		if len(*c.rows) == 0 {
			continue
		}
		if _, err := b.tx.CopyFrom(b.ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(*c.rows)); err != nil {
			return fmt.Errorf("copy into %s: %w", c.table, err)
		}
		*c.rows = (*c.rows)[:0]
	}
	return nil
}

func (b *shadowBuilder) finish() error {
	for _, s := range b.open {
		b.summaries = append(b.summaries, summaryRow(b.tenant, s))
	}
	b.open = map[string]*Summary{}
	return b.flush()
}

func clearShadow(ctx context.Context, tx pgx.Tx, tenant string, set Set) error {
	for _, table := range shadowTables.of(set) {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE tenant_id = $1`, table), tenant); err != nil {
			return fmt.Errorf("clear %s: %w", table, err)
		}
	}
	return nil
}

// buildShadow projects the tenant's events up to until into the shadow
// tables and returns how many events it read.
func (pg *PG) buildShadow(ctx context.Context, tenant string, set Set, until int64, progress func(events int, logSeq int64)) (int, error) {
	tx, err := pg.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin shadow build: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if err := clearShadow(ctx, tx, tenant, SetAll); err != nil {
		return 0, err
	}
	b := &shadowBuilder{ctx: ctx, tx: tx, tenant: tenant, set: set, proj: NewProjector(set), traces: traceMemory{},
		nodeSeen: map[string]struct{}{}, edgeSeen: map[string]struct{}{}, evalSeen: map[string]struct{}{}, open: map[string]*Summary{}}
	// A reader goroutine fetches (and decodes) the next batch while this
	// one is projected and copied.
	type batch struct {
		evs []*event.StoredEvent
		err error
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan batch, 2)
	go func() {
		defer close(batches)
		after := int64(0)
		for after < until {
			evs, err := pg.st.ReadBatch(rctx, tenant, after, rebuildReadBatch)
			select {
			case batches <- batch{evs, err}:
			case <-rctx.Done():
				return
			}
			if err != nil || len(evs) < rebuildReadBatch {
				return
			}
			after = evs[len(evs)-1].LogSeq
		}
	}()
	count := 0
	for bt := range batches {
		if bt.err != nil {
			return count, bt.err
		}
		for _, ev := range bt.evs {
			if ev.LogSeq > until {
				break
			}
			if err := b.step(ev); err != nil {
				return count, fmt.Errorf("rebuild stopped: %w", err)
			}
			count++
			if progress != nil && count%100000 == 0 {
				progress(count, ev.LogSeq)
			}
		}
	}
	if err := b.finish(); err != nil {
		return count, err
	}
	return count, tx.Commit(ctx)
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

// rebuildLocked is the part of a rebuild done under the tenant's rebuild
// lock.
func (pg *PG) rebuildLocked(ctx context.Context, o RebuildOptions, set Set, head int64, snap pgx.Tx, rep *RebuildReport) (*RebuildReport, error) {
	start := time.Now()
	n, err := pg.buildShadow(ctx, o.Tenant, set, head, o.Progress)
	rep.Events = n
	if err != nil {
		return rep, err
	}
	rebuiltTables, err := readTables(ctx, pg.pool, o.Tenant, shadowTables, set)
	if err != nil {
		return rep, err
	}
	rebuilt := rebuiltTables.Digest()
	rep.BuildTime = time.Since(start)
	rep.BuildMillis = rep.BuildTime.Milliseconds()
	if s := rep.BuildTime.Seconds(); s > 0 {
		rep.EventsPerS = float64(n) / s
	}

	var live Digests
	var liveTables *Tables
	if snap != nil {
		live, liveTables, err = readSnapshot(ctx, pg, snap, o.Tenant, set, rep.LiveCursors)
	} else {
		live, liveTables, err = pg.liveSnapshot(ctx, o.Tenant, set, rep.LiveCursors)
	}
	if err != nil {
		return rep, err
	}
	for _, name := range rep.Projections {
		rep.Rebuilt[name], rep.Live[name] = rebuilt.Of(name), live.Of(name)
		if rebuilt.Of(name) != live.Of(name) {
			rep.Differences = append(rep.Differences, Difference{Projection: name, Live: live.Of(name), Rebuilt: rebuilt.Of(name),
				FirstRow: FirstDifference(name, liveTables, rebuiltTables)})
		}
	}
	if set == SetAll {
		rep.Rebuilt[FullProjection], rep.Live[FullProjection] = rebuilt.FullProjection, live.FullProjection
	}
	if o.DryRun {
		return rep, pg.dropShadow(ctx, o.Tenant)
	}
	// A projection whose live rows already equal the rebuild at the same
	// checkpoint keeps its rows: copying identical rows would only cost.
	// The policy-eval index is not digested, so precedent_index is always
	// copied.
	same := map[string]int64{}
	for _, name := range []string{ContextGraph, TraceSummary} {
		if m, _ := SetOf(name); set&m != 0 && rebuilt.Of(name) == live.Of(name) && rep.LiveCursors[name] == head {
			same[name] = head
		}
	}
	swapStart := time.Now()
	if err := pg.swap(ctx, o.Tenant, set, head, same); err != nil {
		return rep, err
	}
	rep.Swapped = true
	rep.SwapMillis = time.Since(swapStart).Milliseconds()
	if err := pg.saveRebuiltDigests(ctx, o.Tenant, set, rebuilt, head); err != nil {
		return rep, err
	}
	return rep, pg.dropShadow(ctx, o.Tenant)
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

func (pg *PG) dropShadow(ctx context.Context, tenant string) error {
	tx, err := pg.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin shadow cleanup: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if err := clearShadow(ctx, tx, tenant, SetAll); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// swap replaces a tenant's live rows of the projections in set by the
// shadow rows, in one transaction under the projections' locks.
//
// Projections in same (name -> checkpoint seen with equal digests) keep
// their rows if their checkpoint has not moved since.
func (pg *PG) swap(ctx context.Context, tenant string, set Set, head int64, same map[string]int64) error {
	tx, err := pg.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin swap: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	copySet := set
	for _, name := range set.names() {
		if err := lockScope(ctx, tx, tenant, name); err != nil {
			return err
		}
		if seen, ok := same[name]; ok {
			c, err := pg.Cursor(ctx, tx, tenant, name)
			if err != nil {
				return err
			}
			if c == seen {
				m, _ := SetOf(name)
				copySet &^= m
			}
		}
	}
	for _, table := range liveTables.of(copySet) {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE tenant_id = $1`, table), tenant); err != nil {
			return fmt.Errorf("clear %s: %w", table, err)
		}
	}
	shadowOf := map[string]string{}
	for i, l := range liveTables.of(SetAll) {
		shadowOf[l] = shadowTables.of(SetAll)[i]
	}
	cols := map[string][]string{liveTables.nodes: nodeCols, liveTables.edges: edgeCols, liveTables.summary: summaryCols,
		liveTables.policyEval: evalCols, liveTables.precedent: precCols}
	live := liveTables.of(copySet)
	// Insert in reverse of the delete order so nodes precede the edges that
	// reference them.
	for i := len(live) - 1; i >= 0; i-- {
		table := live[i]
		list := strings.Join(cols[table], ", ")
		// Key order keeps the primary-key index inserts local.
		key := strings.Split(list, ", ")[1]
		if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s WHERE tenant_id = $1 ORDER BY %s`, table, list, list, shadowOf[table], key), tenant); err != nil {
			return fmt.Errorf("swap rebuilt rows into %s: %w", table, err)
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
	// A swap replaces many rows at once: refresh planner statistics now
	// rather than when autovacuum gets to it, so queries keep good plans.
	for _, table := range live {
		if _, err := pg.pool.Exec(ctx, "ANALYZE "+table); err != nil {
			return fmt.Errorf("analyze %s after the swap: %w", table, err)
		}
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
