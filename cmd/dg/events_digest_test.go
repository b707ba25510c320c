package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/viper"

	"github.com/decisiongraph/dg/internal/fixtures"
	"github.com/decisiongraph/dg/internal/pgtest"
)

// goldenDir is ../shared/fixtures/golden beside the repository (skips when absent).
func goldenDir(t *testing.T) string { return fixtures.Path(t, "golden") }

// runDigest runs `dg events digest ARGS` through the real command and
// returns the exit code, stdout and stderr.
func runDigest(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, viper: viper.New(), env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	cmd := newEventsDigestCmd(a)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.Flags().StringVarP(&a.opts.output, "output", "o", "text", "")
	code := exitCode(cmd.ExecuteContext(context.Background()), &errb)
	return code, out.String(), errb.String()
}

func TestEventsDigestGolden(t *testing.T) {
	g := goldenDir(t)
	entries, err := os.ReadDir(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		want, err := os.ReadFile(filepath.Join(g, e.Name(), "expected_digest.txt"))
		if err != nil {
			t.Fatal(err)
		}
		code, out, errs := runDigest(t, nil, filepath.Join(g, e.Name(), "events.json"))
		if code != 0 || out != string(want) {
			t.Errorf("%s: exit %d, stderr %q\ngot:\n%s\nwant:\n%s", e.Name(), code, errs, out, want)
		}
		// The Postgres path must print the same lines.
		code, out, errs = runDigest(t, map[string]string{"DATABASE_URL": pgtest.ServerURL(t)}, "--db", filepath.Join(g, e.Name(), "events.json"))
		if code != 0 || out != string(want) {
			t.Errorf("%s --db: exit %d, stderr %q\ngot:\n%s\nwant:\n%s", e.Name(), code, errs, out, want)
		}
	}
}

func TestEventsDigestSeveralFilesAndJSON(t *testing.T) {
	g := goldenDir(t)
	files := []string{filepath.Join(g, "support", "events.json"), filepath.Join(g, "renewal", "events.json"), filepath.Join(g, "support", "events.json")}
	code, out, errs := runDigest(t, nil, append([]string{"-o", "json"}, files...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Digests   map[string]string `json:"digests"`
		Submitted int               `json:"submitted"`
		Appended  int               `json:"appended"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The repeated support file is all idempotent retries.
	if res.Submitted != 25 || res.Appended != 17 || len(res.Digests) != 4 {
		t.Errorf("result %+v", res)
	}
}

func TestEventsDigestRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"events": [{"event_id": 1}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runDigest(t, nil, bad); code != exitUsage {
		t.Errorf("undecodable events: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := runDigest(t, nil, filepath.Join(dir, "missing.json")); code != exitOperational {
		t.Errorf("missing file: exit %d, want %d", code, exitOperational)
	}
}
