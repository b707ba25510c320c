package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// reqState is what the middleware learns about one request: its id, the
// access log's tenant and account, the route's path parameters and the
// authenticated caller. withRequestID stores it in the request's context
// once and the later layers fill it in, instead of each deriving another
// context and another copy of the request (five per request before). It
// is written only by the goroutine serving the request, before the
// handler that reads it runs.
type reqState struct {
	id        string
	log       logFields
	params    map[string]string
	principal *Principal
}

type reqStateKey struct{}

// stateOf returns the request's state (nil outside withRequestID).
func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(reqStateKey{}).(*reqState)
	return st
}

// requestID returns the id assigned to the request by withRequestID.
func requestID(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}

// maxRequestIDLen bounds a client-supplied x-request-id; longer or unsafe
// ids are replaced rather than echoed (header injection, log flooding).
const maxRequestIDLen = 200

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// withRequestID takes the caller's x-request-id when it is usable (a blank
// one gets a generated id), echoes it in the response and stores it in the
// request context.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSpace(r.Header.Get("x-request-id"))
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("x-request-id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reqStateKey{}, &reqState{id: id})))
	})
}

// statusRecorder remembers the status code for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (sr *statusRecorder) WriteHeader(code int) {
	if !sr.wrote {
		sr.status, sr.wrote = code, true
	}
	sr.ResponseWriter.WriteHeader(code)
}

func (sr *statusRecorder) Write(b []byte) (int, error) {
	if !sr.wrote {
		sr.status, sr.wrote = http.StatusOK, true
	}
	return sr.ResponseWriter.Write(b)
}

// Flush lets streaming handlers (server-sent events) flush through the recorder.
func (sr *statusRecorder) Flush() {
	if f, ok := sr.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// withRecoverAndLog turns a panic into a 500 error envelope, logged with the
// request id, and writes one structured access-log line per request.
func (s *Server) withRecoverAndLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		ctx, lf := withLogFields(r.Context()) // tenant and account, filled in by API auth
		if ctx != r.Context() {
			r = r.WithContext(ctx)
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic serving request",
					"request_id", requestID(r.Context()), "panic", p, "stack", string(debug.Stack()))
				if !rec.wrote {
					s.writeError(rec, r, http.StatusInternalServerError, "internal_error", "internal server error", nil)
				}
			}
			s.accessLog(r, rec.status, start, lf)
		}()
		next.ServeHTTP(rec, r)
	})
}

// accessLog writes the request's access-log line (request id, method,
// path, status, duration, and the tenant and account of an API request),
// with no allocation for its attributes and nothing at all when the
// logger does not take INFO lines.
func (s *Server) accessLog(r *http.Request, status int, start time.Time, lf *logFields) {
	ctx := r.Context()
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	var buf [7]slog.Attr
	attrs := append(buf[:0], slog.String("request_id", requestID(ctx)), slog.String("method", r.Method),
		slog.String("path", r.URL.EscapedPath()), slog.Int("status", status),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	if lf != nil && lf.tenant != "" {
		attrs = append(attrs, slog.String("tenant_id", lf.tenant))
	}
	if lf != nil && lf.account != "" {
		attrs = append(attrs, slog.String("account_id", lf.account))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

// withDeadline bounds every request's context by RequestTimeout, so database
// work started for a request cannot outlive it. (http.TimeoutHandler would
// also buffer responses, which breaks streaming.)
func (s *Server) withDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
