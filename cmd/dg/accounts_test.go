package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func runAccountsCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runContext(context.Background(), args, &out, &errb, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return code, out.String(), errb.String()
}

func TestAccountsCommands(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "service-accounts.json")

	code, out, errs := runAccountsCmd(t, nil, "accounts", "bootstrap", "--file", file, "--tenant", "acme", "--hashed", "-o", "json")
	if code != 0 {
		t.Fatalf("bootstrap: exit %d: %s", code, errs)
	}
	var boot struct {
		File     string `json:"file"`
		Hashed   bool   `json:"hashed"`
		Accounts []struct {
			AccountID string   `json:"account_id"`
			TenantIDs []string `json:"tenant_ids"`
			Token     string   `json:"token"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(out), &boot); err != nil {
		t.Fatalf("bootstrap -o json: %v: %s", err, out)
	}
	if !boot.Hashed || len(boot.Accounts) != 3 || boot.Accounts[0].TenantIDs[0] != "acme" || len(boot.Accounts[0].Token) != 43 {
		t.Fatalf("bootstrap report: %s", out)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o", st.Mode().Perm())
	}
	// A second bootstrap without --force is a usage error (exit 2).
	if code, _, errs := runAccountsCmd(t, nil, "accounts", "bootstrap", "--file", file); code != 2 || !strings.Contains(errs, "--force") {
		t.Fatalf("second bootstrap: exit %d: %s", code, errs)
	}

	// Text bootstrap prints the tokens and the env lines.
	file2 := filepath.Join(dir, "plain.json")
	code, out, _ = runAccountsCmd(t, nil, "accounts", "bootstrap", "--file", file2)
	if code != 0 || !strings.Contains(out, "DECISION_GRAPH_SERVICE_ACCOUNTS_FILE="+file2) || !strings.Contains(out, "admin-main") {
		t.Fatalf("text bootstrap: %d %s", code, out)
	}

	// rotate via the environment variable's file.
	env := map[string]string{"DECISION_GRAPH_SERVICE_ACCOUNTS_FILE": file}
	code, out, errs = runAccountsCmd(t, env, "accounts", "rotate", "--account", "writer-main", "-o", "json")
	if code != 0 {
		t.Fatalf("rotate: exit %d: %s", code, errs)
	}
	var rot struct {
		Token       string `json:"token"`
		Fingerprint string `json:"fingerprint"`
		TokenCount  int    `json:"token_count"`
	}
	if err := json.Unmarshal([]byte(out), &rot); err != nil || rot.TokenCount != 2 {
		t.Fatalf("rotate report: %v %s", err, out)
	}

	// list never prints a token.
	code, out, _ = runAccountsCmd(t, nil, "accounts", "list", "--file", file, "-o", "json")
	if code != 0 || strings.Contains(out, rot.Token) || strings.Contains(out, boot.Accounts[1].Token) || !strings.Contains(out, rot.Fingerprint) {
		t.Fatalf("list: %d %s", code, out)
	}
	code, out, _ = runAccountsCmd(t, nil, "accounts", "list", "--file", file)
	if code != 0 || !strings.Contains(out, "writer-main") || strings.Contains(out, rot.Token) {
		t.Fatalf("list text: %d %s", code, out)
	}

	// A hashed token is not matched by a plaintext prefix (only its hash is
	// on disk), but by the whole token or its fingerprint.
	if code, _, _ := runAccountsCmd(t, nil, "accounts", "revoke", "--file", file, "--account", "writer-main", "--token-prefix", boot.Accounts[1].Token[:8]); code != 2 {
		t.Fatalf("revoke of a hashed token by plaintext prefix: exit %d, want 2", code)
	}
	code, out, errs = runAccountsCmd(t, nil, "accounts", "revoke", "--file", file, "--account", "writer-main", "--token-prefix", boot.Accounts[1].Token, "-o", "json")
	if code != 0 || !strings.Contains(out, `"token_count": 1`) {
		t.Fatalf("revoke: exit %d: %s %s", code, out, errs)
	}
	// revoke by a plaintext prefix in a plaintext file.
	if code, _, errs := runAccountsCmd(t, nil, "accounts", "rotate", "--file", file2, "--account", "reader-main"); code != 0 {
		t.Fatalf("rotate plaintext: %s", errs)
	}
	list2, _ := os.ReadFile(file2)
	var plainDoc struct {
		Accounts []struct {
			Tokens []string `json:"tokens"`
		} `json:"service_accounts"`
	}
	if err := json.Unmarshal(list2, &plainDoc); err != nil || len(plainDoc.Accounts[0].Tokens) != 2 {
		t.Fatalf("plaintext file after rotate: %v %s", err, list2)
	}
	if code, out, errs := runAccountsCmd(t, nil, "accounts", "revoke", "--file", file2, "--account", "reader-main", "--token-prefix", plainDoc.Accounts[0].Tokens[0][:8]); code != 0 || !strings.Contains(out, "1 tokens left") {
		t.Fatalf("revoke by plaintext prefix: exit %d: %s %s", code, out, errs)
	}

	usage := [][]string{
		{"accounts", "bootstrap"},
		{"accounts", "rotate", "--file", file},
		{"accounts", "rotate", "--file", file, "--account", "nobody"},
		{"accounts", "revoke", "--file", file, "--account", "writer-main", "--token-prefix", "ab"},
		{"accounts", "revoke", "--file", file, "--account", "writer-main", "--token-prefix", rot.Token[:10]}, // last token
		{"accounts", "list", "--file", filepath.Join(dir, "missing.json")},
	}
	for _, args := range usage {
		if code, _, errs := runAccountsCmd(t, nil, args...); code != 2 || errs == "" {
			t.Errorf("%v: exit %d (want 2): %s", args, code, errs)
		}
	}
}

// TestUpRefusesOpenAccountsFileInProd: dg up in prod with an accounts file
// other users can read stops with exit 2 and says how to fix it, before it
// connects to any database.
func TestUpRefusesOpenAccountsFileInProd(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "accounts.json")
	if code, _, errs := runAccountsCmd(t, nil, "accounts", "bootstrap", "--file", file); code != 0 {
		t.Fatalf("bootstrap: %s", errs)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "dg.yaml")
	body := "server:\n  env: prod\n  listen: 127.0.0.1:" + strconv.Itoa(testFreePort(t)) + "\n  secret_key_base: " + strings.Repeat("k", 64) +
		"\ndatabase:\n  mode: external\n  url: postgres://nobody@127.0.0.1:1/none\naccounts:\n  file: " + file +
		"\nbackup:\n  dir: " + filepath.Join(dir, "b") + "\ndrill:\n  report_dir: " + filepath.Join(dir, "d") + "\n"
	if err := os.WriteFile(manifest, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runAccountsCmd(t, nil, "up", "-f", manifest)
	if code != 2 || !strings.Contains(errs, "chmod 600 "+file) {
		t.Fatalf("dg up: exit %d (want 2): %s", code, errs)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	// With the mode fixed, accounts pass and dg up gets as far as the database.
	code, _, errs = runAccountsCmd(t, nil, "--log-format", "json", "up", "-f", manifest)
	if code != 3 || strings.Contains(errs, "chmod") {
		t.Fatalf("dg up with a 0600 file: exit %d (want 3, database unreachable): %s", code, errs)
	}
	// --log-format json: the log lines are JSON objects.
	var sawLoaded bool
	for _, line := range strings.Split(errs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "service accounts loaded" {
			sawLoaded = m["source"] == "file:"+file && m["accounts"] == float64(3)
		}
	}
	if !sawLoaded {
		t.Fatalf("no JSON log line for the loaded accounts in:\n%s", errs)
	}
	if code, _, _ := runAccountsCmd(t, nil, "--log-format", "xml", "version"); code != 2 {
		t.Fatalf("--log-format xml: exit %d, want 2", code)
	}
}
