package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// runDG runs the whole CLI with DATABASE_URL set and returns exit code,
// stdout and stderr.
func runProjDG(t *testing.T, dbURL string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) (string, bool) {
		if k == "DATABASE_URL" {
			return dbURL, true
		}
		return "", false
	}
	code := runContext(context.Background(), args, &out, &errb, env)
	return code, out.String(), errb.String()
}

// seedGolden appends a golden scenario to a fresh database.
func seedGolden(t *testing.T, scenario string) string {
	t.Helper()
	url := pgtest.NewURL(t)
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	envs := decodeFile(t, filepath.Join(goldenDir(t), scenario, "events.json"))
	for i := range envs {
		if _, err := st.Append(ctx, "default", &envs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return url
}

func decodeFile(t *testing.T, path string) []event.Envelope {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := event.DecodeEvents(data)
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func TestProjectionsRebuildVerifyStatus(t *testing.T) {
	url := seedGolden(t, "support")
	// Nothing projected yet: verify compares empty tables with an empty
	// rebuild at checkpoint 0 and passes; status shows the lag.
	code, out, errs := runProjDG(t, url, "projections", "status", "-o", "json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	var st struct {
		Projections []struct {
			Tenant     string `json:"tenant"`
			Projection string `json:"projection"`
			Checkpoint int64  `json:"checkpoint"`
			Head       int64  `json:"head"`
			Lag        int64  `json:"lag_events"`
		} `json:"projections"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Projections) != 3 || st.Projections[0].Lag != 8 || st.Projections[0].Head != 8 {
		t.Errorf("status before rebuild: %s", out)
	}
	code, out, errs = runProjDG(t, url, "projections", "rebuild")
	if code != 0 {
		t.Fatalf("rebuild: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "swapped in") {
		t.Errorf("rebuild output: %s", out)
	}
	code, out, errs = runProjDG(t, url, "projections", "verify")
	if code != 0 {
		t.Fatalf("verify after rebuild: exit %d: %s %s", code, out, errs)
	}
	// Damage a live row: verify must exit 1 and name it.
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), `UPDATE dg_cg_nodes SET created_at = 'tampered' WHERE node_id = 'input:input:crm.arr'`); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runProjDG(t, url, "projections", "verify", "--projection", "context_graph")
	if code != exitCheckFailed || !strings.Contains(out, "context_graph: first differing row: node") || !strings.Contains(out, "tampered") {
		t.Errorf("verify of damaged graph: exit %d\n%s", code, out)
	}
	code, out, _ = runProjDG(t, url, "projections", "status")
	if code != 0 || !strings.Contains(out, "sha256:") {
		t.Errorf("status after rebuild: exit %d\n%s", code, out)
	}
	if code, _, _ := runProjDG(t, url, "projections", "rebuild", "--projection", "nope"); code != exitUsage {
		t.Errorf("bad --projection: exit %d, want %d", code, exitUsage)
	}
}
