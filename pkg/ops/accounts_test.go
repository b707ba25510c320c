package ops_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/ops"
)

func loadSet(t *testing.T, path string) *auth.Set {
	t.Helper()
	reg, err := auth.Load(auth.Config{Prod: true, File: path, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatalf("the file must load in prod: %v", err)
	}
	return reg.Current()
}

func TestBootstrapAccountsFileModeAndFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "service-accounts.json")
	res, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: path, Tenants: []string{"acme", "acme", "beta"}, IncludeReleaseDemo: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", st.Mode().Perm())
	}
	// The reference format: generated_at, operator id, three accounts with tokens.
	var doc struct {
		GeneratedAt string `json:"generated_at"`
		Operator    string `json:"operator_console_account_id"`
		Accounts    []struct {
			AccountID   string   `json:"account_id"`
			Roles       []string `json:"roles"`
			Permissions []string `json:"permissions"`
			TenantIDs   []string `json:"tenant_ids"`
			Tokens      []string `json:"tokens"`
		} `json:"service_accounts"`
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Operator != "admin-main" || doc.GeneratedAt == "" || len(doc.Accounts) != 3 {
		t.Fatalf("doc = %+v", doc)
	}
	want := map[string]int{"reader-main": 0, "writer-main": 2, "admin-main": 7}
	for i, a := range doc.Accounts {
		if n, ok := want[a.AccountID]; !ok || len(a.Permissions) != n || len(a.Tokens) != 1 || len(a.Tokens[0]) != 43 {
			t.Errorf("account %+v", a)
		}
		if strings.Join(a.TenantIDs, ",") != "acme,beta,release-demo" {
			t.Errorf("tenants %v", a.TenantIDs)
		}
		if res.Accounts[i].Token != a.Tokens[0] {
			t.Errorf("printed token differs from the stored one")
		}
	}
	s := loadSet(t, path)
	for _, ia := range res.Accounts {
		if a := s.Lookup(ia.Token); a == nil || a.AccountID != ia.AccountID {
			t.Errorf("token of %s does not authenticate", ia.AccountID)
		}
	}
	// An existing file is not replaced without --force.
	if _, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: path}); !errors.Is(err, ops.ErrAccountsFileExists) {
		t.Fatalf("second bootstrap: %v", err)
	}
	res2, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: path, Force: true, Prefix: "blue"})
	if err != nil || res2.OperatorAccountID != "admin-blue" {
		t.Fatalf("forced bootstrap: %v %+v", err, res2)
	}
}

func TestBootstrapHashedStoresNoPlaintext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	res, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: path, Hashed: true})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, ia := range res.Accounts {
		if strings.Contains(string(data), ia.Token) {
			t.Fatalf("hashed bootstrap stored the plaintext token of %s", ia.AccountID)
		}
		if !strings.Contains(string(data), auth.HashToken(ia.Token).Hex()) {
			t.Fatalf("hashed bootstrap lacks the token_sha256 of %s", ia.AccountID)
		}
	}
	s := loadSet(t, path)
	if a := s.Lookup(res.Accounts[2].Token); a == nil || a.AccountID != "admin-main" {
		t.Fatal("hashed token must authenticate")
	}
}

func TestRotateKeepsOldTokensAndRevokeInvalidates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	res, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	old := res.Accounts[1].Token // writer-main
	rot, err := ops.RotateAccountToken(path, "writer-main", false)
	if err != nil {
		t.Fatal(err)
	}
	if rot.TokenCount != 2 || rot.Token == old || rot.Hashed {
		t.Fatalf("rotate: %+v", rot)
	}
	s := loadSet(t, path)
	if s.Lookup(old) == nil || s.Lookup(rot.Token) == nil {
		t.Fatal("after rotate both the old and the new token must be valid")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("rotate changed the mode to %04o", st.Mode().Perm())
	}
	// A hashed rotation stores only the hash.
	hrot, err := ops.RotateAccountToken(path, "writer-main", true)
	if err != nil || !hrot.Hashed {
		t.Fatalf("hashed rotate: %v %+v", err, hrot)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), hrot.Token) {
		t.Fatal("hashed rotate stored the plaintext")
	}
	if loadSet(t, path).Lookup(hrot.Token) == nil {
		t.Fatal("hashed rotated token must be valid")
	}

	// Revoke by a plaintext prefix and by a fingerprint prefix.
	rev, err := ops.RevokeAccountToken(path, "writer-main", old[:10])
	if err != nil {
		t.Fatal(err)
	}
	if rev.Fingerprint != auth.HashToken(old).Fingerprint() || rev.TokenCount != 2 {
		t.Fatalf("revoke: %+v", rev)
	}
	s = loadSet(t, path)
	if s.Lookup(old) != nil {
		t.Fatal("revoked token still valid")
	}
	if s.Lookup(rot.Token) == nil || s.Lookup(hrot.Token) == nil {
		t.Fatal("revoke removed the wrong token")
	}
	if _, err := ops.RevokeAccountToken(path, "writer-main", auth.HashToken(hrot.Token).Fingerprint()); err != nil {
		t.Fatalf("revoke by fingerprint: %v", err)
	}
	if loadSet(t, path).Lookup(hrot.Token) != nil {
		t.Fatal("hashed token still valid after revoke")
	}

	cases := []struct {
		name, account, prefix string
		want                  error
	}{
		{"unknown account", "nobody", old[:10], ops.ErrAccountNotFound},
		{"short prefix", "writer-main", "abc", ops.ErrTokenPrefix},
		{"no match", "writer-main", "zzzzzzzzzz", ops.ErrTokenPrefix},
		{"last token", "writer-main", rot.Token[:12], ops.ErrTokenPrefix},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ops.RevokeAccountToken(path, c.account, c.prefix); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	if _, err := ops.RotateAccountToken(path, "nobody", false); !errors.Is(err, ops.ErrAccountNotFound) {
		t.Fatalf("rotate unknown: %v", err)
	}
}

func TestListAccountsShowsNoSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	res, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.RotateAccountToken(path, "admin-main", true); err != nil {
		t.Fatal(err)
	}
	rep, err := ops.ListAccounts(path)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(rep)
	for _, ia := range res.Accounts {
		if strings.Contains(string(out), ia.Token) || strings.Contains(string(out), auth.HashToken(ia.Token).Hex()) {
			t.Fatalf("listing reveals a token or its full hash: %s", out)
		}
	}
	if len(rep.Accounts) != 3 || rep.Mode != "0600" || len(rep.Warnings) != 0 || rep.OperatorAccountID != "admin-main" {
		t.Fatalf("report: %s", out)
	}
	adm := rep.Accounts[2]
	if len(adm.Tokens) != 2 || adm.Tokens[0].Stored != "plaintext" || adm.Tokens[1].Stored != "sha256" {
		t.Fatalf("admin tokens: %+v", adm.Tokens)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, _ = ops.ListAccounts(path)
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "chmod 600") {
		t.Fatalf("warnings: %v", rep.Warnings)
	}
	if _, err := ops.ListAccounts(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, ops.ErrAccountsInvalid) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestEditKeepsUnknownMembersAndLegacyToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	legacy := `{"note": "keep me", "operator_console_account_id": "ops",
	  "service_accounts": [{"account_id": "ops", "roles": ["admin"], "tenant_ids": ["*"], "token": "legacy-token-1", "team": "sre"}]}`
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	rot, err := ops.RotateAccountToken(path, "ops", false)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"keep me"`) || !strings.Contains(string(data), `"sre"`) {
		t.Fatalf("unknown members lost: %s", data)
	}
	s := loadSet(t, path)
	if s.Lookup("legacy-token-1") == nil || s.Lookup(rot.Token) == nil {
		t.Fatal("legacy token must survive rotation next to the new one")
	}
}
