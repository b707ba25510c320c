package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// The workflow routes (HTTP spec §8.9-8.10). Answers are returned as the
// response data objects (map[string]any, numbers as json.Number): their
// shapes are the spec's WorkflowRow, ActionRow and NotificationRow.

// WorkflowFilter selects inbox items. Nil booleans take the server's
// defaults (only_open true, only_overdue false); Limit 0 takes 12.
type WorkflowFilter struct {
	Status            string
	AssignedAccountID string
	AssignedRole      string
	Priority          string
	TraceID           string
	OnlyOpen          *bool
	OnlyOverdue       *bool
	Limit             int
}

func (f WorkflowFilter) query() string {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", f.Status)
	set("assigned_account_id", f.AssignedAccountID)
	set("assigned_role", f.AssignedRole)
	set("priority", f.Priority)
	set("trace_id", f.TraceID)
	if f.OnlyOpen != nil {
		q.Set("only_open", strconv.FormatBool(*f.OnlyOpen))
	}
	if f.OnlyOverdue != nil {
		q.Set("only_overdue", strconv.FormatBool(*f.OnlyOverdue))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// WorkflowInbox is the answer of ListWorkflows.
type WorkflowInbox struct {
	Filters   map[string]any   `json:"filters"`
	Items     []map[string]any `json:"items"`
	Summary   map[string]any   `json:"summary"`
	RequestID string           `json:"-"`
}

// ListWorkflows reads the tenant's workflow inbox.
func (c *Client) ListWorkflows(ctx context.Context, f WorkflowFilter) (*WorkflowInbox, error) {
	var in WorkflowInbox
	rid, err := c.do(ctx, http.MethodGet, "/api/v1/workflows"+f.query(), nil, &in)
	if err != nil {
		return nil, err
	}
	in.RequestID = rid
	return &in, nil
}

// GetWorkflow reads one item with its actions, notifications, trace
// reference and review context.
func (c *Client) GetWorkflow(ctx context.Context, workflowID string) (map[string]any, error) {
	var out map[string]any
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/workflows/"+EscapeSegment(workflowID), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// WorkflowAction is the body of a workflow action.
type WorkflowAction struct {
	Action            string `json:"action"`
	Reason            string `json:"reason,omitempty"`
	Note              string `json:"note,omitempty"`
	Evidence          []any  `json:"evidence,omitempty"`
	AssignedAccountID string `json:"assigned_account_id,omitempty"`
	AssignedRole      string `json:"assigned_role,omitempty"`
	ConfirmText       string `json:"confirm_text,omitempty"`
}

// ActOnWorkflow runs an action on an item. A non-empty idempotencyKey is
// sent as Idempotency-Key, so retrying the call applies the action once.
// The answer is {action: {outcome, appended_event_id?, escalated_to?},
// workflow}.
func (c *Client) ActOnWorkflow(ctx context.Context, workflowID string, act WorkflowAction, idempotencyKey string) (map[string]any, error) {
	body, err := json.Marshal(act)
	if err != nil {
		return nil, fmt.Errorf("encode workflow action: %w", err)
	}
	var h map[string]string
	if idempotencyKey != "" {
		h = map[string]string{"Idempotency-Key": idempotencyKey}
	}
	var out map[string]any
	if _, err := c.doWith(ctx, http.MethodPost, "/api/v1/workflows/"+EscapeSegment(workflowID)+"/actions", body, h, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ExportWorkflow reads the admin audit export of an item (page >= 1 of
// its notifications).
func (c *Client) ExportWorkflow(ctx context.Context, workflowID string, page int) (map[string]any, error) {
	path := "/api/v1/admin/workflows/" + EscapeSegment(workflowID) + "/export"
	if page > 1 {
		path += "?page=" + strconv.Itoa(page)
	}
	var out map[string]any
	if _, err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// StudioTrace is the workflow studio's dry run for a trace.
func (c *Client) StudioTrace(ctx context.Context, traceID, templateID string) (map[string]any, error) {
	path := "/api/v1/workflow-studio/traces/" + EscapeSegment(traceID)
	if templateID != "" {
		path += "?template_id=" + url.QueryEscape(templateID)
	}
	var out map[string]any
	if _, err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// StartReview opens a trace review from a studio template.
func (c *Client) StartReview(ctx context.Context, traceID, templateID, reason string) (map[string]any, error) {
	body, _ := json.Marshal(map[string]string{"template_id": templateID, "reason": reason})
	var out map[string]any
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/workflow-studio/traces/"+EscapeSegment(traceID)+"/reviews", body, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// doWith is do with extra request headers.
func (c *Client) doWith(ctx context.Context, method, path string, body []byte, headers map[string]string, out any) (string, error) {
	if len(headers) == 0 {
		return c.do(ctx, method, path, body, out)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return "", fmt.Errorf("build %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("x-tenant-id", c.tenant)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return "", apiError(resp, b)
	}
	var env struct {
		Data      json.RawMessage `json:"data"`
		RequestID string          `json:"request_id"`
	}
	if err := json.Unmarshal(b, &env); err != nil || len(env.Data) == 0 {
		return "", &Error{Status: resp.StatusCode, Message: "the response is not a success envelope", RequestID: resp.Header.Get("x-request-id")}
	}
	dec := json.NewDecoder(bytes.NewReader(env.Data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return env.RequestID, fmt.Errorf("%s %s: decode response data: %w", method, path, err)
	}
	return env.RequestID, nil
}
