package server

import (
	"context"
	"net/http"
	"sort"
	"time"
)

// handleHealthz is the liveness probe. Like the reference it answers 200
// while the process serves, with details in the body; a failing section is
// reported as {"status":"unavailable","reason":...} inside the body.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{
		"status":         "ok",
		"deployment_env": s.cfg.Env,
	}
	names := make([]string, 0, len(s.cfg.HealthDetails))
	for name := range s.cfg.HealthDetails {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		v, err := s.cfg.HealthDetails[name](ctx)
		cancel()
		if err != nil {
			body[name] = map[string]any{"status": "unavailable", "reason": err.Error()}
			continue
		}
		body[name] = v
	}
	s.writeJSON(w, r, http.StatusOK, body)
}

type checkResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// handleReadyz is the readiness probe: 503 unless every configured check
// passes (database answers, migrations current, projectors running).
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	results := make(map[string]checkResult, len(s.cfg.Readiness))
	ready := true
	for _, c := range s.cfg.Readiness {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		err := c.Run(ctx)
		cancel()
		if err != nil {
			ready = false
			results[c.Name] = checkResult{OK: false, Error: err.Error()}
			continue
		}
		results[c.Name] = checkResult{OK: true}
	}
	status, code := "ready", http.StatusOK
	if !ready {
		status, code = "not_ready", http.StatusServiceUnavailable
	}
	s.writeJSON(w, r, code, map[string]any{"status": status, "checks": results, "request_id": requestID(r.Context())})
}
