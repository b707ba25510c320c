package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Check is one named readiness check; it returns nil when healthy.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Config configures the listener.
type Config struct {
	// Listen is the TCP address, e.g. "127.0.0.1:4100".
	Listen string
	// Env is the deployment environment ("dev" or "prod"), reported by healthz.
	Env string
	// RequestTimeout bounds each request's context. Zero means 30s.
	RequestTimeout time.Duration
	// ShutdownTimeout bounds the drain on shutdown. Zero means 15s.
	ShutdownTimeout time.Duration
	// Readiness lists what /api/readyz checks (database, migrations, projectors...).
	Readiness []Check
	// HealthDetails contributes sections to the /api/healthz body (store,
	// projector, auth...). Each function's error is reported in its section,
	// never as a failed probe.
	HealthDetails map[string]func(ctx context.Context) (any, error)
	Logger        *slog.Logger
	// API, when set, serves the authenticated /api/v1 routes (api.go).
	API *APIConfig
	// Console, when set, serves the operator console under /console
	// (console.go).
	Console *ConsoleConfig
	// Telemetry, when set, traces and measures every request and serves
	// /metrics when Prometheus is on (telemetry.go).
	Telemetry *Telemetry
}

// Server is dg's HTTP server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	router  *router
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.router = &router{s: s}
	s.router.handle(http.MethodGet, "/api/healthz", s.handleHealthz)
	s.router.handle(http.MethodGet, "/api/readyz", s.handleReadyz)
	if cfg.API != nil {
		registerAPI(s, cfg.API)
	}
	if cfg.Console != nil {
		registerConsole(s, cfg.Console)
	}
	s.handler = s.withRequestID(s.withRecoverAndLog(s.withDeadline(s.router)))
	if t := cfg.Telemetry; t != nil {
		if t.prom != nil {
			s.router.handle(http.MethodGet, "/metrics", t.metricsHandler())
		}
		s.handler = t.wrap(s.router, s.handler)
	}
	return s
}

// Handler returns the root handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on cfg.Listen and serves until ctx is cancelled, then drains
// in-flight requests for up to ShutdownTimeout. ready, when non-nil, receives
// the bound address once the listener is open.
func (s *Server) Run(ctx context.Context, ready func(addr net.Addr)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another process using the port? change server.listen)", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln, ready)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener, ready func(addr net.Addr)) error {
	hs := &http.Server{
		Handler:           s.handler,
		ConnContext:       connContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(gatherListener{ln}) }()
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		_ = hs.Close()
		return fmt.Errorf("drain http requests: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}
