package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decisiongraph/dg/pkg/manifest"
)

// manifestTestdata is the repository's testdata/manifests, seen from cmd/dg.
const manifestTestdata = "../../testdata/manifests/"

// runManifestCmd drives the CLI in-process with a fixed environment.
func runManifestCmd(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runContext(context.Background(), args, &out, &errOut, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	return code, out.String(), errOut.String()
}

func TestValidateExitCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"valid manifest", []string{"validate", "-f", "../../manifests/local.yaml"}, exitOK},
		{"valid with warnings", []string{"validate", "-f", manifestTestdata + "valid-warnings.yaml"}, exitOK},
		{"valid as argument", []string{"validate", manifestTestdata + "valid-warnings.yaml"}, exitOK},
		{"built-in default", []string{"validate"}, exitOK},
		{"errors", []string{"validate", "-f", manifestTestdata + "typo-key.yaml"}, exitCheckFailed},
		{"errors as json", []string{"validate", "-o", "json", manifestTestdata + "prod-without-accounts.yaml"}, exitCheckFailed},
		{"yaml syntax", []string{"validate", manifestTestdata + "yaml-syntax.yaml"}, exitCheckFailed},
		{"missing file", []string{"validate", "-f", manifestTestdata + "no-such-file.yaml"}, exitUsage},
		{"missing file json", []string{"validate", "-o", "json", manifestTestdata + "no-such-file.yaml"}, exitUsage},
		{"bad flag", []string{"validate", "--no-such-flag"}, exitUsage},
		{"bad output", []string{"validate", "-o", "yaml"}, exitUsage},
		{"two arguments", []string{"validate", "a.yaml", "b.yaml"}, exitUsage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runManifestCmd(t, nil, c.args...)
			if code != c.want {
				t.Errorf("dg %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), code, c.want, stdout, stderr)
			}
		})
	}
}

func TestValidateOutput(t *testing.T) {
	t.Parallel()
	file := manifestTestdata + "bad-enum.yaml"
	code, stdout, _ := runManifestCmd(t, nil, "validate", file)
	if code != exitCheckFailed {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout, file+":2:8: server.env: must be one of dev, prod, got \"production\"\n    hint: did you mean \"prod\"?\n") {
		t.Errorf("text output lacks the server.env diagnostic:\n%s", stdout)
	}
	if !strings.HasSuffix(stdout, file+": invalid (5 errors, 0 warnings)\n") {
		t.Errorf("text output lacks the summary:\n%s", stdout)
	}

	code, stdout, _ = runManifestCmd(t, nil, "validate", "-o", "json", file)
	if code != exitCheckFailed {
		t.Fatalf("json: exit %d", code)
	}
	var r manifest.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("json output does not parse: %v\n%s", err, stdout)
	}
	if r.Valid || r.Errors != 5 || len(r.Diagnostics) != 5 {
		t.Fatalf("report = %+v", r)
	}
	d := r.Diagnostics[0]
	want := manifest.Diagnostic{File: file, Line: 2, Column: 8, Path: "server.env", Message: `must be one of dev, prod, got "production"`, Hint: `did you mean "prod"?`, Severity: manifest.SeverityError}
	if d != want {
		t.Errorf("first diagnostic = %+v, want %+v", d, want)
	}
}

// Every command other than validate refuses an invalid manifest with the
// same diagnostics on stderr and exit 2.
func TestInvalidManifestExitsTwoWithDiagnostics(t *testing.T) {
	t.Parallel()
	file := manifestTestdata + "same-port.yaml"
	_, report, _ := runManifestCmd(t, nil, "validate", file)
	diagLines := strings.TrimSuffix(report, file+": invalid (1 error, 0 warnings)\n")

	code, stdout, stderr := runManifestCmd(t, nil, "config", "explain", "-f", file)
	if code != exitUsage {
		t.Fatalf("config explain on an invalid manifest: exit %d, want 2", code)
	}
	if stdout != "" {
		t.Errorf("nothing may reach stdout, got:\n%s", stdout)
	}
	if !strings.HasPrefix(stderr, diagLines) || diagLines == "" {
		t.Errorf("stderr does not start with validate's diagnostics\nstderr:\n%s\nwant prefix:\n%s", stderr, diagLines)
	}

	code, _, stderr = runManifestCmd(t, nil, "config", "explain", "-o", "json", "-f", file)
	if code != exitUsage {
		t.Fatalf("json: exit %d, want 2", code)
	}
	var r manifest.Report
	if err := json.Unmarshal([]byte(stderr), &r); err != nil {
		t.Fatalf("stderr is not the JSON report: %v\n%s", err, stderr)
	}
	if r.Valid || len(r.Diagnostics) != 1 || r.Diagnostics[0].Path != "database.managed.port" || r.Diagnostics[0].Line != 6 {
		t.Errorf("report = %+v", r)
	}

	// An environment variable can make a valid file invalid.
	code, _, stderr = runManifestCmd(t, map[string]string{"DG_SERVER_ENV": "prod"}, "config", "explain", "-f", "../../manifests/local.yaml")
	if code != exitUsage || !strings.Contains(stderr, "env DG_SERVER_ENV: accounts.file: is required when server.env is prod") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}

	// A missing manifest is a usage error too.
	code, _, stderr = runManifestCmd(t, nil, "config", "explain", "-f", "nope.yaml")
	if code != exitUsage || !strings.Contains(stderr, "nope.yaml does not exist") {
		t.Errorf("missing manifest: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestConfigExplain(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":             "postgres://dg:s3cret-pw@db:5432/dg",
		"DG_DATABASE_MANAGED_PORT": "56000",
		"SECRET_KEY_BASE":          strings.Repeat("x", 64),
	}
	code, stdout, stderr := runManifestCmd(t, env, "config", "explain", "-f", "../../manifests/local.yaml")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	// The URL is ignored in managed mode: a warning, not a failure.
	if !strings.Contains(stderr, "env DATABASE_URL: database.url: warning: is ignored when database.mode is managed") {
		t.Errorf("warning not printed on stderr:\n%s", stderr)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			rows[f[0]] = f[1:]
		}
	}
	expect := map[string][]string{
		"server.listen":          {"127.0.0.1:4100", "file", "../../manifests/local.yaml:13:11"},
		"database.managed.port":  {"56000", "env", "DG_DATABASE_MANAGED_PORT"},
		"database.url":           {"postgres://dg:********@db:5432/dg", "env", "DATABASE_URL"},
		"server.secret_key_base": {"********", "env", "SECRET_KEY_BASE"},
		"server.request_timeout": {"30s", "default"},
	}
	for path, want := range expect {
		if got := rows[path]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: row %v, want %v", path, got, want)
		}
	}
	if strings.Contains(stdout, "s3cret-pw") || strings.Contains(stdout, strings.Repeat("x", 64)) {
		t.Errorf("explain leaks a secret:\n%s", stdout)
	}

	code, stdout, _ = runManifestCmd(t, env, "config", "explain", "-o", "json", "-f", "../../manifests/local.yaml")
	if code != exitOK {
		t.Fatalf("json: exit %d", code)
	}
	var out struct {
		Manifest string             `json:"manifest"`
		Settings []manifest.Setting `json:"settings"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("json: %v\n%s", err, stdout)
	}
	if out.Manifest != "../../manifests/local.yaml" || len(out.Settings) != len(manifest.FieldPaths()) {
		t.Errorf("manifest %q with %d settings, want %d", out.Manifest, len(out.Settings), len(manifest.FieldPaths()))
	}
}

func TestSchemaCommand(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runManifestCmd(t, nil, "schema")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("schema output is not JSON: %v", err)
	}
	if s["$schema"] == nil || s["properties"] == nil {
		t.Errorf("not a JSON Schema: %v", s)
	}
	if code, _, _ := runManifestCmd(t, nil, "schema", "extra"); code != exitUsage {
		t.Errorf("schema with an argument: exit %d, want 2", code)
	}
}

// The manifest is -f, else DG_MANIFEST, else ./dg.yaml, else
// manifests/local.yaml, else the built-in default.
func TestManifestResolution(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	loc := func(flag string, env map[string]string) string {
		a := &app{opts: globalOptions{manifestPath: flag}, env: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		}}
		return a.manifestLocation()
	}
	if got := loc("", nil); got != "" {
		t.Errorf("empty directory: %q, want the built-in default", got)
	}
	if code, stdout, _ := runManifestCmd(t, nil, "validate"); code != exitOK || !strings.Contains(stdout, manifest.BuiltinName+": valid") {
		t.Errorf("validate on the built-in default: exit %d\n%s", code, stdout)
	}
	if err := os.MkdirAll("manifests", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("manifests", "local.yaml"), []byte("server: {listen: 127.0.0.1:4300}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loc("", nil); got != "manifests/local.yaml" {
		t.Errorf("with manifests/local.yaml: %q", got)
	}
	if err := os.WriteFile("dg.yaml", []byte("server: {listen: 127.0.0.1:4200}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loc("", nil); got != "dg.yaml" {
		t.Errorf("with dg.yaml: %q", got)
	}
	if got := loc("", map[string]string{"DG_MANIFEST": "other.yaml"}); got != "other.yaml" {
		t.Errorf("with DG_MANIFEST: %q", got)
	}
	if got := loc("flag.yaml", map[string]string{"DG_MANIFEST": "other.yaml"}); got != "flag.yaml" {
		t.Errorf("with -f: %q", got)
	}
	// loadManifest really reads the resolved file.
	var stderr bytes.Buffer
	a := &app{stderr: &stderr, env: func(string) (string, bool) { return "", false }}
	m, err := a.loadManifest()
	if err != nil || m.Server.Listen != "127.0.0.1:4200" || m.Path != "dg.yaml" {
		t.Errorf("loadManifest: %v, %+v", err, m)
	}
}

// dg validate, run from the repository root, prints exactly the golden
// diagnostics of pkg/manifest's tests (text plus a summary line, and the
// JSON report).
func TestValidateMatchesGoldenFiles(t *testing.T) {
	t.Chdir("../..")
	files, err := filepath.Glob("testdata/manifests/*.yaml")
	if err != nil || len(files) < 15 {
		t.Fatalf("test manifests: %v, %d files", err, len(files))
	}
	env := map[string]string{"DG_TEST_PORT": "4100", "DG_TEST_SECRET": strings.Repeat("s", 64), "DG_TEST_PASSWORD": "hunter2"}
	for _, file := range files {
		golden := strings.TrimSuffix(file, ".yaml")
		wantText, err := os.ReadFile(golden + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		wantJSON, err := os.ReadFile(golden + ".json")
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runManifestCmd(t, env, "validate", file)
		var r manifest.Report
		if err := json.Unmarshal(wantJSON, &r); err != nil {
			t.Fatal(err)
		}
		wantCode, verdict := exitOK, "valid"
		if !r.Valid {
			wantCode, verdict = exitCheckFailed, "invalid"
		}
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d (stderr %s)", file, code, wantCode, stderr)
		}
		summary := fmt.Sprintf("%s: %s (%s)\n", file, verdict, manifest.Diagnostics(r.Diagnostics).Summary())
		if stdout != string(wantText)+summary {
			t.Errorf("%s: text differs\n--- got\n%s--- want\n%s%s", file, stdout, wantText, summary)
		}
		_, stdout, _ = runManifestCmd(t, env, "validate", "-o", "json", file)
		if stdout != string(wantJSON) {
			t.Errorf("%s: JSON differs\n--- got\n%s--- want\n%s", file, stdout, wantJSON)
		}
	}
}
