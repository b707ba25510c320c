package projection

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgTables names the five live projection tables. Since migration 0006
// each is partitioned by LIST (tenant_id) with one partition per tenant in
// schema partSchema (see partitions below).
type pgTables struct {
	nodes, edges, summary, policyEval, precedent string
}

var liveTables = pgTables{"dg_cg_nodes", "dg_cg_edges", "dg_trace_summary", "dg_policy_eval_index", "dg_precedent_index"}

// partSchema holds the tenants' partitions of the live tables, their
// default partitions and the tables a rebuild builds before swapping them
// in. It is outside public on purpose: catalogue walks over public tables
// (backup manifests) see only the parents.
const partSchema = "dg_projection_parts"

// partCode is the short name of a live table used in partition names.
var partCode = map[string]string{
	"dg_cg_nodes": "cg_nodes", "dg_cg_edges": "cg_edges", "dg_trace_summary": "trace_summary",
	"dg_policy_eval_index": "policy_eval", "dg_precedent_index": "precedent",
}

// lockOrder is the order in which every writer touches the live tables
// (catch-up batches write in this order too), so table locks never cycle.
var lockOrder = []string{"dg_cg_nodes", "dg_cg_edges", "dg_trace_summary", "dg_policy_eval_index", "dg_precedent_index"}

// tenantKey is the hex MD5 of a tenant id: partition names must be
// identifiers of bounded length whatever the tenant id holds.
func tenantKey(tenant string) string {
	sum := md5.Sum([]byte(tenant))
	return hex.EncodeToString(sum[:])
}

// partName is the unqualified name of a tenant's partition of table.
func partName(table, tenant string) string { return partCode[table] + "_" + tenantKey(tenant) }

// qualified returns schema.name quoted for SQL.
func qualified(name string) string { return pgx.Identifier{partSchema, name}.Sanitize() }

// defaultPart is the default partition of table (rows of tenants without
// a partition of their own, e.g. rows from before migration 0006).
func defaultPart(table string) string { return qualified(partCode[table] + "_default") }

// quoteLiteral quotes s as an SQL string literal (for DDL, which takes no
// parameters).
func quoteLiteral(s string) string {
	if strings.ContainsRune(s, '\\') {
		return "E'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(s) + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// partitionsLockKey is the advisory key that serialises creating and
// swapping the partitions of one tenant.
func partitionsLockKey(tenant string) string { return scopeKey(tenant, "partitions") }

// partitions remembers the tenants whose partitions this process has
// already seen to exist, so catch-up checks the catalogue once per tenant.
type partitions struct{ known sync.Map }

// ensure makes sure tenant has its own partition of every live table. A
// missing one is created (moving any rows of the tenant out of the default
// partition) and attached, under the tenant's partitions lock.
func (p *partitions) ensure(ctx context.Context, pool *pgxpool.Pool, tenant string) error {
	if _, ok := p.known.Load(tenant); ok {
		return nil
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin partition check: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, batchLockClass, partitionsLockKey(tenant)); err != nil {
		return fmt.Errorf("lock partitions of tenant %s: %w", tenant, err)
	}
	for _, table := range lockOrder {
		name := partName(table, tenant)
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, qualified(name)).Scan(&exists); err != nil {
			return fmt.Errorf("look up partition %s: %w", name, err)
		}
		if exists {
			continue
		}
		for _, stmt := range []string{
			fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS)`, qualified(name), table),
			fmt.Sprintf(`INSERT INTO %s SELECT * FROM %s WHERE tenant_id = %s`, qualified(name), defaultPart(table), quoteLiteral(tenant)),
			fmt.Sprintf(`DELETE FROM %s WHERE tenant_id = %s`, defaultPart(table), quoteLiteral(tenant)),
			fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES IN (%s)`, table, qualified(name), quoteLiteral(tenant)),
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("create partition %s of tenant %s: %w", name, tenant, err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit partitions of tenant %s: %w", tenant, err)
	}
	p.known.Store(tenant, true)
	return nil
}

// forget makes the next ensure check the catalogue again.
func (p *partitions) forget(tenant string) { p.known.Delete(tenant) }

// of returns the tables a projection owns.
func (t pgTables) of(set Set) []string {
	var out []string
	if set&SetContextGraph != 0 {
		out = append(out, t.edges, t.nodes) // edges first: they reference nodes
	}
	if set&SetTraceSummary != 0 {
		out = append(out, t.summary)
	}
	if set&SetPrecedentIndex != 0 {
		out = append(out, t.precedent, t.policyEval)
	}
	return out
}

// queryer is what reading rows needs: a pool, a connection or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// batchChanges accumulates the changes of several events for one
// round trip, keeping the row stores' semantics: first writer wins for
// nodes, edges and policy-eval rows; starts before finishes; the last
// precedent set of a trace replaces the earlier ones.
type batchChanges struct {
	nodes     []Node
	nodeSeen  map[string]bool
	edges     []Edge
	edgeSeen  map[string]bool
	starts    []Summary
	finishes  []Finish
	evals     []PolicyEval
	evalSeen  map[string]bool
	precTrace []string
	precSets  map[string][]Precedent
}

func newBatchChanges() *batchChanges {
	return &batchChanges{nodeSeen: map[string]bool{}, edgeSeen: map[string]bool{}, evalSeen: map[string]bool{}, precSets: map[string][]Precedent{}}
}

func (b *batchChanges) add(c *Changes) {
	for _, n := range c.Nodes {
		if !b.nodeSeen[n.NodeID] {
			b.nodeSeen[n.NodeID] = true
			b.nodes = append(b.nodes, n)
		}
	}
	for _, e := range c.Edges {
		if !b.edgeSeen[e.EdgeID] {
			b.edgeSeen[e.EdgeID] = true
			b.edges = append(b.edges, e)
		}
	}
	if c.StartSummary != nil {
		b.starts = append(b.starts, *c.StartSummary)
	}
	if c.FinishSummary != nil {
		b.finishes = append(b.finishes, *c.FinishSummary)
	}
	if c.PolicyEval != nil && !b.evalSeen[c.PolicyEval.IndexID] {
		b.evalSeen[c.PolicyEval.IndexID] = true
		b.evals = append(b.evals, *c.PolicyEval)
	}
	if c.Precedents != nil {
		if _, ok := b.precSets[c.Precedents.TraceID]; !ok {
			b.precTrace = append(b.precTrace, c.Precedents.TraceID)
		}
		b.precSets[c.Precedents.TraceID] = c.Precedents.Rows
	}
}

// queue adds the batch's statements to a pgx batch for tenant's tables t.
func (b *batchChanges) queue(q *pgx.Batch, tenant string, t pgTables) {
	if len(b.nodes) > 0 {
		ids, types, traces, created := make([]string, len(b.nodes)), make([]string, len(b.nodes)), make([]string, len(b.nodes)), make([]string, len(b.nodes))
		seqs := make([]int64, len(b.nodes))
		for i, n := range b.nodes {
			ids[i], types[i], traces[i], seqs[i], created[i] = n.NodeID, n.NodeType, n.TraceID, n.LogSeq, n.CreatedAt
		}
		q.Queue(fmt.Sprintf(`INSERT INTO %s (tenant_id, node_id, node_type, trace_id, log_seq, created_at)
			SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
			ON CONFLICT DO NOTHING`, t.nodes), tenant, ids, types, traces, seqs, created)
	}
	if len(b.edges) > 0 {
		n := len(b.edges)
		ids, types, from, to, traces, created := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seqs := make([]int64, n)
		for i, e := range b.edges {
			ids[i], types[i], from[i], to[i], traces[i], seqs[i], created[i] = e.EdgeID, e.EdgeType, e.FromNodeID, e.ToNodeID, e.TraceID, e.LogSeq, e.CreatedAt
		}
		q.Queue(fmt.Sprintf(`INSERT INTO %s (tenant_id, edge_id, edge_type, from_node_id, to_node_id, trace_id, log_seq, created_at)
			SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[])
			ON CONFLICT DO NOTHING`, t.edges), tenant, ids, types, from, to, traces, seqs, created)
	}
	// Summary starts, then finishes, each one statement; a batch naming a
	// trace twice in either list (not seen in valid logs) keeps one
	// statement per row, in order, since one INSERT ... ON CONFLICT DO
	// UPDATE or UPDATE ... FROM cannot change a row twice.
	if len(b.starts) > 0 && distinctTraces(len(b.starts), func(i int) string { return b.starts[i].TraceID }) {
		n := len(b.starts)
		traces, workflows, titles, started := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		pet, pei := make([]*string, n), make([]*string, n)
		seqs := make([]int64, n)
		for i, s := range b.starts {
			traces[i], workflows[i], titles[i], pet[i], pei[i], started[i], seqs[i] = s.TraceID, s.Workflow, s.Title, s.PrimaryEntityType, s.PrimaryEntityID, s.StartedAt, s.LastLogSeq
		}
		q.Queue(fmt.Sprintf(`INSERT INTO %s AS s (tenant_id, trace_id, workflow, title, primary_entity_type, primary_entity_id,
				outcome, started_at, finished_at, event_count, last_log_seq)
			SELECT $1, u.trace_id, u.workflow, u.title, u.pet, u.pei, NULL, u.started_at, NULL, 1, u.last_log_seq
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
				AS u(trace_id, workflow, title, pet, pei, started_at, last_log_seq)
			ON CONFLICT (tenant_id, trace_id) DO UPDATE SET event_count = s.event_count + 1, last_log_seq = EXCLUDED.last_log_seq`, t.summary),
			tenant, traces, workflows, titles, pet, pei, started, seqs)
	} else {
		for _, s := range b.starts {
			q.Queue(fmt.Sprintf(`INSERT INTO %s AS s (tenant_id, trace_id, workflow, title, primary_entity_type, primary_entity_id,
					outcome, started_at, finished_at, event_count, last_log_seq)
				VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, NULL, 1, $8)
				ON CONFLICT (tenant_id, trace_id) DO UPDATE SET event_count = s.event_count + 1, last_log_seq = EXCLUDED.last_log_seq`, t.summary),
				tenant, s.TraceID, s.Workflow, s.Title, s.PrimaryEntityType, s.PrimaryEntityID, s.StartedAt, s.LastLogSeq)
		}
	}
	if len(b.finishes) > 0 && distinctTraces(len(b.finishes), func(i int) string { return b.finishes[i].TraceID }) {
		n := len(b.finishes)
		traces, outcomes, finished := make([]string, n), make([]string, n), make([]string, n)
		seqs := make([]int64, n)
		for i, f := range b.finishes {
			traces[i], outcomes[i], finished[i], seqs[i] = f.TraceID, f.Outcome, f.FinishedAt, f.LogSeq
		}
		q.Queue(fmt.Sprintf(`UPDATE %s AS s SET outcome = u.outcome, finished_at = u.finished_at, event_count = s.event_count + 1,
				last_log_seq = u.log_seq
			FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) AS u(trace_id, outcome, finished_at, log_seq)
			WHERE s.tenant_id = $1 AND s.trace_id = u.trace_id`, t.summary), tenant, traces, outcomes, finished, seqs)
	} else {
		for _, f := range b.finishes {
			q.Queue(fmt.Sprintf(`UPDATE %s SET outcome = $3, finished_at = $4, event_count = event_count + 1, last_log_seq = $5
				WHERE tenant_id = $1 AND trace_id = $2`, t.summary), tenant, f.TraceID, f.Outcome, f.FinishedAt, f.LogSeq)
		}
	}
	if len(b.evals) > 0 {
		n := len(b.evals)
		ids, traces, pids, vers, created := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seqs := make([]int64, n)
		for i, e := range b.evals {
			ids[i], traces[i], pids[i], vers[i], seqs[i], created[i] = e.IndexID, e.TraceID, e.PolicyID, e.PolicyVersion, e.LogSeq, e.CreatedAt
		}
		q.Queue(fmt.Sprintf(`INSERT INTO %s (tenant_id, index_id, trace_id, policy_id, policy_version, log_seq, created_at)
			SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])
			ON CONFLICT DO NOTHING`, t.policyEval), tenant, ids, traces, pids, vers, seqs, created)
	}
	if len(b.precTrace) > 0 {
		q.Queue(fmt.Sprintf(`DELETE FROM %s WHERE tenant_id = $1 AND trace_id = ANY($2)`, t.precedent), tenant, b.precTrace)
		var rows []Precedent
		for _, tr := range b.precTrace {
			rows = append(rows, b.precSets[tr]...)
		}
		if len(rows) > 0 {
			n := len(rows)
			src, traces, pids, vers := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			exc, pet, pes, pei := make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
			seqs := make([]int64, n)
			for i, r := range rows {
				src[i], seqs[i], traces[i], pids[i], vers[i] = r.SourceEventID, r.LogSeq, r.TraceID, r.PolicyID, r.PolicyVersion
				exc[i], pet[i], pes[i], pei[i] = r.ExceptionID, r.PrimaryEntityType, r.PrimaryEntitySystem, r.PrimaryEntityID
			}
			q.Queue(fmt.Sprintf(`INSERT INTO %s (tenant_id, source_event_id, log_seq, trace_id, policy_id, policy_version,
					exception_id, primary_entity_type, primary_entity_system, primary_entity_id)
				SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
				ON CONFLICT (tenant_id, source_event_id) DO UPDATE SET log_seq = EXCLUDED.log_seq, trace_id = EXCLUDED.trace_id,
					policy_id = EXCLUDED.policy_id, policy_version = EXCLUDED.policy_version, exception_id = EXCLUDED.exception_id,
					primary_entity_type = EXCLUDED.primary_entity_type, primary_entity_system = EXCLUDED.primary_entity_system,
					primary_entity_id = EXCLUDED.primary_entity_id`, t.precedent),
				tenant, src, seqs, traces, pids, vers, exc, pet, pes, pei)
		}
	}
}

// distinctTraces reports whether the n trace ids key(0..n-1) differ.
func distinctTraces(n int, key func(int) string) bool {
	seen := make(map[string]struct{}, n)
	for i := range n {
		k := key(i)
		if _, ok := seen[k]; ok {
			return false
		}
		seen[k] = struct{}{}
	}
	return true
}

// readTables loads the digested rows of the projections in set for one
// tenant from tables t (unsorted: digests sort in Go).
func readTables(ctx context.Context, q queryer, tenant string, t pgTables, set Set) (*Tables, error) {
	out := &Tables{}
	if set&SetContextGraph != 0 {
		rows, err := q.Query(ctx, fmt.Sprintf(`SELECT node_id, node_type, trace_id, log_seq, created_at FROM %s WHERE tenant_id = $1`, t.nodes), tenant)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.nodes, err)
		}
		var n Node
		_, err = pgx.ForEachRow(rows, []any{&n.NodeID, &n.NodeType, &n.TraceID, &n.LogSeq, &n.CreatedAt}, func() error {
			out.Nodes = append(out.Nodes, n)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.nodes, err)
		}
		rows, err = q.Query(ctx, fmt.Sprintf(`SELECT edge_id, edge_type, from_node_id, to_node_id, trace_id, log_seq, created_at FROM %s WHERE tenant_id = $1`, t.edges), tenant)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.edges, err)
		}
		var e Edge
		_, err = pgx.ForEachRow(rows, []any{&e.EdgeID, &e.EdgeType, &e.FromNodeID, &e.ToNodeID, &e.TraceID, &e.LogSeq, &e.CreatedAt}, func() error {
			out.Edges = append(out.Edges, e)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.edges, err)
		}
	}
	if set&SetTraceSummary != 0 {
		rows, err := q.Query(ctx, fmt.Sprintf(`SELECT trace_id, workflow, title, primary_entity_type, primary_entity_id, outcome,
			started_at, finished_at, event_count, last_log_seq FROM %s WHERE tenant_id = $1`, t.summary), tenant)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.summary, err)
		}
		var s Summary
		_, err = pgx.ForEachRow(rows, []any{&s.TraceID, &s.Workflow, &s.Title, &s.PrimaryEntityType, &s.PrimaryEntityID, &s.Outcome,
			&s.StartedAt, &s.FinishedAt, &s.EventCount, &s.LastLogSeq}, func() error {
			out.Summaries = append(out.Summaries, s)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.summary, err)
		}
	}
	if set&SetPrecedentIndex != 0 {
		rows, err := q.Query(ctx, fmt.Sprintf(`SELECT source_event_id, log_seq, trace_id, policy_id, policy_version, exception_id,
			primary_entity_type, primary_entity_system, primary_entity_id FROM %s WHERE tenant_id = $1`, t.precedent), tenant)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.precedent, err)
		}
		var p Precedent
		_, err = pgx.ForEachRow(rows, []any{&p.SourceEventID, &p.LogSeq, &p.TraceID, &p.PolicyID, &p.PolicyVersion, &p.ExceptionID,
			&p.PrimaryEntityType, &p.PrimaryEntitySystem, &p.PrimaryEntityID}, func() error {
			out.Precedents = append(out.Precedents, p)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.precedent, err)
		}
	}
	return out, nil
}
