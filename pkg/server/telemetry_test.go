package server_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	colmetric "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

// otlpReceiver is a local OTLP/HTTP collector: it decodes the protobuf
// export requests of traces and metrics.
type otlpReceiver struct {
	mu      sync.Mutex
	spans   []*tracepb.Span
	metrics []string                       // metric names
	attrs   map[string][]map[string]string // metric name -> data point attributes
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch r.URL.Path {
	case "/v1/traces":
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				o.spans = append(o.spans, ss.Spans...)
			}
		}
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	case "/v1/metrics":
		var req colmetric.ExportMetricsServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					o.metrics = append(o.metrics, m.Name)
					if h := m.GetHistogram(); h != nil {
						for _, dp := range h.DataPoints {
							a := map[string]string{}
							for _, kv := range dp.Attributes {
								a[kv.Key] = kv.Value.String()
							}
							o.attrs[m.Name] = append(o.attrs[m.Name], a)
						}
					}
				}
			}
		}
		out, _ := proto.Marshal(&colmetric.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	default:
		http.NotFound(w, r)
	}
}

// TestTelemetryOTLPAndPrometheus: a request carrying a W3C traceparent
// produces a server span named by the route pattern in the caller's
// trace, with a child span for the projection query; the request
// duration histogram reaches the OTLP receiver and /metrics.
func TestTelemetryOTLPAndPrometheus(t *testing.T) {
	recv := &otlpReceiver{attrs: map[string][]map[string]string{}}
	collector := httptest.NewServer(recv)
	defer collector.Close()

	ctx := context.Background()
	tel, err := server.NewTelemetry(ctx, server.TelemetryConfig{OTLPEndpoint: collector.URL, Protocol: "http/protobuf", Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	pool := pgtest.New(t)
	st, err := store.New(ctx, pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pg := projection.NewPG(st, 0)
	cfg := &server.APIConfig{Log: tel.TraceLog(st), Accounts: projAccounts(), RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1},
		Projections: &server.ProjectionsConfig{PG: pg, Pool: pool}}
	srv := server.New(server.Config{Env: "dev", API: cfg, Telemetry: tel, Logger: slog.New(slog.DiscardHandler)})
	h := srv.Handler()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const parentID = "00f067aa0ba902b7"
	r := httptest.NewRequest("GET", "/api/v1/projections/health", nil)
	r.Header.Set("Authorization", "Bearer "+readerToken)
	r.Header.Set("x-tenant-id", tenantA)
	r.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 200 {
		t.Fatalf("health: %d %s", rec.Code, rec.Body)
	}
	// An append: the store span and the appends counter.
	r = httptest.NewRequest("POST", "/api/v1/events", strings.NewReader(string(traceStarted(newTraceID("otel")))))
	r.Header.Set("Authorization", "Bearer "+writerToken)
	r.Header.Set("x-tenant-id", tenantA)
	r.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 201 {
		t.Fatalf("append: %d %s", rec.Code, rec.Body)
	}

	// Prometheus, before the providers shut down.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(text, "decision_graph_web_request_duration_seconds_bucket") ||
		!strings.Contains(text, `http_route="/api/v1/projections/health"`) || !strings.Contains(text, "decision_graph_store_append_stop_count") {
		t.Fatalf("/metrics: %d\n%s", rec.Code, text)
	}

	if err := tel.Shutdown(ctx); err != nil { // flushes spans and metrics
		t.Fatal(err)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	var server_, child, appendSpan *tracepb.Span
	for _, s := range recv.spans {
		switch s.Name {
		case "GET /api/v1/projections/health":
			server_ = s
		case "projection.health":
			child = s
		case "store.append":
			appendSpan = s
		}
	}
	if server_ == nil || child == nil || appendSpan == nil {
		names := []string{}
		for _, s := range recv.spans {
			names = append(names, s.Name)
		}
		t.Fatalf("spans received: %v", names)
	}
	if server_.Kind != tracepb.Span_SPAN_KIND_SERVER || hex.EncodeToString(server_.TraceId) != traceID || hex.EncodeToString(server_.ParentSpanId) != parentID {
		t.Fatalf("server span: kind %v trace %x parent %x", server_.Kind, server_.TraceId, server_.ParentSpanId)
	}
	route := ""
	for _, kv := range server_.Attributes {
		if kv.Key == "http.route" {
			route = kv.Value.GetStringValue()
		}
	}
	if route != "/api/v1/projections/health" {
		t.Fatalf("http.route = %q", route)
	}
	if string(child.ParentSpanId) != string(server_.SpanId) {
		t.Fatal("the projection span is not a child of the server span")
	}
	found := false
	for _, a := range recv.attrs["decision_graph.web.request.duration"] {
		if strings.Contains(a["http.route"], "/api/v1/projections/health") && strings.Contains(a["http.response.status_code"], "200") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no duration data point for the route: metrics %v, points %v", recv.metrics, recv.attrs)
	}
}

// TestTelemetryOff: without an endpoint or Prometheus, nothing is
// exported and /metrics is not served.
func TestTelemetryOff(t *testing.T) {
	tel, err := server.NewTelemetry(context.Background(), server.TelemetryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if tel.Enabled() {
		t.Fatal("telemetry enabled without configuration")
	}
	srv := server.New(server.Config{Env: "dev", Telemetry: tel})
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 404 {
		t.Fatalf("/metrics with Prometheus off: %d", rec.Code)
	}
}

// The trace cache's counters reach /metrics: a fill, a hit confirmed by
// the per-trace statement and one confirmed by the tenant mark.
func TestTelemetryTraceCacheMetrics(t *testing.T) {
	ctx := context.Background()
	tel, err := server.NewTelemetry(ctx, server.TelemetryConfig{Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	pool := pgtest.New(t)
	st, err := store.New(ctx, pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pg := projection.NewPG(st, 0)
	id := newTraceID("cache-metrics")
	for _, env := range fastTraceEvents(rand.New(rand.NewPCG(1, 2)), id, 3, false) {
		if _, err := st.Append(ctx, tenantA, env); err != nil {
			t.Fatal(err)
		}
	}
	catchUpAll(t, pg, tenantA)
	cfg := &server.APIConfig{Log: tel.TraceLog(st), Accounts: testAccounts(), RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1},
		TraceSummaryPG: pg, TraceCacheBytes: 1 << 20}
	if err := tel.RegisterTraceCache(cfg.TraceCacheStats); err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Env: "dev", API: cfg, Telemetry: tel, Logger: slog.New(slog.DiscardHandler)})
	h := srv.Handler()
	for i := 0; i < 3; i++ {
		r := httptest.NewRequest("GET", "/api/v1/traces/"+url.PathEscape(id), nil)
		r.Header.Set("Authorization", "Bearer "+readerToken)
		r.Header.Set("x-tenant-id", tenantA)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != 200 {
			t.Fatalf("read %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for name, want := range map[string]string{"hits_total": "2", "mark_hits_total": "1", "validations_total": "1", "mark_checks_total": "1",
		"misses_total": "0", "entries": "1"} {
		re := regexp.MustCompile(`(?m)^decision_graph_api_trace_cache_` + name + `(\{[^}]*\})? (\S+)$`)
		m := re.FindStringSubmatch(text)
		if m == nil || m[2] != want {
			t.Errorf("trace cache %s: %v, want %s", name, m, want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}
