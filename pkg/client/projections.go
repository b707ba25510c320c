package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// SubgraphQuery selects GET /api/v1/graph/context; zero values are left
// to the server's defaults (depth 1, 100 nodes, 100 edges).
type SubgraphQuery struct {
	NodeType, NodeID string
	MaxDepth         *int
	MaxNodes         int
	MaxEdges         int
	EdgeTypes        []string
	NodeTypes        []string
}

// ContextSubgraph reads the context graph around a node: center, nodes,
// edges and truncated.
func (c *Client) ContextSubgraph(ctx context.Context, q SubgraphQuery) (map[string]any, error) {
	v := url.Values{"node_type": {q.NodeType}, "node_id": {q.NodeID}}
	if q.MaxDepth != nil {
		v.Set("max_depth", strconv.Itoa(*q.MaxDepth))
	}
	if q.MaxNodes > 0 {
		v.Set("max_nodes", strconv.Itoa(q.MaxNodes))
	}
	if q.MaxEdges > 0 {
		v.Set("max_edges", strconv.Itoa(q.MaxEdges))
	}
	v["edge_types"], v["node_types"] = q.EdgeTypes, q.NodeTypes
	var out map[string]any
	_, err := c.do(ctx, http.MethodGet, "/api/v1/graph/context?"+v.Encode(), nil, &out)
	return out, err
}

// EdgeCursor continues NodeEdges from the last edge of a page.
type EdgeCursor struct {
	EdgeKey   string `json:"edge_key"`
	Direction string `json:"direction"`
	LogSeq    int64  `json:"log_seq"`
}

// EdgePage is one page of a node's edges.
type EdgePage struct {
	Edges      []map[string]any `json:"edges"`
	NextCursor *EdgeCursor      `json:"next_cursor"`
}

// NodeEdges reads one page of a node's edges; direction "" is both,
// limit 0 is the server's 100, cursor nil starts at the beginning.
func (c *Client) NodeEdges(ctx context.Context, nodeType, nodeID, direction string, limit int, cursor *EdgeCursor) (*EdgePage, error) {
	v := url.Values{"node_type": {nodeType}, "node_id": {nodeID}}
	if direction != "" {
		v.Set("direction", direction)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if cursor != nil {
		v.Set("cursor_edge_key", cursor.EdgeKey)
		v.Set("cursor_log_seq", strconv.FormatInt(cursor.LogSeq, 10))
	}
	var out EdgePage
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/graph/edges?"+v.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PrecedentQuery filters FindPrecedents; nil fields are not sent (an
// empty string is a filter that matches nothing).
type PrecedentQuery struct {
	PolicyID, PolicyVersion, EntityType, EntityID, Outcome *string
	Limit                                                  int
}

// FindPrecedents searches finished traces, newest first.
func (c *Client) FindPrecedents(ctx context.Context, q PrecedentQuery) ([]map[string]any, error) {
	v := url.Values{}
	for k, p := range map[string]*string{"policy_id": q.PolicyID, "policy_version": q.PolicyVersion, "entity_type": q.EntityType, "entity_id": q.EntityID, "outcome": q.Outcome} {
		if p != nil {
			v.Set(k, *p)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out struct {
		Precedents []map[string]any `json:"precedents"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/precedents?"+v.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return out.Precedents, nil
}

// ProjectionHealth reads the tenant's projection health.
func (c *Client) ProjectionHealth(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	_, err := c.do(ctx, http.MethodGet, "/api/v1/projections/health", nil, &out)
	return out, err
}

// ReplayRequest is the body of StartReplay.
type ReplayRequest struct {
	Projection  string         `json:"projection"`
	Mode        string         `json:"mode,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	SinceLogSeq *int64         `json:"since_log_seq,omitempty"`
	UntilLogSeq *int64         `json:"until_log_seq,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

// StartReplay queues an admin replay job and returns its run.
func (c *Client) StartReplay(ctx context.Context, r ReplayRequest) (map[string]any, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode replay request: %w", err)
	}
	return c.replayRun(ctx, http.MethodPost, "/api/v1/admin/replays", body)
}

// ReplayStatus reads a job's run.
func (c *Client) ReplayStatus(ctx context.Context, jobID string) (map[string]any, error) {
	return c.replayRun(ctx, http.MethodGet, "/api/v1/admin/replays/"+EscapeSegment(jobID), nil)
}

// CancelReplay cancels an active job (no body, as the Python client).
func (c *Client) CancelReplay(ctx context.Context, jobID string) (map[string]any, error) {
	return c.replayRun(ctx, http.MethodPost, "/api/v1/admin/replays/"+EscapeSegment(jobID)+"/cancel", nil)
}

func (c *Client) replayRun(ctx context.Context, method, path string, body []byte) (map[string]any, error) {
	var out struct {
		Run map[string]any `json:"run"`
	}
	if _, err := c.do(ctx, method, path, body, &out); err != nil {
		return nil, err
	}
	return out.Run, nil
}
