package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
)

// Default graph limits of the HTTP API (§8.4); the API's max_edges
// default (100) is lower than the query layer's.
const (
	apiDefaultMaxEdges = 100
	apiDefaultMaxNodes = 100
	apiDefaultLimit    = 100
)

// nodeJSON and edgeJSON are the §10.3 shapes; dg stores no attributes, so
// attrs is always {}.
type nodeJSON struct {
	NodeID    string         `json:"node_id"`
	NodeType  string         `json:"node_type"`
	TraceID   string         `json:"trace_id"`
	LogSeq    int64          `json:"log_seq"`
	CreatedAt string         `json:"created_at"`
	Attrs     map[string]any `json:"attrs"`
}

type edgeJSON struct {
	EdgeID     string         `json:"edge_id"`
	EdgeType   string         `json:"edge_type"`
	FromNodeID string         `json:"from_node_id"`
	ToNodeID   string         `json:"to_node_id"`
	TraceID    string         `json:"trace_id"`
	LogSeq     int64          `json:"log_seq"`
	CreatedAt  string         `json:"created_at"`
	Attrs      map[string]any `json:"attrs"`
}

func toEdgesJSON(es []projection.Edge) []edgeJSON {
	out := make([]edgeJSON, len(es))
	for i, e := range es {
		out[i] = edgeJSON{e.EdgeID, e.EdgeType, e.FromNodeID, e.ToNodeID, e.TraceID, e.LogSeq, e.CreatedAt, map[string]any{}}
	}
	return out
}

type cursorJSON struct {
	EdgeKey   string `json:"edge_key"`
	Direction string `json:"direction"`
	LogSeq    int64  `json:"log_seq"`
}

// nodeParams reads node_type and node_id (both required, trimmed).
func (a *api) nodeParams(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	nodeType, _ := queryString(r, "node_type")
	nodeID, _ := queryString(r, "node_id")
	nodeType, nodeID = strings.TrimSpace(nodeType), strings.TrimSpace(nodeID)
	if nodeType == "" {
		a.badArg(w, r, "node_type", "node_type is required")
		return "", "", false
	}
	if nodeID == "" {
		a.badArg(w, r, "node_id", "node_id is required")
		return "", "", false
	}
	return nodeType, nodeID, true
}

// handleGraphContext is GET /api/v1/graph/context (§8.4).
func (a *api) handleGraphContext(w http.ResponseWriter, r *http.Request, p *Principal) {
	nodeType, nodeID, ok := a.nodeParams(w, r)
	if !ok {
		return
	}
	q := projection.SubgraphQuery{NodeType: nodeType, NodeID: nodeID, MaxDepth: 1, MaxNodes: apiDefaultMaxNodes, MaxEdges: apiDefaultMaxEdges,
		EdgeTypes: queryList(r, "edge_types"), NodeTypes: queryList(r, "node_types")}
	depth, has, ok := a.queryInt(w, r, "max_depth")
	if !ok {
		return
	}
	if has {
		if depth < 0 || depth > projection.MaxGraphDepth {
			a.badArg(w, r, "max_depth", fmt.Sprintf("max_depth must be between 0 and %d", projection.MaxGraphDepth))
			return
		}
		q.MaxDepth = int(depth)
	}
	for _, lim := range []struct {
		key string
		dst *int
	}{{"max_nodes", &q.MaxNodes}, {"max_edges", &q.MaxEdges}} {
		v, has, ok := a.queryInt(w, r, lim.key)
		if !ok {
			return
		}
		if has {
			if v <= 0 || v > 1<<31-1 {
				a.badArg(w, r, lim.key, "max_nodes and max_edges must be positive")
				return
			}
			*lim.dst = int(v)
		}
	}
	ctx, span := a.s.cfg.Telemetry.span(r.Context(), "projection.context_subgraph")
	g, err := a.cfg.Projections.PG.ContextSubgraph(ctx, p.Tenant, q)
	span.End()
	if err != nil {
		a.writeFailure(w, r, err)
		return
	}
	nodes := make([]nodeJSON, len(g.Nodes))
	for i, n := range g.Nodes {
		nodes[i] = nodeJSON{n.NodeID, n.NodeType, n.TraceID, n.LogSeq, n.CreatedAt, map[string]any{}}
	}
	a.s.writeData(w, r, http.StatusOK, map[string]any{
		"center":    map[string]string{"node_type": nodeType, "node_id": nodeID},
		"nodes":     nodes,
		"edges":     toEdgesJSON(g.Edges),
		"truncated": g.Truncated,
	})
}

// handleGraphEdges is GET /api/v1/graph/edges (§8.5): one page of a
// node's edges in (log_seq, edge_id) order.
func (a *api) handleGraphEdges(w http.ResponseWriter, r *http.Request, p *Principal) {
	nodeType, nodeID, ok := a.nodeParams(w, r)
	if !ok {
		return
	}
	direction, has := queryString(r, "direction")
	if !has {
		direction = "both"
	}
	switch direction {
	case "both", "incoming", "outgoing":
	default:
		a.badArg(w, r, "direction", fmt.Sprintf("Unknown direction %q", direction))
		return
	}
	limit, has, ok := a.queryInt(w, r, "limit")
	if !ok {
		return
	}
	if !has {
		limit = apiDefaultLimit
	}
	if limit < 1 || limit > projection.MaxQueryLimit {
		a.badArg(w, r, "limit", fmt.Sprintf("limit must be between 1 and %d, got %d", projection.MaxQueryLimit, limit))
		return
	}
	var cursor *projection.EdgeCursor
	if key, has := queryString(r, "cursor_edge_key"); has && key != "" {
		cursor = &projection.EdgeCursor{EdgeID: key, Direction: direction}
		seq, has, ok := a.queryInt(w, r, "cursor_log_seq")
		if !ok {
			return
		}
		if has {
			cursor.LogSeq = &seq
		}
	}
	ctx, span := a.s.cfg.Telemetry.span(r.Context(), "projection.node_edges")
	page, err := a.cfg.Projections.PG.NodeEdges(ctx, p.Tenant, nodeType+":"+nodeID, direction, cursor, int(limit))
	span.End()
	if err != nil {
		var ee *event.Error
		if cursor != nil && errors.As(err, &ee) && ee.Code == event.CodeInvalidArgument && ee.Path == "cursor" {
			a.badArg(w, r, "cursor_edge_key", "cursor.edge_key not found: "+cursor.EdgeID)
			return
		}
		a.writeFailure(w, r, err)
		return
	}
	var next *cursorJSON
	if page.NextCursor != nil {
		next = &cursorJSON{EdgeKey: page.NextCursor.EdgeID, Direction: page.NextCursor.Direction}
		if page.NextCursor.LogSeq != nil {
			next.LogSeq = *page.NextCursor.LogSeq
		}
	}
	a.s.writeData(w, r, http.StatusOK, map[string]any{"edges": toEdgesJSON(page.Edges), "next_cursor": next})
}
