package server

import (
	"context"
	"time"
)

// startTelemetry builds the node's telemetry from the manifest (no-op
// providers when neither OTLP nor Prometheus is configured), registers
// the database gauges and returns the function that flushes it on exit.
func (n *node) startTelemetry(ctx context.Context) (*Telemetry, func(), error) {
	cfg := TelemetryConfigFrom(n.m)
	t, err := NewTelemetry(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	var jobs func() int
	if n.replays != nil {
		jobs = n.replays.Active
	}
	if err := t.RegisterNodeGauges(n.pool, jobs); err != nil {
		_ = t.Shutdown(ctx)
		return nil, nil, err
	}
	if t.Enabled() {
		n.log.Info("telemetry on", "otlp_endpoint", cfg.OTLPEndpoint, "protocol", cfg.Protocol, "prometheus", cfg.Prometheus)
	}
	return t, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.Shutdown(sctx); err != nil {
			n.log.Warn("telemetry: flush on exit", "err", err)
		}
	}, nil
}

// withTelemetry traces the API's event log calls and reports its trace
// cache.
func (n *node) withTelemetry(cfg *APIConfig, t *Telemetry) *APIConfig {
	cfg.Log = t.TraceLog(cfg.Log)
	if cfg.TraceCacheBytes > 0 {
		if err := t.RegisterTraceCache(cfg.TraceCacheStats); err != nil {
			n.log.Warn("telemetry: trace cache metrics", "err", err)
		}
	}
	return cfg
}
