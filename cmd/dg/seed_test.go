package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decisiongraph/dg/internal/pgtest"
)

func TestSeedCommand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": pgtest.NewURL(t)}
	code, out, errs := runManifestCmd(t, env, "seed", "release-demo", "--at", "2030-01-02T12:00:00Z")
	if code != exitOK || !strings.Contains(out, "event_count: 25 (appended 25, already present 0)") ||
		!strings.Contains(out, "trace-live-renewal-002:exception:ex-live-renewal-002") || !strings.Contains(out, "full_projection: sha256:") {
		t.Fatalf("seed: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runManifestCmd(t, env, "seed", "release-demo", "-o", "json")
	var rep struct {
		Appended   int    `json:"appended"`
		EventCount int    `json:"event_count"`
		SeededAt   string `json:"seeded_at"`
		Workflows  []struct {
			Status string `json:"status"`
		} `json:"workflows"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Appended != 0 || rep.EventCount != 25 ||
		rep.SeededAt != "2030-01-02T12:00:00Z" || len(rep.Workflows) != 5 {
		t.Fatalf("second seed: exit %d\n%s%s", code, out, errs)
	}
	// --reset in a prod manifest needs --yes.
	prod := filepath.Join(t.TempDir(), "prod.yaml")
	if err := os.WriteFile(prod, []byte("server:\n  env: prod\n  secret_key_base: "+strings.Repeat("k", 64)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runManifestCmd(t, env, "-f", prod, "seed", "release-demo", "--reset")
	if code != exitUsage || !strings.Contains(errs, "--yes") {
		t.Fatalf("reset without --yes: exit %d %s", code, errs)
	}
	code, out, errs = runManifestCmd(t, env, "-f", prod, "seed", "release-demo", "--reset", "--yes")
	if code != exitOK || !strings.Contains(out, "reset: removed 25 events") {
		t.Fatalf("reset --yes: exit %d\n%s%s", code, out, errs)
	}
	if code, _, _ := runManifestCmd(t, env, "seed", "nope"); code != exitUsage {
		t.Fatalf("unknown dataset: exit %d", code)
	}
	if code, _, _ := runManifestCmd(t, env, "seed", "release-demo", "--at", "yesterday"); code != exitUsage {
		t.Fatalf("bad --at: exit %d", code)
	}
	if code, _, errs := runManifestCmd(t, env, "up", "--seed", "nope"); code != exitUsage || !strings.Contains(errs, "unknown dataset") {
		t.Fatalf("dg up --seed nope: exit %d %s", code, errs)
	}
}
