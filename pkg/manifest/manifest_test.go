package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envMap turns a map into the env lookup Load takes.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustLoad(t *testing.T, yaml string, env map[string]string) (*Manifest, Diagnostics) {
	t.Helper()
	m, diags, err := LoadBytes("test.yaml", []byte(yaml), envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	return m, diags
}

func mustBeValid(t *testing.T, diags Diagnostics) {
	t.Helper()
	if diags.HasErrors() {
		var b bytes.Buffer
		_ = diags.WriteText(&b)
		t.Fatalf("unexpected errors:\n%s", b.String())
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	m, diags := mustLoad(t, "", nil)
	if len(diags) != 0 {
		t.Fatalf("empty manifest: want no diagnostics, got %v", diags)
	}
	want := Default()
	want.Path = "test.yaml"
	want.sources = m.sources
	if !reflect.DeepEqual(m, want) {
		t.Errorf("empty manifest = %+v, want the defaults %+v", m, want)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.listen", m.Server.Listen, "127.0.0.1:4100"},
		{"server.env", m.Server.Env, EnvDev},
		{"server.dev_tokens", m.Server.DevTokens, true},
		{"database.mode", m.Database.Mode, ModeManaged},
		{"database.managed.data_dir", m.Database.Managed.DataDir, ".dg/pgdata"},
		{"database.managed.port", m.Database.Managed.Port, 55433},
		{"database.pool_size", m.Database.PoolSize, 10},
		{"tenants", m.Tenants, []string{"default"}},
		{"backup.dir", m.Backup.Dir, ".dg/backups"},
		{"drill.report_dir", m.Drill.ReportDir, ".dg/drills"},
		{"projections.batch_size", m.Projections.BatchSize, 500},
		{"projections.poll_interval", m.Projections.PollInterval, time.Second},
		{"projections.allow_rebuild", m.Projections.AllowRebuild, true},
		{"workflows.default_sla_hours", m.Workflows.DefaultSLAHours, 24},
		{"workflows.sla_sweep_interval", m.Workflows.SweepInterval, 15 * time.Second},
		{"events.strict", m.Events.Strict, false},
		{"telemetry.otlp_endpoint", m.Telemetry.OTLPEndpoint, ""},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	for _, s := range m.Explain() {
		if s.Source != SourceDefault {
			t.Errorf("%s: source %q, want default", s.Path, s.Source)
		}
	}
}

func TestProdDefaults(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("k", 64)
	m, diags := mustLoad(t, "server: {env: prod}\naccounts: {file: /nonexistent/accounts.json}\n", map[string]string{"SECRET_KEY_BASE": secret})
	mustBeValid(t, diags)
	if m.Server.DevTokens || m.Projections.AllowRebuild {
		t.Errorf("prod: dev_tokens=%v allow_rebuild=%v, want both false by default", m.Server.DevTokens, m.Projections.AllowRebuild)
	}
	m, diags = mustLoad(t, "server: {env: prod}\naccounts: {file: x}\nprojections: {allow_rebuild: true}\n", map[string]string{"SECRET_KEY_BASE": secret})
	mustBeValid(t, diags)
	if !m.Projections.AllowRebuild {
		t.Error("prod with allow_rebuild: true: the explicit value must win")
	}
	m, _ = mustLoad(t, "server: {dev_tokens: false}\n", nil)
	if m.Server.DevTokens {
		t.Error("dev with dev_tokens: false: the explicit value must win")
	}
}

func TestReferenceEnvOverrides(t *testing.T) {
	t.Parallel()
	const file = `server:
  listen: 10.0.0.1:4100
  public_host: file.example.com
  secret_key_base: from-file
database:
  url: postgres://file@db/file
  pool_size: 5
accounts:
  file: file-accounts.json
  operator_account_id: file-admin
`
	cases := []struct {
		variable, value, path string
		get                   func(*Manifest) any
		want                  any
	}{
		{"DATABASE_URL", "postgres://env@db/env", "database.url", func(m *Manifest) any { return m.Database.URL }, "postgres://env@db/env"},
		{"SECRET_KEY_BASE", "from-env", "server.secret_key_base", func(m *Manifest) any { return m.Server.SecretKeyBase }, "from-env"},
		{"PHX_HOST", "env.example.com", "server.public_host", func(m *Manifest) any { return m.Server.PublicHost }, "env.example.com"},
		{"PORT", "8080", "server.listen", func(m *Manifest) any { return m.Server.Listen }, "10.0.0.1:8080"},
		{"POOL_SIZE", "42", "database.pool_size", func(m *Manifest) any { return m.Database.PoolSize }, 42},
		{"DECISION_GRAPH_SERVICE_ACCOUNTS_FILE", "/etc/dg/accounts.json", "accounts.file", func(m *Manifest) any { return m.Accounts.File }, "/etc/dg/accounts.json"},
		{"DECISION_GRAPH_OPERATOR_ACCOUNT_ID", "admin-env", "accounts.operator_account_id", func(m *Manifest) any { return m.Accounts.OperatorAccountID }, "admin-env"},
	}
	if len(cases) != len(referenceEnv()) {
		t.Fatalf("test covers %d reference variables, dg honours %d", len(cases), len(referenceEnv()))
	}
	for _, c := range cases {
		t.Run(c.variable, func(t *testing.T) {
			m, _ := mustLoad(t, file, nil)
			if got := c.get(m); reflect.DeepEqual(got, c.want) {
				t.Fatalf("without %s the value is already %v", c.variable, got)
			}
			m, _ = mustLoad(t, file, map[string]string{c.variable: c.value})
			if got := c.get(m); !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s=%s: %s = %v, want %v", c.variable, c.value, c.path, got, c.want)
			}
			if s := m.Source(c.path); s.Kind != SourceEnv || s.Origin != c.variable {
				t.Errorf("%s source = %+v, want env %s", c.path, s, c.variable)
			}
			// An empty variable counts as unset.
			m, _ = mustLoad(t, file, map[string]string{c.variable: ""})
			if s := m.Source(c.path); s.Kind != SourceFile {
				t.Errorf("%s set but empty: source = %+v, want the file", c.variable, s)
			}
		})
	}
}

// sampleEnvValue is a valid value for f different from its default.
func sampleEnvValue(f field) string {
	switch f.kind {
	case kindInt:
		return "61234"[:len(f.max)-1] // fits under max
	case kindBool:
		if f.path == "telemetry.prometheus" || f.path == "events.strict" {
			return "true"
		}
		return "false"
	case kindDuration:
		return "7h"
	case kindBytes:
		return "2MiB"
	case kindStringList:
		return "alpha, beta"
	}
	switch {
	case len(f.enum) > 0:
		return f.enum[len(f.enum)-1]
	case f.format == "hostport":
		return "0.0.0.0:4999"
	case f.path == "telemetry.otlp_endpoint":
		return "collector:4317"
	case f.format == "url":
		return "postgres://u:p@h:5432/db"
	}
	return "from-env-" + strings.ReplaceAll(f.path, ".", "-")
}

func TestDGEnvOverridesEveryField(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, f := range manifestFields() {
		if f.kind == kindWebhooks {
			continue
		}
		name := f.envName()
		if other, dup := seen[name]; dup {
			t.Fatalf("%s and %s share the variable %s", other, f.path, name)
		}
		seen[name] = f.path
		t.Run(name, func(t *testing.T) {
			value := sampleEnvValue(f)
			want := reflect.New(reflect.ValueOf(Default()).Elem().FieldByIndex(f.index).Type()).Elem()
			if msg, _ := setScalar(f, value, want); msg != "" {
				t.Fatalf("sample %q: %s", value, msg)
			}
			m, diags := mustLoad(t, "", map[string]string{name: value})
			for _, d := range diags {
				if d.Path == f.path && d.Severity == SeverityError {
					t.Fatalf("%s=%s rejected: %s", name, value, d)
				}
			}
			got := reflect.ValueOf(m).Elem().FieldByIndex(f.index)
			if !reflect.DeepEqual(got.Interface(), want.Interface()) {
				t.Errorf("%s=%s: %s = %v, want %v", name, value, f.path, got, want)
			}
			if s := m.Source(f.path); s.Kind != SourceEnv || s.Origin != name {
				t.Errorf("%s source = %+v, want env %s", f.path, s, name)
			}
		})
	}
	for _, name := range []string{"DG_DATABASE_MANAGED_PORT", "DG_SERVER_LISTEN", "DG_BACKUP_DIR", "DG_SERVER_DEV_TOKENS", "DG_EVENTS_STRICT", "DG_WORKFLOWS_SLA_SWEEP_INTERVAL"} {
		if _, ok := seen[name]; !ok {
			t.Errorf("%s does not override any field", name)
		}
	}
}

func TestEnvOverrideExamples(t *testing.T) {
	t.Parallel()
	m, diags := mustLoad(t, "database: {managed: {port: 6000}}\nbackup: {dir: /tmp/a}\n", map[string]string{
		"DG_DATABASE_MANAGED_PORT": "6543",
		"DG_SERVER_LISTEN":         "0.0.0.0:9000",
		"PORT":                     "8000", // DG_SERVER_LISTEN is more specific and wins
		"DG_BACKUP_DIR":            "/tmp/b",
		"DG_TENANTS":               "default,tenant-a",
		"DG_SERVER_DEV_TOKENS":     "false",
	})
	mustBeValid(t, diags)
	if m.Database.Managed.Port != 6543 || m.Server.Listen != "0.0.0.0:9000" || m.Backup.Dir != "/tmp/b" ||
		!reflect.DeepEqual(m.Tenants, []string{"default", "tenant-a"}) || m.Server.DevTokens {
		t.Errorf("overrides not applied: port=%d listen=%s dir=%s tenants=%v dev_tokens=%v",
			m.Database.Managed.Port, m.Server.Listen, m.Backup.Dir, m.Tenants, m.Server.DevTokens)
	}
	if s := m.Source("server.listen"); s.Origin != "DG_SERVER_LISTEN" {
		t.Errorf("server.listen origin = %q, want DG_SERVER_LISTEN", s.Origin)
	}
	// PORT keeps the host of server.listen.
	m, _ = mustLoad(t, "server: {listen: '[::1]:4100'}\n", map[string]string{"PORT": "4200"})
	if m.Server.Listen != "[::1]:4200" {
		t.Errorf("PORT=4200 on [::1]:4100 gave %q", m.Server.Listen)
	}
}

func TestEnvOverrideDiagnostics(t *testing.T) {
	t.Parallel()
	_, diags := mustLoad(t, "", map[string]string{
		"POOL_SIZE":                    "many",
		"PORT":                         "99999",
		"DG_DATABASE_MANAGED_PORT":     "4100",
		"DG_PROJECTIONS_POLL_INTERVAL": "soon",
		"DG_SERVER_ENV":                "staging",
	})
	want := []string{
		"env DG_DATABASE_MANAGED_PORT: database.managed.port: must differ from the server port 4100",
		"env DG_PROJECTIONS_POLL_INTERVAL: projections.poll_interval: invalid duration \"soon\"",
		"env DG_SERVER_ENV: server.env: must be one of dev, prod, got \"staging\"",
		"env POOL_SIZE: database.pool_size: must be an integer, got \"many\"",
		"env PORT: server.listen: PORT must be a port number between 1 and 65535, got \"99999\"",
	}
	var got []string
	for _, d := range diags {
		got = append(got, d.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestInterpolation(t *testing.T) {
	t.Parallel()
	env := map[string]string{"HOST": "db.internal", "EMPTY": "", "PW": "p$w"}
	cases := []struct{ in, want string }{
		{"${HOST}", "db.internal"},
		{"postgres://dg:${PW}@${HOST}:5432/dg", "postgres://dg:p$w@db.internal:5432/dg"},
		{"${MISSING:-fallback}", "fallback"},
		{"${HOST:-fallback}", "db.internal"},
		{"${EMPTY:-fallback}", ""}, // set-but-empty is set
		{"cost: $$5", "cost: $5"},
		{"$HOME and $", "$HOME and $"}, // only ${...} is interpolated
		{"no variables", "no variables"},
	}
	for _, c := range cases {
		got, _, missing, errMsg := expand(c.in, envMap(env))
		if got != c.want || len(missing) != 0 || errMsg != "" {
			t.Errorf("expand(%q) = %q, missing %v, err %q; want %q", c.in, got, missing, errMsg, c.want)
		}
	}
	if _, _, missing, _ := expand("${A}-${HOST}-${B}", envMap(env)); !reflect.DeepEqual(missing, []string{"A", "B"}) {
		t.Errorf("missing = %v, want [A B]", missing)
	}
	for _, bad := range []string{"${", "${HOST", "${1X}", "${A B}"} {
		if _, _, _, errMsg := expand(bad, envMap(env)); errMsg == "" {
			t.Errorf("expand(%q): want a syntax error", bad)
		}
	}

	m, diags := mustLoad(t, "database:\n  mode: external\n  url: postgres://dg:${PW}@${HOST}/dg\n  pool_size: ${POOL:-12}\n", env)
	mustBeValid(t, diags)
	if m.Database.URL != "postgres://dg:p$w@db.internal/dg" || m.Database.PoolSize != 12 {
		t.Errorf("url=%q pool_size=%d", m.Database.URL, m.Database.PoolSize)
	}
	if s := m.Source("database.url"); s.Kind != SourceFile || !reflect.DeepEqual(s.Vars, []string{"PW", "HOST"}) || s.Origin != "test.yaml:3:8" {
		t.Errorf("database.url source = %+v", s)
	}

	// An unset variable is a diagnostic at the value, not a silent "".
	_, diags = mustLoad(t, "server:\n  env: prod\n  secret_key_base: ${NOT_SET}\n", nil)
	found := false
	for _, d := range diags {
		if d.Path == "server.secret_key_base" {
			if found {
				t.Errorf("second diagnostic for the same unset value: %s", d)
			}
			found = true
			if d.Line != 3 || d.Column != 20 || d.Severity != SeverityError || !strings.Contains(d.Message, "NOT_SET is not set") {
				t.Errorf("unset variable diagnostic = %+v", d)
			}
		}
	}
	if !found {
		t.Errorf("no diagnostic for an unset variable: %v", diags)
	}
}

func TestExplainSourcesAndMasking(t *testing.T) {
	t.Parallel()
	const yaml = `server:
  listen: 127.0.0.1:4100
  secret_key_base: ${SKB}
database:
  mode: external
  url: postgres://dg:file-password@db:5432/dg
workflows:
  notifications:
    webhooks:
      - url: https://hooks.example.com/x
        secret: hook-secret-value
`
	skb := strings.Repeat("z", 70)
	m, diags := mustLoad(t, yaml, map[string]string{"SKB": skb, "POOL_SIZE": "3"})
	mustBeValid(t, diags)
	byPath := map[string]Setting{}
	for _, s := range m.Explain() {
		byPath[s.Path] = s
	}
	expect := []Setting{
		{Path: "server.listen", Value: "127.0.0.1:4100", Source: SourceFile, Origin: "test.yaml:2:11"},
		{Path: "server.secret_key_base", Value: Mask, Source: SourceFile, Origin: "test.yaml:3:20", Vars: []string{"SKB"}, Secret: true},
		{Path: "database.url", Value: "postgres://dg:" + Mask + "@db:5432/dg", Source: SourceFile, Origin: "test.yaml:6:8", Secret: true},
		{Path: "database.pool_size", Value: "3", Source: SourceEnv, Origin: "POOL_SIZE"},
		{Path: "database.managed.port", Value: "55433", Source: SourceDefault},
		{Path: "server.body_limit", Value: "1MiB", Source: SourceDefault},
		{Path: "backup.max_age", Value: "26h", Source: SourceDefault},
		{Path: "workflows.notifications.webhooks[0].url", Value: "https://hooks.example.com/x", Source: SourceFile, Origin: "test.yaml:10:7"},
		{Path: "workflows.notifications.webhooks[0].secret", Value: Mask, Source: SourceFile, Origin: "test.yaml:10:7", Secret: true},
	}
	for _, want := range expect {
		if got := byPath[want.Path]; !reflect.DeepEqual(got, want) {
			t.Errorf("explain %s = %+v, want %+v", want.Path, got, want)
		}
	}
	out, err := json.Marshal(m.Explain())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{skb, "file-password", "hook-secret-value"} {
		if bytes.Contains(out, []byte(secret)) {
			t.Errorf("explain output leaks %q", secret)
		}
	}
	// A URL without a password is shown as is; one from DATABASE_URL is masked too.
	m, _ = mustLoad(t, "database: {mode: external, url: 'postgres://dg@db/dg'}\n", nil)
	for _, s := range m.Explain() {
		if s.Path == "database.url" && (s.Value != "postgres://dg@db/dg" || s.Secret) {
			t.Errorf("url without password shown as %+v", s)
		}
	}
	m, _ = mustLoad(t, "", map[string]string{"DATABASE_URL": "postgresql://a:env-pw@h/d?sslmode=disable"})
	for _, s := range m.Explain() {
		if s.Path == "database.url" && (strings.Contains(s.Value, "env-pw") || s.Source != SourceEnv || s.Origin != "DATABASE_URL") {
			t.Errorf("DATABASE_URL explained as %+v", s)
		}
	}
}

func TestEmbeddedMatchesLocal(t *testing.T) {
	t.Parallel()
	local, err := os.ReadFile("../../manifests/local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(local, BuiltinYAML()) {
		t.Fatal("pkg/manifest/embedded/local.yaml differs from manifests/local.yaml: copy manifests/local.yaml over it")
	}
	m, diags, err := LoadBuiltin(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(diags) != 0 {
		t.Errorf("built-in manifest has diagnostics: %v", diags)
	}
	if m.Path != "" || m.Database.Mode != ModeManaged || m.Server.Env != EnvDev {
		t.Errorf("built-in manifest: path %q mode %q env %q", m.Path, m.Database.Mode, m.Server.Env)
	}
}

func TestExampleManifests(t *testing.T) {
	t.Parallel()
	m, diags, err := Load("../../manifests/small-server.yaml", envMap(map[string]string{"SECRET_KEY_BASE": strings.Repeat("q", 64)}))
	if err != nil {
		t.Fatal(err)
	}
	mustBeValid(t, diags)
	if !m.IsProd() || m.Server.DevTokens || m.Projections.AllowRebuild || m.ServerPort() != 4100 {
		t.Errorf("small-server: prod=%v dev_tokens=%v allow_rebuild=%v port=%d", m.IsProd(), m.Server.DevTokens, m.Projections.AllowRebuild, m.ServerPort())
	}
	// Without its secret the prod example must be refused.
	_, diags, _ = Load("../../manifests/small-server.yaml", nil)
	if !diags.HasErrors() {
		t.Error("small-server.yaml without SECRET_KEY_BASE: want an error")
	}
	if _, _, err := Load("../../manifests/missing.yaml", nil); err == nil {
		t.Error("Load of a missing file: want an error")
	}
}

func TestDurationsAndSizes(t *testing.T) {
	t.Parallel()
	durations := map[string]time.Duration{
		"15s": 15 * time.Second, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "500ms": 500 * time.Millisecond, "0s": 0,
	}
	for in, want := range durations {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, _ := ParseDuration(FormatDuration(got)); back != got {
			t.Errorf("FormatDuration(%v) = %q does not parse back", got, FormatDuration(got))
		}
	}
	formats := map[time.Duration]string{
		26 * time.Hour: "26h", 7 * 24 * time.Hour: "7d", 90 * time.Minute: "1h30m",
		90 * time.Second: "1m30s", time.Hour: "1h", 500 * time.Millisecond: "500ms",
	}
	for d, want := range formats {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for _, bad := range []string{"", "5", "-1h", "d", "1x", "7dd", "1.5d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q): want an error", bad)
		}
	}
	sizes := map[string]int64{"65536": 65536, "8MiB": 8 << 20, "1MB": 1000000, "2 KiB": 2048, "1GB": 1e9}
	for in, want := range sizes {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MB", "10 parsecs", "-5", "99999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q): want an error", bad)
		}
	}
}

func TestSchema(t *testing.T) {
	t.Parallel()
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	for _, path := range FieldPaths() {
		node := s
		for _, part := range strings.Split(path, ".") {
			if node["additionalProperties"] != false {
				t.Errorf("%s: object without additionalProperties: false", path)
			}
			props, _ := node["properties"].(map[string]any)
			next, ok := props[part].(map[string]any)
			if !ok {
				t.Fatalf("schema has no property for %s", path)
			}
			node = next
		}
		if node["description"] == nil {
			t.Errorf("%s has no description", path)
		}
	}
	port := s["properties"].(map[string]any)["database"].(map[string]any)["properties"].(map[string]any)["managed"].(map[string]any)["properties"].(map[string]any)["port"].(map[string]any)
	if port["default"] != float64(55433) {
		t.Errorf("database.managed.port default in schema = %v", port["default"])
	}
}

// docs/manifest.md documents every field.
func TestDocsCoverEveryField(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range FieldPaths() {
		if !bytes.Contains(doc, []byte("| `"+path+"` |")) {
			t.Errorf("docs/manifest.md has no table row for %s", path)
		}
	}
	for _, e := range EnvVars()[:len(referenceEnv())] {
		if !bytes.Contains(doc, []byte("`"+e[0]+"`")) {
			t.Errorf("docs/manifest.md does not mention %s", e[0])
		}
	}
}

func BenchmarkLoadBytes(b *testing.B) {
	data, err := os.ReadFile("../../manifests/small-server.yaml")
	if err != nil {
		b.Fatal(err)
	}
	env := envMap(map[string]string{"SECRET_KEY_BASE": strings.Repeat("q", 64)})
	b.ReportAllocs()
	for b.Loop() {
		if _, diags, err := LoadBytes("small-server.yaml", data, env); err != nil || diags.HasErrors() {
			b.Fatal(err, diags)
		}
	}
}
