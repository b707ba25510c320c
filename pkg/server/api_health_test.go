package server

import (
	"context"
	"testing"

	"github.com/decisiongraph/dg/pkg/auth"
)

// TestHealthzShowsAuth: /api/healthz reports where the accounts came from,
// how many there are and the operator console account, never tokens.
func TestHealthzShowsAuth(t *testing.T) {
	reg, err := auth.Load(auth.Config{DevTokens: true, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Env: "dev", HealthDetails: withAuthHealth(map[string]func(context.Context) (any, error){}, reg)})
	rec := do(s.Handler(), "GET", "/api/healthz", nil)
	if rec.Code != 200 {
		t.Fatalf("healthz: %d", rec.Code)
	}
	a := decode(t, rec)["auth"].(map[string]any)
	if a["bootstrap_source"] != "application_env" || a["configured_accounts"] != float64(3) || a["operator_console_account_id"] != "dev-admin" {
		t.Fatalf("auth section: %v", a)
	}
	if body := rec.Body.String(); contains(body, auth.DevAdminToken) {
		t.Fatalf("healthz leaks a token: %s", body)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
