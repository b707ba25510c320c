package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/audit"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// DefaultBodyLimit bounds request bodies when APIConfig.BodyLimit is 0.
const DefaultBodyLimit = 1 << 20

// EventLog is what the API needs from the event log; *store.Store has it.
type EventLog interface {
	Append(ctx context.Context, tenant string, env *event.Envelope) (*store.AppendResult, error)
	TraceEvents(ctx context.Context, tenant, traceID string, sinceTraceSeq int64, limit int) ([]*event.StoredEvent, error)
}

// APIConfig turns on the /api/v1 routes.
type APIConfig struct {
	// Log is the event log (required).
	Log EventLog
	// Accounts authenticates requests (required).
	Accounts *auth.Registry
	// BodyLimit is the largest accepted request body (server.body_limit;
	// 0: DefaultBodyLimit). Larger bodies get 413 without being read.
	BodyLimit int64
	// RateLimits per scope; zero fields take the defaults.
	RateLimits RateLimits
	// TraceSummary, when set, supplies the projected summary of
	// GET /api/v1/traces/{trace_id}. It returns *event.Error values for
	// projection_out_of_date (409) and not_found (404). While it is nil the
	// route answers from the event log alone with "summary": null.
	// HOOK(projections): set it from pkg/projection's trace-summary query.
	TraceSummary func(ctx context.Context, tenant, traceID string) (any, error)
	// TraceSummaryPG, when set, is the projection engine whose trace
	// summary the trace route serves, on the same database as Log; it
	// replaces TraceSummary (which is then not called). The route reads
	// the freshness inputs, the summary row and the events in one
	// statement (traces_fast.go) and falls back to TraceSummaryFrom(pg)
	// when that read cannot answer.
	TraceSummaryPG *projection.PG
	// TraceCacheBytes, when positive (and TraceSummaryPG is set), keeps
	// rendered trace events up to this many bytes; each read still checks
	// the projection and the trace's last event in one statement
	// (traces_cache.go).
	TraceCacheBytes int64
	traceCache      *traceCache // set by registerAPI
	// ProjectionSync, when set, is called after each new append to nudge
	// the tenant's projection workers; its result is the response's
	// projection_sync_triggered.
	ProjectionSync func(tenant string) bool
	// Audit records sensitive actions (nil: log lines only).
	Audit *audit.Log
	// Now is the clock of the rate limiter (nil: time.Now).
	Now func() time.Time
	// Workflows, when set, serves the workflow and studio routes
	// (workflows.go, studio.go).
	Workflows *workflow.Service
	// Projections, when set, serves the graph, precedent, projection
	// health and admin replay routes (projections.go, replays.go).
	Projections *ProjectionsConfig
}

// family is a route family: the roles it accepts and its rate-limit scope.
type family struct {
	name  string
	roles []string
	scope string
}

// The three route families (HTTP spec §3.4). No role inherits another.
var (
	familyReader = family{"reader", []string{auth.RoleReader, auth.RoleWriter, auth.RoleAdmin}, ScopeRead}
	familyWriter = family{"writer", []string{auth.RoleWriter, auth.RoleAdmin}, ScopeWrite}
	familyAdmin  = family{"admin", []string{auth.RoleAdmin}, ScopeAdmin}
)

// Principal is the authenticated caller of an API request.
type Principal struct {
	Account *auth.Account
	// Tenant is the trimmed x-tenant-id every read and write is scoped to.
	Tenant string
}

type principalKey struct{}

// PrincipalFrom returns the caller of an authenticated API request.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	if st := stateOf(ctx); st != nil && st.principal != nil {
		return st.principal, true
	}
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// apiHandler is an API route's handler; p is the authenticated caller.
type apiHandler func(w http.ResponseWriter, r *http.Request, p *Principal)

// api is the state of the /api/v1 routes. Route groups added later
// (projections, workflows, replays) register through (*api).route so
// they get the same auth, rate limiting, logging and envelopes.
type api struct {
	s       *Server
	cfg     *APIConfig
	limiter *rateLimiter
}

// registerAPI adds the /api/v1 routes to s.
func registerAPI(s *Server, cfg *APIConfig) *api {
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.traceCache = newTraceCache(cfg.TraceCacheBytes)
	a := &api{s: s, cfg: cfg, limiter: newRateLimiter(cfg.RateLimits, cfg.Now)}
	a.route(http.MethodPost, "/api/v1/events", familyWriter, a.handleAppendEvent)
	a.route(http.MethodGet, "/api/v1/traces/{trace_id}", familyReader, a.handleGetTrace)
	a.registerWorkflows()
	a.registerProjections()
	return a
}

// route registers an API route behind authentication (§3.2) and the rate
// limiter (§4).
func (a *api) route(method, pattern string, fam family, h apiHandler) {
	a.s.router.handle(method, pattern, func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.authenticate(w, r, fam)
		if !ok {
			return
		}
		if !a.allow(w, r, fam.scope, p) {
			return
		}
		if st := stateOf(r.Context()); st != nil {
			st.principal = p
		} else {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		h(w, r, p)
	})
}

// logFields carries what the access-log line reports beyond the request
// id: the tenant and account of an API request, filled in by authenticate.
type logFields struct {
	tenant  string
	account string
}

type logFieldsKey struct{}

// withLogFields gives a request a logFields holder (see withRecoverAndLog):
// the one in its state, or one in a derived context.
func withLogFields(ctx context.Context) (context.Context, *logFields) {
	if st := stateOf(ctx); st != nil {
		return ctx, &st.log
	}
	lf := &logFields{}
	return context.WithValue(ctx, logFieldsKey{}, lf), lf
}

func logFieldsFrom(ctx context.Context) *logFields {
	if st := stateOf(ctx); st != nil {
		return &st.log
	}
	lf, _ := ctx.Value(logFieldsKey{}).(*logFields)
	return lf
}

// attrs are the holder's slog attributes (none for non-API requests).
func (lf *logFields) attrs() []any {
	if lf == nil {
		return nil
	}
	var out []any
	if lf.tenant != "" {
		out = append(out, "tenant_id", lf.tenant)
	}
	if lf.account != "" {
		out = append(out, "account_id", lf.account)
	}
	return out
}

// logAttrs are the request id, tenant and account of r for handler logs.
func logAttrs(r *http.Request) []any {
	return append([]any{"request_id", requestID(r.Context())}, logFieldsFrom(r.Context()).attrs()...)
}

// statusOf maps an event error code to its HTTP status (§5.3).
func statusOf(c event.Code) int {
	switch c {
	case event.CodeInvalidArgument:
		return http.StatusBadRequest
	case event.CodeNotFound:
		return http.StatusNotFound
	case event.CodeConflict, event.CodeIdempotencyConflict, event.CodeEventSequenceInvalid, event.CodeProjectionOutOfDate:
		return http.StatusConflict
	case event.CodeSchemaViolation, event.CodePIIPolicyViolation:
		return http.StatusUnprocessableEntity
	case event.CodeStorage:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeFailure answers err with the error envelope: an *event.Error with
// its code's status and name (details plus the JSON path as "path"), a
// timeout or closed store as 503 storage, anything else from the storage
// layer as 503 storage too (logged with the request's ids).
func (a *api) writeFailure(w http.ResponseWriter, r *http.Request, err error) {
	var ee *event.Error
	if errors.As(err, &ee) {
		details := make(map[string]any, len(ee.Details)+1)
		for k, v := range ee.Details {
			details[k] = v
		}
		if ee.Path != "" {
			if _, taken := details["path"]; !taken {
				details["path"] = ee.Path
			}
		}
		status := statusOf(ee.Code)
		code := ee.Code.Name()
		if status == http.StatusInternalServerError {
			code = "internal_error"
		}
		if status >= 500 {
			a.s.log.ErrorContext(r.Context(), "api request failed", append(logAttrs(r), "code", code, "err", err)...)
		}
		a.s.writeError(w, r, status, code, ee.Message, details)
		return
	}
	msg := "the database did not answer; retry later"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		msg = "the request timed out waiting for the database; retry later (appends are safe to retry with the same idempotency key)"
	case errors.Is(err, context.Canceled):
		msg = "the request was cancelled"
	case errors.Is(err, store.ErrClosed):
		msg = "dg is shutting down; retry against another node or after restart"
	}
	a.s.log.ErrorContext(r.Context(), "api storage failure", append(logAttrs(r), "err", err)...)
	a.s.writeError(w, r, http.StatusServiceUnavailable, event.CodeStorage.Name(), msg, nil)
}

// queryList reads a list filter given as repeated parameters, as
// comma-separated values, or both (a=x&a=y,z is [x y z]): blanks are
// dropped, order kept, duplicates removed.
func queryList(r *http.Request, key string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range r.URL.Query()[key] {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part != "" && !seen[part] {
				seen[part] = true
				out = append(out, part)
			}
		}
	}
	return out
}
