package projection

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/jackc/pgx/v5"
)

// Query limits (events spec §13).
const (
	MaxGraphDepth   = 10
	DefaultMaxNodes = 100
	DefaultMaxEdges = 500
	MaxQueryLimit   = 10000
)

func invalidArg(path, format string, args ...any) error {
	return &event.Error{Code: event.CodeInvalidArgument, Path: path, Message: fmt.Sprintf(format, args...)}
}

// freshSQL reads, in one round trip, a tenant's head ($1) and the slowest
// of the named projections' checkpoints ($2).
const freshSQL = `SELECT
			(SELECT COALESCE(max(log_seq), 0) FROM dg_event_log WHERE tenant_id = $1),
			COALESCE((SELECT min(COALESCE(c.last_log_seq, 0)) FROM unnest($2::text[]) AS n(name)
				LEFT JOIN dg_projection_cursors c ON c.tenant_id = $1 AND c.projection_name = n.name), 0)`

// fresh refuses with DG_ERR_PROJECTION_OUT_OF_DATE when any of the named
// projections' checkpoints is behind the tenant's head (events spec §13.2).
func (pg *PG) fresh(ctx context.Context, tenant string, names ...string) error {
	return freshResult(pg.pool.QueryRow(ctx, freshSQL, tenant, names), tenant, names)
}

func freshResult(row pgx.Row, tenant string, names []string) error {
	var head, cursor int64
	if err := row.Scan(&head, &cursor); err != nil {
		return fmt.Errorf("check projection checkpoints of tenant %s: %w", tenant, err)
	}
	if cursor < head {
		return &event.Error{Code: event.CodeProjectionOutOfDate, Message: fmt.Sprintf(
			"projection %s of tenant %s is at log_seq %d, behind the log at %d; retry shortly", strings.Join(names, "+"), tenant, cursor, head),
			Details: map[string]any{"projections": names, "checkpoint": cursor, "head": head}}
	}
	return nil
}

// TraceSummary returns one trace's summary row.
func (pg *PG) TraceSummary(ctx context.Context, tenant, traceID string) (*Summary, error) {
	if err := pg.fresh(ctx, tenant, TraceSummary); err != nil {
		return nil, err
	}
	s := &Summary{}
	err := pg.pool.QueryRow(ctx, `SELECT trace_id, workflow, title, primary_entity_type, primary_entity_id, outcome,
		started_at, finished_at, event_count, last_log_seq FROM dg_trace_summary WHERE tenant_id = $1 AND trace_id = $2`, tenant, traceID).
		Scan(&s.TraceID, &s.Workflow, &s.Title, &s.PrimaryEntityType, &s.PrimaryEntityID, &s.Outcome, &s.StartedAt, &s.FinishedAt, &s.EventCount, &s.LastLogSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &event.Error{Code: event.CodeNotFound, Path: "trace_id", Message: fmt.Sprintf("trace %q has no summary in tenant %q", traceID, tenant)}
	}
	if err != nil {
		return nil, fmt.Errorf("read trace summary %s: %w", traceID, err)
	}
	return s, nil
}

// SubgraphQuery selects a context subgraph around a center node.
type SubgraphQuery struct {
	NodeType string // e.g. "trace"
	NodeID   string // the identifier after the type, e.g. the trace id
	MaxDepth int    // 0..10; the default 1 applies when DefaultDepth is set
	// DefaultDepth asks for the reference default depth of 1.
	DefaultDepth bool
	MaxNodes     int // > 0; 0 means 100
	MaxEdges     int // > 0; 0 means 500
	EdgeTypes    []string
	NodeTypes    []string
}

// Subgraph is the answer of a subgraph query: nodes ordered by node_id,
// edges by edge_id (code-point order).
type Subgraph struct {
	Nodes     []Node `json:"nodes"`
	Edges     []Edge `json:"edges"`
	Truncated bool   `json:"truncated"`
}

// ContextSubgraph walks the context graph breadth-first from a center node
// (events spec §13.4).
func (pg *PG) ContextSubgraph(ctx context.Context, tenant string, q SubgraphQuery) (*Subgraph, error) {
	if q.DefaultDepth {
		q.MaxDepth = 1
	}
	if q.MaxDepth < 0 || q.MaxDepth > MaxGraphDepth {
		return nil, invalidArg("max_depth", "max_depth must be between 0 and %d, got %d", MaxGraphDepth, q.MaxDepth)
	}
	if q.MaxNodes == 0 {
		q.MaxNodes = DefaultMaxNodes
	}
	if q.MaxEdges == 0 {
		q.MaxEdges = DefaultMaxEdges
	}
	if q.MaxNodes < 0 || q.MaxEdges < 0 {
		return nil, invalidArg("max_nodes", "max_nodes and max_edges must be positive")
	}
	if q.NodeType == "" || q.NodeID == "" {
		return nil, invalidArg("node_id", "node_type and node_id are required")
	}
	center := q.NodeType + ":" + q.NodeID
	nodeTypes := map[string]bool{}
	for _, t := range q.NodeTypes {
		nodeTypes[t] = true
	}
	visitedNodes := map[string]bool{center: true}
	order := []string{center}
	visitedEdges := map[string]bool{}
	var edges []Edge
	frontier := []string{center}
	truncated := false
	// A level is the frontier's edges in edge_id order, processed until
	// truncation; at most max_edges+1 of them can be processed (rows
	// already visited plus new ones can never exceed that before
	// truncation), so each frontier node contributes at most that many
	// edges, read in order from its index: hub nodes (a policy every trace
	// evaluates) cost a bounded index range. The level is read in chunks
	// (keyset on edge_id): the walk usually stops at max_nodes long before
	// max_edges+1 edges, and a chunk costs each frontier node at most the
	// chunk's size, so a hub no longer reads max_edges+1 rows of which a
	// hundred are used. Chunks are contiguous in edge_id order and processed
	// in order, so the result is the same as reading the level at once.
	typeFilter := ""
	if len(q.EdgeTypes) > 0 {
		typeFilter = ` AND edge_type = ANY($5)`
	}
	cols := `edge_id, edge_type, from_node_id, to_node_id, trace_id, log_seq, created_at`
	levelSQL := `SELECT ` + cols + ` FROM (SELECT DISTINCT ` + cols + ` FROM unnest($2::text[]) AS f(node) CROSS JOIN LATERAL (
				(SELECT ` + cols + ` FROM dg_cg_edges WHERE tenant_id = $1 AND from_node_id = f.node
					AND edge_id COLLATE "C" > $4` + typeFilter + `
					ORDER BY edge_id COLLATE "C" LIMIT $3)
				UNION ALL
				(SELECT ` + cols + ` FROM dg_cg_edges WHERE tenant_id = $1 AND to_node_id = f.node
					AND edge_id COLLATE "C" > $4` + typeFilter + `
					ORDER BY edge_id COLLATE "C" LIMIT $3)) e) d
			ORDER BY edge_id COLLATE "C" LIMIT $3`
	var level []Edge
	// The first chunk goes in one round trip with the freshness check.
	first := true
	for depth := 0; len(frontier) > 0 && !truncated && depth < q.MaxDepth; depth++ {
		var next []string
		levelCap := q.MaxEdges + 1 // rows of this level that can be processed
		read := 0
		after := "" // every edge_id is longer, so greater
		// First chunk: about one edge per node still allowed, plus slack;
		// then four times larger each time.
		chunk := max(q.MaxNodes-len(visitedNodes)+16, 16)
	chunks:
		for {
			chunk = min(chunk, levelCap-read)
			args := []any{tenant, frontier, chunk, after}
			if len(q.EdgeTypes) > 0 {
				args = append(args, q.EdgeTypes)
			}
			var err error
			if level, err = pg.readLevel(ctx, tenant, levelSQL, args, first, level[:0]); err != nil {
				return nil, err
			}
			first = false
			sort.Slice(level, func(i, j int) bool { return level[i].EdgeID < level[j].EdgeID })
			read += len(level)
			for _, e := range level {
				if visitedEdges[e.EdgeID] {
					continue
				}
				if len(visitedEdges) >= q.MaxEdges {
					truncated = true
					break chunks
				}
				visitedEdges[e.EdgeID] = true
				edges = append(edges, e)
				for _, end := range []string{e.FromNodeID, e.ToNodeID} {
					if visitedNodes[end] {
						continue
					}
					if len(nodeTypes) > 0 {
						typ, _, _ := strings.Cut(end, ":")
						if !nodeTypes[typ] {
							continue
						}
					}
					if len(visitedNodes) >= q.MaxNodes {
						truncated = true
						break chunks
					}
					visitedNodes[end] = true
					order = append(order, end)
					next = append(next, end)
				}
			}
			if len(level) < chunk || read >= levelCap {
				break // the level is exhausted (or at its cap)
			}
			after = level[len(level)-1].EdgeID
			chunk *= 4
		}
		frontier = next
	}
	if first { // max_depth 0: no level was read
		if err := pg.fresh(ctx, tenant, ContextGraph); err != nil {
			return nil, err
		}
	}
	rows, err := pg.pool.Query(ctx, `SELECT node_id, node_type, trace_id, log_seq, created_at FROM dg_cg_nodes
		WHERE tenant_id = $1 AND node_id = ANY($2)`, tenant, order)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	out := &Subgraph{Nodes: []Node{}, Edges: edges, Truncated: truncated}
	var n Node
	if _, err := pgx.ForEachRow(rows, []any{&n.NodeID, &n.NodeType, &n.TraceID, &n.LogSeq, &n.CreatedAt}, func() error {
		out.Nodes = append(out.Nodes, n)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	if out.Edges == nil {
		out.Edges = []Edge{}
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].NodeID < out.Nodes[j].NodeID })
	sort.Slice(out.Edges, func(i, j int) bool { return out.Edges[i].EdgeID < out.Edges[j].EdgeID })
	return out, nil
}

// readLevel appends to dst the edges of one chunk of a subgraph level.
// With fresh set the freshness check of the context graph goes first in
// the same round trip, and its refusal wins over the rows.
func (pg *PG) readLevel(ctx context.Context, tenant, sqlText string, args []any, fresh bool, dst []Edge) ([]Edge, error) {
	var rows pgx.Rows
	var br pgx.BatchResults
	if fresh {
		b := &pgx.Batch{}
		b.Queue(freshSQL, tenant, []string{ContextGraph})
		b.Queue(sqlText, args...)
		br = pg.pool.SendBatch(ctx, b)
		defer br.Close()
		if err := freshResult(br.QueryRow(), tenant, []string{ContextGraph}); err != nil {
			return nil, err
		}
		var err error
		if rows, err = br.Query(); err != nil {
			return nil, fmt.Errorf("read edges: %w", err)
		}
	} else {
		var err error
		if rows, err = pg.pool.Query(ctx, sqlText, args...); err != nil {
			return nil, fmt.Errorf("read edges: %w", err)
		}
	}
	var e Edge
	if _, err := pgx.ForEachRow(rows, []any{&e.EdgeID, &e.EdgeType, &e.FromNodeID, &e.ToNodeID, &e.TraceID, &e.LogSeq, &e.CreatedAt}, func() error {
		dst = append(dst, e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read edges: %w", err)
	}
	if br != nil {
		if err := br.Close(); err != nil {
			return nil, fmt.Errorf("read edges: %w", err)
		}
	}
	return dst, nil
}

// EdgeCursor continues a list of a node's edges.
type EdgeCursor struct {
	EdgeID    string `json:"edge_id"`
	Direction string `json:"direction"`
	LogSeq    *int64 `json:"log_seq,omitempty"`
}

// EdgePage is one page of a node's edges.
type EdgePage struct {
	Edges      []Edge      `json:"edges"`
	NextCursor *EdgeCursor `json:"next_cursor"`
}

// NodeEdges lists a node's edges ordered by (log_seq, edge_id), one page
// at a time (events spec §13.5). nodeKey is the full node id, e.g.
// "trace:abc"; direction is outgoing, incoming or both.
func (pg *PG) NodeEdges(ctx context.Context, tenant, nodeKey, direction string, cursor *EdgeCursor, limit int) (*EdgePage, error) {
	if limit == 0 {
		limit = 100
	}
	if limit < 0 || limit > MaxQueryLimit {
		return nil, invalidArg("limit", "limit must be between 1 and %d, got %d", MaxQueryLimit, limit)
	}
	var where string
	switch direction {
	case "outgoing":
		where = "from_node_id = $2"
	case "incoming":
		where = "to_node_id = $2"
	case "both", "":
		direction = "both"
		where = "(from_node_id = $2 OR to_node_id = $2)"
	default:
		return nil, invalidArg("direction", "direction must be outgoing, incoming or both, not %q", direction)
	}
	if err := pg.fresh(ctx, tenant, ContextGraph); err != nil {
		return nil, err
	}
	args := []any{tenant, nodeKey}
	if cursor != nil {
		if cursor.Direction != direction {
			return nil, invalidArg("cursor", "the cursor was made for direction %q, not %q", cursor.Direction, direction)
		}
		seq := cursor.LogSeq
		if seq == nil {
			var s int64
			err := pg.pool.QueryRow(ctx, `SELECT log_seq FROM dg_cg_edges WHERE tenant_id = $1 AND edge_id = $2`, tenant, cursor.EdgeID).Scan(&s)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil, invalidArg("cursor", "the cursor names edge %q, which does not exist", cursor.EdgeID)
			}
			if err != nil {
				return nil, fmt.Errorf("resolve edge cursor: %w", err)
			}
			seq = &s
		}
		where += ` AND (log_seq > $3 OR (log_seq = $3 AND edge_id COLLATE "C" > $4))`
		args = append(args, *seq, cursor.EdgeID)
	}
	args = append(args, limit+1)
	rows, err := pg.pool.Query(ctx, fmt.Sprintf(`SELECT edge_id, edge_type, from_node_id, to_node_id, trace_id, log_seq, created_at
		FROM dg_cg_edges WHERE tenant_id = $1 AND %s ORDER BY log_seq, edge_id COLLATE "C" LIMIT $%d`, where, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list edges of %s: %w", nodeKey, err)
	}
	page := &EdgePage{Edges: []Edge{}}
	var e Edge
	if _, err := pgx.ForEachRow(rows, []any{&e.EdgeID, &e.EdgeType, &e.FromNodeID, &e.ToNodeID, &e.TraceID, &e.LogSeq, &e.CreatedAt}, func() error {
		page.Edges = append(page.Edges, e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list edges of %s: %w", nodeKey, err)
	}
	if len(page.Edges) > limit {
		page.Edges = page.Edges[:limit]
		last := page.Edges[limit-1]
		seq := last.LogSeq
		page.NextCursor = &EdgeCursor{EdgeID: last.EdgeID, Direction: direction, LogSeq: &seq}
	}
	return page, nil
}

// PrecedentQuery filters a precedent search (events spec §13.6).
type PrecedentQuery struct {
	PolicyID      string
	PolicyVersion string
	EntityType    string
	EntityID      string
	Outcome       string
	Limit         int // 1..10000; 0 means 100
}

// PrecedentHit is one finished trace found by a precedent search.
type PrecedentHit struct {
	TraceID       string  `json:"trace_id"`
	Workflow      string  `json:"workflow"`
	Title         string  `json:"title"`
	Outcome       string  `json:"outcome"`
	PolicyID      *string `json:"policy_id"`
	PolicyVersion *string `json:"policy_version"`
	FinishedAt    *string `json:"finished_at"`
	LastLogSeq    int64   `json:"-"`
}

// FindPrecedents searches finished traces, newest first.
func (pg *PG) FindPrecedents(ctx context.Context, tenant string, q PrecedentQuery) ([]PrecedentHit, error) {
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 1 || q.Limit > MaxQueryLimit {
		return nil, invalidArg("limit", "limit must be between 1 and %d, got %d", MaxQueryLimit, q.Limit)
	}
	if q.PolicyVersion != "" && q.PolicyID == "" {
		return nil, invalidArg("policy_version", "policy_version needs policy_id")
	}
	if q.EntityID != "" && q.EntityType == "" {
		return nil, invalidArg("entity_id", "entity_id needs entity_type")
	}
	if err := pg.fresh(ctx, tenant, TraceSummary, PrecedentIndex); err != nil {
		return nil, err
	}
	args := []any{tenant}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	filters := ""
	if q.Outcome != "" {
		filters += " AND s.outcome = " + arg(q.Outcome)
	}
	if q.EntityType != "" {
		filters += " AND s.primary_entity_type = " + arg(q.EntityType)
	}
	if q.EntityID != "" {
		filters += " AND s.primary_entity_id = " + arg(q.EntityID)
	}
	if q.PolicyID == "" {
		return pg.precedentRows(ctx, `SELECT s.trace_id, s.workflow, s.title, s.outcome, NULL::text, NULL::text, s.finished_at, s.last_log_seq
			FROM dg_trace_summary s WHERE s.tenant_id = $1 AND s.outcome IS NOT NULL`+filters+
			` ORDER BY s.last_log_seq DESC, s.trace_id COLLATE "C" LIMIT `+arg(q.Limit), args)
	}
	pf := " AND pi.policy_id = " + arg(q.PolicyID)
	if q.PolicyVersion != "" {
		pf += " AND pi.policy_version = " + arg(q.PolicyVersion)
	}
	limit := arg(q.Limit)
	// One precedent row per trace: exception rows first, then the newest,
	// then the smallest source event id.
	const pick = ` ORDER BY (pi.exception_id IS NULL), pi.log_seq DESC, pi.source_event_id COLLATE "C"`
	// First, walk the newest finished traces in index order and stop at
	// limit hits: cheap when the policy is common. The walk is bounded; if
	// it ends with fewer than limit hits, the answer may be incomplete and
	// the exact form below (all rows of the policy, then the traces) runs.
	scan := arg(q.Limit * 20)
	hits, err := pg.precedentRows(ctx, `SELECT s.trace_id, s.workflow, s.title, s.outcome, p.policy_id, p.policy_version, s.finished_at, s.last_log_seq
		FROM (SELECT * FROM dg_trace_summary s WHERE s.tenant_id = $1 AND s.outcome IS NOT NULL`+filters+`
			ORDER BY s.last_log_seq DESC, s.trace_id COLLATE "C" LIMIT `+scan+`) s
		CROSS JOIN LATERAL (SELECT pi.policy_id, pi.policy_version FROM dg_precedent_index pi
			WHERE pi.tenant_id = $1 AND pi.trace_id = s.trace_id`+pf+pick+` LIMIT 1) p
		ORDER BY s.last_log_seq DESC, s.trace_id COLLATE "C" LIMIT `+limit, args)
	if err != nil || len(hits) == q.Limit {
		return hits, err
	}
	args = args[:len(args)-1] // the exact form has no scan bound
	return pg.precedentRows(ctx, `WITH ranked AS (
			SELECT DISTINCT ON (pi.trace_id) pi.trace_id, pi.policy_id, pi.policy_version
			FROM dg_precedent_index pi WHERE pi.tenant_id = $1`+pf+`
			ORDER BY pi.trace_id, (pi.exception_id IS NULL), pi.log_seq DESC, pi.source_event_id COLLATE "C")
		SELECT s.trace_id, s.workflow, s.title, s.outcome, r.policy_id, r.policy_version, s.finished_at, s.last_log_seq
		FROM ranked r JOIN dg_trace_summary s ON s.tenant_id = $1 AND s.trace_id = r.trace_id
		WHERE s.outcome IS NOT NULL`+filters+`
		ORDER BY s.last_log_seq DESC, s.trace_id COLLATE "C" LIMIT `+limit, args)
}

func (pg *PG) precedentRows(ctx context.Context, sqlText string, args []any) ([]PrecedentHit, error) {
	rows, err := pg.pool.Query(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("search precedents: %w", err)
	}
	hits := []PrecedentHit{}
	var h PrecedentHit
	if _, err := pgx.ForEachRow(rows, []any{&h.TraceID, &h.Workflow, &h.Title, &h.Outcome, &h.PolicyID, &h.PolicyVersion, &h.FinishedAt, &h.LastLogSeq}, func() error {
		hits = append(hits, h)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("search precedents: %w", err)
	}
	return hits, nil
}
