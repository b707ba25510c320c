package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// Request-duration buckets in seconds: the API's reads are expected in
// single milliseconds, so the low end is fine-grained.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// instruments creates the synchronous instruments (names: operations
// spec §12.4, prefix decision_graph).
func (t *Telemetry) instruments() error {
	var err error
	if t.requestDuration, err = t.meter.Float64Histogram(metricPrefix+"web.request.duration", metric.WithUnit("s"),
		metric.WithDescription("HTTP request duration by route pattern, method and status."),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return fmt.Errorf("telemetry: request histogram: %w", err)
	}
	if t.appendCount, err = t.meter.Int64Counter(metricPrefix+"store.append.stop.count",
		metric.WithDescription("Events appended through the API (new and idempotent replays).")); err != nil {
		return fmt.Errorf("telemetry: append counter: %w", err)
	}
	if t.appendErrors, err = t.meter.Int64Counter(metricPrefix+"store.append.exception.count",
		metric.WithDescription("Appends refused or failed, by error code.")); err != nil {
		return fmt.Errorf("telemetry: append error counter: %w", err)
	}
	if t.appendDuration, err = t.meter.Float64Histogram(metricPrefix+"store.append.stop.duration", metric.WithUnit("s"),
		metric.WithDescription("Append duration in the event log."), metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return fmt.Errorf("telemetry: append histogram: %w", err)
	}
	return nil
}

// metricsHandler serves /metrics (404 envelope when Prometheus is off).
func (t *Telemetry) metricsHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { t.prom.ServeHTTP(w, r) }
}

// TraceLog wraps an event log so each append and trace read is a child
// span of the request and appends are counted. With telemetry off it
// returns log unchanged.
func (t *Telemetry) TraceLog(log EventLog) EventLog {
	if !t.Enabled() {
		return log
	}
	return &tracedLog{log: log, t: t}
}

type tracedLog struct {
	log EventLog
	t   *Telemetry
}

func (l *tracedLog) Append(ctx context.Context, tenant string, env *event.Envelope) (*store.AppendResult, error) {
	ctx, span := l.t.span(ctx, "store.append", attribute.String("dg.tenant", tenant))
	defer span.End()
	start := time.Now()
	res, err := l.log.Append(ctx, tenant, env)
	if err != nil {
		code := "storage"
		if c, ok := event.CodeOf(err); ok {
			code = c.Name()
		}
		span.SetStatus(codes.Error, code)
		l.t.appendErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("error_code", code)))
		return res, err
	}
	l.t.appendDuration.Record(ctx, time.Since(start).Seconds())
	l.t.appendCount.Add(ctx, 1)
	return res, nil
}

func (l *tracedLog) TraceEvents(ctx context.Context, tenant, traceID string, sinceTraceSeq int64, limit int) ([]*event.StoredEvent, error) {
	ctx, span := l.t.span(ctx, "store.trace_events", attribute.String("dg.tenant", tenant))
	defer span.End()
	evs, err := l.log.TraceEvents(ctx, tenant, traceID, sinceTraceSeq, limit)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return evs, err
}

// RegisterNodeGauges adds the gauges read from the database at each
// collection: projector lag (pending_events) and open failures by tenant
// and projection, active replay jobs of this process, and workflow items
// open, overdue and escalated by tenant.
func (t *Telemetry) RegisterNodeGauges(pool *pgxpool.Pool, activeJobs func() int) error {
	if !t.Enabled() {
		return nil
	}
	lag, err := t.meter.Int64ObservableGauge(metricPrefix+"projector.pending_events",
		metric.WithDescription("Distance in log_seq between a tenant's last event and a projection's checkpoint."))
	if err != nil {
		return fmt.Errorf("telemetry: lag gauge: %w", err)
	}
	failures, err := t.meter.Int64ObservableGauge(metricPrefix+"projector.open_failures",
		metric.WithDescription("Open projection failures."))
	if err != nil {
		return fmt.Errorf("telemetry: failures gauge: %w", err)
	}
	jobs, err := t.meter.Int64ObservableGauge(metricPrefix+"projector.active_replay_jobs",
		metric.WithDescription("Replay jobs running in this process."))
	if err != nil {
		return fmt.Errorf("telemetry: jobs gauge: %w", err)
	}
	wfOpen, err := t.meter.Int64ObservableGauge(metricPrefix+"workflow.open", metric.WithDescription("Open workflow items."))
	if err != nil {
		return fmt.Errorf("telemetry: workflow gauge: %w", err)
	}
	wfOverdue, err := t.meter.Int64ObservableGauge(metricPrefix+"workflow.overdue", metric.WithDescription("Open workflow items past their SLA."))
	if err != nil {
		return fmt.Errorf("telemetry: workflow gauge: %w", err)
	}
	wfEscalated, err := t.meter.Int64ObservableGauge(metricPrefix+"workflow.escalated", metric.WithDescription("Escalated workflow items."))
	if err != nil {
		return fmt.Errorf("telemetry: workflow gauge: %w", err)
	}
	_, err = t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if activeJobs != nil {
			o.ObserveInt64(jobs, int64(activeJobs()))
		}
		rows, err := pool.Query(ctx, `SELECT c.tenant_id, c.projection_name,
				GREATEST((SELECT COALESCE(max(e.log_seq), 0) FROM dg_event_log e WHERE e.tenant_id = c.tenant_id) - c.last_log_seq, 0),
				(SELECT count(*) FROM dg_projection_failures f WHERE f.tenant_id = c.tenant_id AND f.projection_name = c.projection_name AND f.status = 'open')
			FROM dg_projection_cursors c`)
		if err != nil {
			return fmt.Errorf("read projector lag: %w", err)
		}
		var tenant, name string
		var pending, open int64
		if _, err := pgx.ForEachRow(rows, []any{&tenant, &name, &pending, &open}, func() error {
			attrs := metric.WithAttributes(attribute.String("tenant_id", tenant), attribute.String("projection", name))
			o.ObserveInt64(lag, pending, attrs)
			o.ObserveInt64(failures, open, attrs)
			return nil
		}); err != nil {
			return fmt.Errorf("read projector lag: %w", err)
		}
		rows, err = pool.Query(ctx, `SELECT tenant_id, count(*),
				count(*) FILTER (WHERE sla_due_at IS NOT NULL AND sla_due_at < now()),
				count(*) FILTER (WHERE status = 'escalated')
			FROM dg_workflow_items WHERE status IN ('requested', 'in_review', 'changes_requested', 'escalated') GROUP BY tenant_id`)
		if err != nil {
			return fmt.Errorf("read workflow counts: %w", err)
		}
		var nOpen, nOverdue, nEscalated int64
		_, err = pgx.ForEachRow(rows, []any{&tenant, &nOpen, &nOverdue, &nEscalated}, func() error {
			attrs := metric.WithAttributes(attribute.String("tenant_id", tenant))
			o.ObserveInt64(wfOpen, nOpen, attrs)
			o.ObserveInt64(wfOverdue, nOverdue, attrs)
			o.ObserveInt64(wfEscalated, nEscalated, attrs)
			return nil
		})
		return err
	}, lag, failures, jobs, wfOpen, wfOverdue, wfEscalated)
	if err != nil {
		return fmt.Errorf("telemetry: register gauges: %w", err)
	}
	return nil
}

// RegisterTraceCache adds the trace cache's counters (read from stats at
// each collection): hits (and those confirmed by a tenant mark alone),
// misses, evictions, the validation statements run, and the entries and
// bytes held.
func (t *Telemetry) RegisterTraceCache(stats func() TraceCacheStats) error {
	if !t.Enabled() {
		return nil
	}
	counter := func(name, desc string) (metric.Int64ObservableCounter, error) {
		c, err := t.meter.Int64ObservableCounter(metricPrefix+"api.trace_cache."+name, metric.WithDescription(desc))
		if err != nil {
			return nil, fmt.Errorf("telemetry: trace cache %s: %w", name, err)
		}
		return c, nil
	}
	gauge := func(name, desc string) (metric.Int64ObservableGauge, error) {
		g, err := t.meter.Int64ObservableGauge(metricPrefix+"api.trace_cache."+name, metric.WithDescription(desc))
		if err != nil {
			return nil, fmt.Errorf("telemetry: trace cache %s: %w", name, err)
		}
		return g, nil
	}
	var errs []error
	must := func(o metric.Int64Observable, err error) metric.Int64Observable {
		errs = append(errs, err)
		return o
	}
	hits := must(counter("hits", "Trace reads answered from the trace cache."))
	markHits := must(counter("mark_hits", "Trace cache hits confirmed by the tenant's mark alone, without a per-trace statement."))
	misses := must(counter("misses", "Trace cache entries found stale and read again."))
	evicted := must(counter("evicted", "Trace cache entries evicted to stay within the budget."))
	validations := must(counter("validations", "Per-trace validation statements run for cached traces."))
	markChecks := must(counter("mark_checks", "Tenant mark statements run for cached traces."))
	entries := must(gauge("entries", "Traces held in the trace cache."))
	bytes := must(gauge("bytes", "Approximate bytes held by the trace cache."))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err := t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(hits, s.Hits)
		o.ObserveInt64(markHits, s.MarkHits)
		o.ObserveInt64(misses, s.Misses)
		o.ObserveInt64(evicted, s.Evicted)
		o.ObserveInt64(validations, s.Validations)
		o.ObserveInt64(markChecks, s.MarkChecks)
		o.ObserveInt64(entries, int64(s.Entries))
		o.ObserveInt64(bytes, s.Bytes)
		return nil
	}, hits, markHits, misses, evicted, validations, markChecks, entries, bytes)
	if err != nil {
		return fmt.Errorf("telemetry: register trace cache metrics: %w", err)
	}
	return nil
}
