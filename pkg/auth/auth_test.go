package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/auth"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const docTwo = `{
 "generated_at": "2026-03-08T12:00:00Z",
 "operator_console_account_id": "admin-main",
 "service_accounts": [
  {"account_id": "reader-main", "roles": "reader", "permissions": [], "tenant_ids": ["default"], "tokens": ["read-1", "", "read-2"]},
  {"account_id": "admin-main", "roles": ["admin"], "permissions": ["*"], "tenant_ids": "*",
   "token_sha256": ["` + "%ADMINHASH%" + `"]}
 ]}`

func twoDoc() string {
	return strings.Replace(docTwo, "%ADMINHASH%", auth.HashToken("admin-secret").Hex(), 1)
}

func writeFile(t *testing.T, dir, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "service-accounts.json")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseDocumentNormalisesAndHashes(t *testing.T) {
	doc, err := auth.ParseDocument([]byte(twoDoc()))
	if err != nil {
		t.Fatal(err)
	}
	if doc.OperatorAccountID != "admin-main" || len(doc.Accounts) != 2 {
		t.Fatalf("doc = %+v", doc)
	}
	r := doc.Accounts[0]
	if len(r.Roles) != 1 || r.Roles[0] != "reader" {
		t.Errorf("scalar roles must become a list: %v", r.Roles)
	}
	if r.TokenCount() != 2 {
		t.Errorf("empty tokens must be dropped: %d tokens", r.TokenCount())
	}
	s := &auth.Set{Accounts: doc.Accounts}
	if a := s.Lookup("read-2"); a == nil || a.AccountID != "reader-main" {
		t.Errorf("every token of the list is valid (rotation): %v", a)
	}
	if a := s.Lookup("admin-secret"); a == nil || a.AccountID != "admin-main" {
		t.Errorf("token_sha256 entry must authenticate its plaintext token: %v", a)
	}
	if a := s.Lookup(auth.HashToken("admin-secret").Hex()); a != nil {
		t.Errorf("the hash itself must not be a valid token")
	}
	if s.Lookup("read-") != nil || s.Lookup("") != nil {
		t.Errorf("prefixes and empty tokens must not match")
	}
	adm := doc.Accounts[1]
	if !adm.AllowsTenant("anything") || !adm.Can(auth.PermWorkflowExport) {
		t.Errorf("wildcards: tenants %v permissions %v", adm.TenantIDs, adm.Permissions)
	}
	if r.Can(auth.PermProjectionReplay) || r.AllowsTenant("other") {
		t.Errorf("reader must have no permissions and only its tenant")
	}
}

func TestParseDocumentRejects(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"not json":        {`{`, "not valid JSON"},
		"not an object":   {`[]`, "must be a JSON object"},
		"no accounts":     {`{"service_accounts": []}`, "non-empty array"},
		"missing id":      {`{"service_accounts": [{"roles": ["reader"], "tokens": ["x"]}]}`, "account_id is required"},
		"no token":        {`{"service_accounts": [{"account_id": "a", "tokens": [""]}]}`, "has no token"},
		"bad hash":        {`{"service_accounts": [{"account_id": "a", "token_sha256": ["abc"]}]}`, "64 hex digits"},
		"duplicate id":    {`{"service_accounts": [{"account_id": "a", "tokens": ["x"]}, {"account_id": "a", "tokens": ["y"]}]}`, "appears twice"},
		"shared token":    {`{"service_accounts": [{"account_id": "a", "tokens": ["x"]}, {"account_id": "b", "tokens": ["x"]}]}`, "share a token"},
		"list of objects": {`{"service_accounts": [{"account_id": "a", "tokens": [{"t": 1}]}]}`, "tokens[0] must be a string"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := auth.ParseDocument([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
			if strings.Contains(err.Error(), `"x"`) {
				t.Errorf("error must not print a token: %v", err)
			}
		})
	}
	// The legacy single token is used only when tokens is absent.
	doc, err := auth.ParseDocument([]byte(`{"service_accounts": [{"account_id": "a", "roles": ["reader"], "token": "legacy"}]}`))
	if err != nil || (&auth.Set{Accounts: doc.Accounts}).Lookup("legacy") == nil {
		t.Fatalf("legacy token: %v", err)
	}
}

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, twoDoc(), 0o600)
	jsonDoc := `{"service_accounts": [{"account_id": "env-admin", "roles": ["admin"], "tokens": ["env-token"]}]}`

	cases := []struct {
		name       string
		cfg        auth.Config
		env        map[string]string
		wantSource string
		wantOp     string
		wantN      int
	}{
		{"env json wins over everything", auth.Config{File: file, DevTokens: true}, map[string]string{auth.EnvAccountsJSON: jsonDoc, auth.EnvAccountsFile: file}, auth.SourceEnvJSON, "env-admin", 1},
		{"file env var", auth.Config{DevTokens: true}, map[string]string{auth.EnvAccountsFile: file}, "file:" + file, "admin-main", 2},
		{"manifest file", auth.Config{File: file, DevTokens: true}, nil, "file:" + file, "admin-main", 2},
		{"release root", auth.Config{DevTokens: true}, map[string]string{auth.EnvReleaseRoot: "/nonexistent"}, auth.SourceBuiltin, "dev-admin", 3},
		{"dev tokens", auth.Config{DevTokens: true}, nil, auth.SourceBuiltin, "dev-admin", 3},
		{"nothing in dev", auth.Config{}, nil, auth.SourceNone, "", 0},
		{"operator override", auth.Config{File: file, OperatorAccountID: "reader-main"}, nil, "file:" + file, "reader-main", 2},
		{"operator env beats manifest", auth.Config{File: file, OperatorAccountID: "reader-main"}, map[string]string{auth.EnvOperatorAccountID: "admin-main"}, "file:" + file, "admin-main", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.LookupEnv = env(c.env)
			reg, err := auth.Load(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := reg.Current()
			if s.Source != c.wantSource || s.OperatorAccountID != c.wantOp || len(s.Accounts) != c.wantN {
				t.Fatalf("source %q operator %q accounts %d; want %q %q %d", s.Source, s.OperatorAccountID, len(s.Accounts), c.wantSource, c.wantOp, c.wantN)
			}
			h := reg.Health()
			if h["bootstrap_source"] != c.wantSource || h["configured_accounts"] != c.wantN {
				t.Errorf("health = %v", h)
			}
		})
	}
	// First admin account when the document names no operator.
	noOp := `{"service_accounts": [{"account_id": "r", "roles": ["reader"], "tokens": ["a"]}, {"account_id": "boss", "roles": ["admin"], "tokens": ["b"]}]}`
	reg, err := auth.Load(auth.Config{LookupEnv: env(map[string]string{auth.EnvAccountsJSON: noOp})})
	if err != nil || reg.Current().OperatorAccountID != "boss" {
		t.Fatalf("inferred operator: %v %v", err, reg)
	}
	// No admin and no operator named: refuse.
	_, err = auth.Load(auth.Config{LookupEnv: env(map[string]string{auth.EnvAccountsJSON: `{"service_accounts": [{"account_id": "r", "roles": ["reader"], "tokens": ["a"]}]}`})})
	if !errors.Is(err, auth.ErrMisconfigured) || !strings.Contains(err.Error(), "operator console account") {
		t.Fatalf("no operator: %v", err)
	}
	// Release root file.
	rr := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rr, "config"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rr, "config"), twoDoc(), 0o600)
	reg, err = auth.Load(auth.Config{LookupEnv: env(map[string]string{auth.EnvReleaseRoot: rr})})
	if err != nil || !strings.HasPrefix(reg.Current().Source, "file:"+rr) {
		t.Fatalf("release root: %v %v", err, reg.Current().Source)
	}
}

func TestProdRefusals(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, twoDoc(), 0o600)
	cases := []struct {
		name string
		cfg  auth.Config
		want string
	}{
		{"dev tokens flag", auth.Config{Prod: true, DevTokens: true, File: good}, "dev_tokens"},
		{"no accounts", auth.Config{Prod: true}, "no service accounts are configured"},
		{"missing file", auth.Config{Prod: true, File: filepath.Join(dir, "nope.json")}, "dg accounts bootstrap"},
		{"group readable", auth.Config{Prod: true, File: writeFile(t, t.TempDir(), twoDoc(), 0o640)}, "chmod 600"},
		{"world readable", auth.Config{Prod: true, File: writeFile(t, t.TempDir(), twoDoc(), 0o644)}, "mode 0644"},
		{"dev token in file", auth.Config{Prod: true, File: writeFile(t, t.TempDir(),
			`{"service_accounts": [{"account_id": "adm", "roles": ["admin"], "tokens": ["dev-admin-token"]}]}`, 0o600)}, "public development token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.LookupEnv = env(nil)
			_, err := auth.Load(c.cfg)
			if !errors.Is(err, auth.ErrMisconfigured) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrMisconfigured mentioning %q", err, c.want)
			}
		})
	}
	// Outside prod the reference's variables ask for the same check.
	for _, e := range []map[string]string{{auth.EnvValidateBootstrap: "true"}, {auth.EnvReleaseName: "dg"}} {
		if _, err := auth.Load(auth.Config{LookupEnv: env(e)}); !errors.Is(err, auth.ErrMisconfigured) {
			t.Errorf("%v with no accounts: %v", e, err)
		}
	}
	if _, err := auth.Load(auth.Config{DevTokens: true, LookupEnv: env(map[string]string{auth.EnvValidateBootstrap: "1"})}); err != nil {
		t.Errorf("dev tokens satisfy the check outside prod: %v", err)
	}
	if _, err := auth.Load(auth.Config{Prod: true, File: good, LookupEnv: env(nil)}); err != nil {
		t.Fatalf("a 0600 file in prod must load: %v", err)
	}
	// Dev accepts a world-readable file (with a warning).
	if _, err := auth.Load(auth.Config{File: writeFile(t, t.TempDir(), twoDoc(), 0o644), LookupEnv: env(nil)}); err != nil {
		t.Fatalf("dev with a 0644 file: %v", err)
	}
}

func TestDevSet(t *testing.T) {
	s := auth.DevSet()
	for tok, want := range map[string]string{"dev-reader-token": "dev-reader", "dev-writer-token": "dev-writer", "dev-admin-token": "dev-admin"} {
		if a := s.Lookup(tok); a == nil || a.AccountID != want {
			t.Errorf("%s -> %v, want %s", tok, a, want)
		}
	}
	if !s.Lookup("dev-reader-token").AllowsTenant("release-demo") || s.Lookup("dev-writer-token").AllowsTenant("other") {
		t.Error("dev reader/writer serve default and release-demo only")
	}
	if !s.Lookup("dev-admin-token").AllowsTenant("other") {
		t.Error("dev admin serves every tenant")
	}
}

func TestReloadKeepsOldAccountsOnBrokenFile(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, twoDoc(), 0o600)
	reg, err := auth.Load(auth.Config{Prod: true, File: file, LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	// A broken document: the old accounts stay, the error is reported.
	writeFile(t, dir, `{"service_accounts": [`, 0o600)
	if err := reg.Reload(); err == nil {
		t.Fatal("reload of a broken file must fail")
	}
	if reg.Current().Lookup("read-1") == nil {
		t.Fatal("old accounts must stay after a failed reload")
	}
	if h := reg.Health(); !strings.Contains(h["last_reload_error"].(string), "not valid JSON") {
		t.Errorf("health must show the reload error: %v", h)
	}
	// An insecure mode in prod is refused on reload too.
	writeFile(t, dir, strings.Replace(twoDoc(), `"read-2"`, `"read-3"`, 1), 0o644)
	if err := reg.Reload(); err == nil || reg.Current().Lookup("read-3") != nil {
		t.Fatalf("prod reload of a 0644 file must be refused: %v", err)
	}
	// A fixed file is taken.
	writeFile(t, dir, strings.Replace(twoDoc(), `"read-2"`, `"read-3"`, 1), 0o600)
	if err := reg.Reload(); err != nil {
		t.Fatal(err)
	}
	if reg.Current().Lookup("read-3") == nil || reg.Current().Lookup("read-2") != nil {
		t.Fatal("reload must apply the new token set")
	}
	if _, ok := reg.Health()["last_reload_error"]; ok {
		t.Error("a good reload clears the error")
	}
}

func TestWatchReloadsOnChangeAndSignal(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, twoDoc(), 0o600)
	reg, err := auth.Load(auth.Config{File: file, LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	go reg.Watch(ctx, 20*time.Millisecond, sig)

	// A change of the file is picked up by polling.
	writeFile(t, dir, strings.Replace(twoDoc(), `"read-2"`, `"read-polled"`, 1), 0o600)
	waitFor(t, func() bool { return reg.Current().Lookup("read-polled") != nil })

	// A broken write keeps the accounts; the fix is picked up afterwards.
	writeFile(t, dir, `{"service_accounts": 1}`, 0o600)
	waitFor(t, func() bool { _, bad := reg.Health()["last_reload_error"]; return bad })
	if reg.Current().Lookup("read-polled") == nil {
		t.Fatal("broken file replaced the accounts")
	}
	writeFile(t, dir, strings.Replace(twoDoc(), `"read-2"`, `"read-fixed"`, 1), 0o600)
	waitFor(t, func() bool { return reg.Current().Lookup("read-fixed") != nil })

	// A signal reloads even when the file looks unchanged to the poller.
	cancel()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go reg.Watch(ctx2, time.Hour, sig)
	writeFile(t, dir, strings.Replace(twoDoc(), `"read-2"`, `"read-signal"`, 1), 0o600)
	sig <- os.Interrupt
	waitFor(t, func() bool { return reg.Current().Lookup("read-signal") != nil })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTokensAndFingerprints(t *testing.T) {
	a, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := auth.NewToken()
	if len(a) != 43 || a == b || strings.ContainsAny(a, "+/=") {
		t.Fatalf("token %q: want 43 unpadded base64url characters, distinct", a)
	}
	d := auth.HashToken(a)
	if fp := d.Fingerprint(); !strings.HasPrefix(fp, "sha256:") || len(fp) != 19 || strings.Contains(fp, a) {
		t.Errorf("fingerprint %q", fp)
	}
	back, err := auth.ParseTokenSHA256("sha256:" + d.Hex())
	if err != nil || back != d {
		t.Errorf("ParseTokenSHA256 round trip: %v", err)
	}
}

// BenchmarkLookup shows the cost of authenticating one request against a
// set of 50 accounts with 3 tokens each (the whole set is always scanned).
func BenchmarkLookup(b *testing.B) {
	var accts []*auth.Account
	for i := 0; i < 50; i++ {
		accts = append(accts, auth.NewAccount("a"+string(rune('A'+i%26))+string(rune('a'+i/26)), []string{"reader"}, nil, []string{"*"}, "t1-"+string(rune(i)), "t2-"+string(rune(i)), "t3-"+string(rune(i))))
	}
	s := &auth.Set{Accounts: accts}
	b.ReportAllocs()
	for b.Loop() {
		s.Lookup("no-such-token")
	}
}

// TestWatchSurvivesMissingFile: a file that disappears keeps the accounts
// (reported once), and its return is picked up.
func TestWatchSurvivesMissingFile(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, twoDoc(), 0o600)
	var logs strings.Builder
	reg, err := auth.Load(auth.Config{File: file, LookupEnv: env(nil), Logger: slog.New(slog.NewTextHandler(&syncWriter{b: &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go reg.Watch(ctx, 10*time.Millisecond, nil)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, bad := reg.Health()["last_reload_error"]; return bad })
	time.Sleep(100 * time.Millisecond) // ten more ticks
	if reg.Current().Lookup("read-1") == nil {
		t.Fatal("accounts lost when the file vanished")
	}
	writeFile(t, dir, strings.Replace(twoDoc(), `"read-2"`, `"read-back"`, 1), 0o600)
	waitFor(t, func() bool { return reg.Current().Lookup("read-back") != nil })
	cancel()
	if n := strings.Count(syncString(&logs), "accounts reload failed"); n != 1 {
		t.Fatalf("a missing file must be reported once, got %d reports", n)
	}
}

var logMu sync.Mutex

type syncWriter struct{ b *strings.Builder }

func (w *syncWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return w.b.Write(p)
}

func syncString(b *strings.Builder) string {
	logMu.Lock()
	defer logMu.Unlock()
	return b.String()
}
