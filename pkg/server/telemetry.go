package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/decisiongraph/dg/pkg/manifest"
)

// TelemetryConfig turns on OpenTelemetry export and the Prometheus
// endpoint. With no endpoint and Prometheus off, telemetry uses no-op
// providers and costs next to nothing.
type TelemetryConfig struct {
	// OTLPEndpoint is the collector: host:port (plaintext) or an
	// http:// or https:// URL. Empty: no OTLP export.
	OTLPEndpoint string
	// Protocol is "grpc" (default) or "http/protobuf".
	Protocol string
	// Prometheus serves the metrics on GET /metrics.
	Prometheus bool
	// ServiceName is the resource's service.name ("dg").
	ServiceName string
	// Version is the resource's service.version.
	Version string
	// MetricInterval is how often metrics are pushed over OTLP (10s).
	MetricInterval time.Duration
}

// TelemetryConfigFrom maps the manifest's telemetry section.
func TelemetryConfigFrom(m *manifest.Manifest) TelemetryConfig {
	return TelemetryConfig{OTLPEndpoint: m.Telemetry.OTLPEndpoint, Protocol: m.Telemetry.Protocol, Prometheus: m.Telemetry.Prometheus}
}

// Telemetry holds a node's tracer and meter and the instruments the
// server records into.
type Telemetry struct {
	tracer     trace.Tracer
	meter      metric.Meter
	propagator propagation.TextMapPropagator
	prom       http.Handler
	enabled    bool
	shutdown   []func(context.Context) error

	requestDuration metric.Float64Histogram
	appendCount     metric.Int64Counter
	appendErrors    metric.Int64Counter
	appendDuration  metric.Float64Histogram
}

// metricPrefix is the prefix of every metric name (operations spec §12.4).
const metricPrefix = "decision_graph."

// NewTelemetry builds the providers cfg asks for. Shutdown flushes them.
func NewTelemetry(ctx context.Context, cfg TelemetryConfig) (*Telemetry, error) {
	t := &Telemetry{propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
	if cfg.ServiceName == "" {
		cfg.ServiceName = "dg"
	}
	if cfg.MetricInterval <= 0 {
		cfg.MetricInterval = 10 * time.Second
	}
	res := resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.namespace", "decisiongraph"), attribute.String("service.version", cfg.Version))
	var readers []sdkmetric.Option
	var tp trace.TracerProvider = tracenoop.NewTracerProvider()
	if cfg.OTLPEndpoint != "" {
		spanExp, metricExp, err := otlpExporters(ctx, cfg)
		if err != nil {
			return nil, err
		}
		stp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(spanExp), sdktrace.WithResource(res))
		t.shutdown = append(t.shutdown, stp.Shutdown)
		tp = stp
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExp, sdkmetric.WithInterval(cfg.MetricInterval))))
	}
	if cfg.Prometheus {
		reg := promclient.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(exp))
		t.prom = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	var mp metric.MeterProvider = metricnoop.NewMeterProvider()
	if len(readers) > 0 {
		smp := sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
		t.shutdown = append(t.shutdown, smp.Shutdown)
		mp = smp
	}
	t.enabled = cfg.OTLPEndpoint != "" || cfg.Prometheus
	t.tracer = tp.Tracer("github.com/decisiongraph/dg/pkg/server")
	t.meter = mp.Meter("github.com/decisiongraph/dg/pkg/server")
	if err := t.instruments(); err != nil {
		return nil, err
	}
	return t, nil
}

// otlpExporters builds the span and metric exporters for the endpoint and
// protocol. A bare host:port is plaintext; a URL picks by its scheme.
func otlpExporters(ctx context.Context, cfg TelemetryConfig) (sdktrace.SpanExporter, sdkmetric.Exporter, error) {
	ep := cfg.OTLPEndpoint
	isURL := strings.Contains(ep, "://")
	if isURL {
		if _, err := url.Parse(ep); err != nil {
			return nil, nil, fmt.Errorf("telemetry: otlp_endpoint %q: %w", ep, err)
		}
	}
	switch cfg.Protocol {
	case "http/protobuf", "http":
		var topts []otlptracehttp.Option
		var mopts []otlpmetrichttp.Option
		if isURL {
			u, _ := url.Parse(ep)
			base := strings.TrimSuffix(u.String(), "/")
			topts = append(topts, otlptracehttp.WithEndpointURL(base+"/v1/traces"))
			mopts = append(mopts, otlpmetrichttp.WithEndpointURL(base+"/v1/metrics"))
		} else {
			topts = append(topts, otlptracehttp.WithEndpoint(ep), otlptracehttp.WithInsecure())
			mopts = append(mopts, otlpmetrichttp.WithEndpoint(ep), otlpmetrichttp.WithInsecure())
		}
		se, err := otlptracehttp.New(ctx, topts...)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: otlp http trace exporter: %w", err)
		}
		me, err := otlpmetrichttp.New(ctx, mopts...)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: otlp http metric exporter: %w", err)
		}
		return se, me, nil
	case "grpc", "":
		var topts []otlptracegrpc.Option
		var mopts []otlpmetricgrpc.Option
		if isURL {
			topts = append(topts, otlptracegrpc.WithEndpointURL(ep))
			mopts = append(mopts, otlpmetricgrpc.WithEndpointURL(ep))
		} else {
			topts = append(topts, otlptracegrpc.WithEndpoint(ep), otlptracegrpc.WithInsecure())
			mopts = append(mopts, otlpmetricgrpc.WithEndpoint(ep), otlpmetricgrpc.WithInsecure())
		}
		se, err := otlptracegrpc.New(ctx, topts...)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: otlp grpc trace exporter: %w", err)
		}
		me, err := otlpmetricgrpc.New(ctx, mopts...)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: otlp grpc metric exporter: %w", err)
		}
		return se, me, nil
	}
	return nil, nil, fmt.Errorf("telemetry: unknown protocol %q (use grpc or http/protobuf)", cfg.Protocol)
}

// Enabled reports whether anything is exported.
func (t *Telemetry) Enabled() bool { return t != nil && t.enabled }

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	for _, f := range t.shutdown {
		if err := f(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Tracer is the server's tracer (a no-op one when nothing is exported).
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// Meter is the server's meter.
func (t *Telemetry) Meter() metric.Meter { return t.meter }

// pattern is the route pattern a request matches ("" when none), e.g.
// /api/v1/traces/{trace_id}: span names and metric labels use it, never
// the raw path, so ids do not blow up cardinality.
func (rt *router) pattern(r *http.Request) string {
	segs := splitPath(r.URL.EscapedPath())
	for _, rte := range rt.routes {
		if _, ok := rte.match(segs); ok {
			return "/" + strings.Join(rte.segments, "/")
		}
	}
	return ""
}

// telemetryRecorder remembers the status for the span and the histogram.
type telemetryRecorder struct {
	http.ResponseWriter
	status int
}

func (tr *telemetryRecorder) WriteHeader(code int) {
	if tr.status == 0 {
		tr.status = code
	}
	tr.ResponseWriter.WriteHeader(code)
}

func (tr *telemetryRecorder) Write(b []byte) (int, error) {
	if tr.status == 0 {
		tr.status = http.StatusOK
	}
	return tr.ResponseWriter.Write(b)
}

func (tr *telemetryRecorder) Flush() {
	if f, ok := tr.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (tr *telemetryRecorder) Unwrap() http.ResponseWriter { return tr.ResponseWriter }

// wrap is the outermost middleware: it continues the caller's trace from
// traceparent, opens a server span named "METHOD route" and records the
// request duration by route, method and status.
func (t *Telemetry) wrap(rt *router, next http.Handler) http.Handler {
	if !t.enabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := rt.pattern(r)
		if route == "" {
			route = "unmatched"
		}
		ctx := t.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", route),
				attribute.String("url.path", r.URL.Path)))
		rec := &telemetryRecorder{ResponseWriter: w}
		defer func() {
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, strconv.Itoa(status))
			}
			span.End()
			t.requestDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(
				attribute.String("http.route", route), attribute.String("http.request.method", r.Method),
				attribute.Int("http.response.status_code", status)))
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

// span starts a child span of the request's (a no-op when disabled).
func (t *Telemetry) span(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil || !t.enabled {
		return ctx, trace.SpanFromContext(context.Background()) // a no-op span
	}
	return t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}
