// Package client is a small Go client for dg's HTTP API: append an event,
// read a trace, read /api/healthz. Failures from the server come back as
// *Error carrying the HTTP status, the error code, the message, details
// and the request id, so callers branch on Code rather than on text.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
)

// Client talks to one dg node as one service account in one tenant. It is
// safe for concurrent use.
type Client struct {
	base   string
	token  string
	tenant string
	http   *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient uses hc (for transports tuned for many connections, or
// test servers) instead of a client with a 30s timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New returns a client for the node at baseURL (e.g. http://127.0.0.1:4100)
// that authenticates with token and scopes every call to tenant.
func New(baseURL, token, tenant string, opts ...Option) *Client {
	c := &Client{
		base:   strings.TrimRight(baseURL, "/"),
		token:  token,
		tenant: tenant,
		http:   &http.Client{Timeout: 30 * time.Second},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Error is a failed API call.
type Error struct {
	Status    int
	Code      string // e.g. "invalid_argument"; "" when the body was not an error envelope
	Message   string
	Details   map[string]any
	RequestID string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("dg API returned HTTP %d (request %s): %s", e.Status, e.RequestID, e.Message)
	}
	return fmt.Sprintf("dg API: %s (HTTP %d, request %s): %s", e.Code, e.Status, e.RequestID, e.Message)
}

// CodeOf returns the API error code of err ("" if err is not an *Error).
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// AppendResult is the answer to an append.
type AppendResult struct {
	Event                   *event.StoredEvent
	Raw                     json.RawMessage // the stored event as the server sent it
	ProjectionSyncTriggered bool
	RequestID               string
}

// AppendEvent appends env to the client's tenant. An idempotent retry
// returns the stored original.
func (c *Client) AppendEvent(ctx context.Context, env *event.Envelope) (*AppendResult, error) {
	body, err := event.EncodeEnvelope(env)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", env.EventID, err)
	}
	return c.AppendEventJSON(ctx, body)
}

// AppendEventJSON appends an event given as its JSON document.
func (c *Client) AppendEventJSON(ctx context.Context, body []byte) (*AppendResult, error) {
	var resp struct {
		Data struct {
			Event                   json.RawMessage `json:"event"`
			ProjectionSyncTriggered bool            `json:"projection_sync_triggered"`
		} `json:"data"`
		RequestID string `json:"request_id"`
	}
	b, err := c.send(ctx, http.MethodPost, "/api/v1/events", body)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &resp); err != nil || len(resp.Data.Event) == 0 {
		return nil, fmt.Errorf("POST /api/v1/events: the response is not an append envelope: %v", err)
	}
	ev, err := decodeStored(resp.Data.Event)
	if err != nil {
		return nil, err
	}
	return &AppendResult{Event: ev, Raw: resp.Data.Event, ProjectionSyncTriggered: resp.Data.ProjectionSyncTriggered, RequestID: resp.RequestID}, nil
}

// Trace is the answer to GetTrace.
type Trace struct {
	Events []*event.StoredEvent
	// Summary is the projected trace summary (nil until projections serve it).
	Summary   map[string]any
	RequestID string
}

// GetTrace reads a trace of the client's tenant.
func (c *Client) GetTrace(ctx context.Context, traceID string) (*Trace, error) {
	var data struct {
		Events  []json.RawMessage `json:"events"`
		Summary map[string]any    `json:"summary"`
	}
	rid, err := c.do(ctx, http.MethodGet, "/api/v1/traces/"+EscapeSegment(traceID), nil, &data)
	if err != nil {
		return nil, err
	}
	t := &Trace{Summary: data.Summary, RequestID: rid}
	for _, raw := range data.Events {
		ev, err := decodeStored(raw)
		if err != nil {
			return nil, err
		}
		t.Events = append(t.Events, ev)
	}
	return t, nil
}

// Healthz reads /api/healthz (no auth, not enveloped).
func (c *Client) Healthz(ctx context.Context) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/healthz", nil)
	if err != nil {
		return nil, fmt.Errorf("build healthz request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /api/healthz: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read healthz: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp, b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("healthz body is not a JSON object: %w", err)
	}
	return out, nil
}

// do sends one authenticated request and decodes the success envelope's
// data into out. It returns the request id.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) (string, error) {
	b, err := c.send(ctx, method, path, body)
	if err != nil {
		return "", err
	}
	var env struct {
		Data      json.RawMessage `json:"data"`
		RequestID string          `json:"request_id"`
	}
	if err := json.Unmarshal(b, &env); err != nil || len(env.Data) == 0 {
		return "", fmt.Errorf("%s %s: the response is not a success envelope: %v", method, path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(env.Data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return env.RequestID, fmt.Errorf("%s %s: decode response data: %w", method, path, err)
	}
	return env.RequestID, nil
}

// send makes one authenticated request and returns the body of a 2xx
// answer; anything else becomes an *Error.
func (c *Client) send(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("x-tenant-id", c.tenant)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return nil, apiError(resp, b)
	}
	return b, nil
}

func apiError(resp *http.Response, body []byte) error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("x-request-id")}
	var env struct {
		Error *struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Code, e.Message, e.Details = env.Error.Code, env.Error.Message, env.Error.Details
		if env.RequestID != "" {
			e.RequestID = env.RequestID
		}
		return e
	}
	e.Message = strings.TrimSpace(string(body))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "..."
	}
	return e
}

func decodeStored(raw json.RawMessage) (*event.StoredEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var ev event.StoredEvent
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("decode stored event: %w", err)
	}
	return &ev, nil
}

// EscapeSegment percent-encodes a path parameter with no safe characters
// beyond the unreserved ones (so ':' and '/' are encoded), as the
// reference's Python client does.
func EscapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
