package ops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/decisiongraph/dg/internal/sysx"
	"github.com/decisiongraph/dg/pkg/auth"
)

// Errors of the accounts-file operations that are the caller's to fix
// (dg maps them to exit code 2, ErrAccountsLocked to 4).
var (
	ErrAccountsFileExists = errors.New("accounts file already exists")
	ErrAccountNotFound    = errors.New("no such account")
	ErrTokenPrefix        = errors.New("token prefix does not pick exactly one token")
	ErrAccountsInvalid    = errors.New("accounts file is not valid")
	ErrAccountsLocked     = errors.New("accounts file is locked by another dg accounts command")
)

// minTokenPrefix is the shortest --token-prefix revoke accepts.
const minTokenPrefix = 6

// IssuedAccount is an account a bootstrap wrote, with its one token. The
// token is shown once (the caller prints it) and, with Hashed, not stored.
type IssuedAccount struct {
	AccountID   string   `json:"account_id"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	TenantIDs   []string `json:"tenant_ids"`
	Token       string   `json:"token"`
	Fingerprint string   `json:"fingerprint"`
}

// BootstrapOptions configure BootstrapAccounts.
type BootstrapOptions struct {
	Path    string
	Tenants []string // default ["default"]
	Prefix  string   // account name suffix, default "main"
	// IncludeReleaseDemo adds the release-demo tenant.
	IncludeReleaseDemo bool
	// Hashed stores token_sha256 entries only (no plaintext on disk).
	Hashed bool
	// Force replaces an existing file.
	Force bool
	Now   time.Time
}

// BootstrapResult is what BootstrapAccounts wrote.
type BootstrapResult struct {
	Path              string          `json:"file"`
	OperatorAccountID string          `json:"operator_console_account_id"`
	Hashed            bool            `json:"hashed"`
	Accounts          []IssuedAccount `json:"accounts"`
}

// BootstrapAccounts writes a new accounts file with three accounts,
// reader-<prefix>, writer-<prefix> (workflow_assign, workflow_review) and
// admin-<prefix> (every permission), each with one fresh token, and
// admin-<prefix> as the operator console account. The file is written
// atomically with mode 0600.
func BootstrapAccounts(o BootstrapOptions) (*BootstrapResult, error) {
	if o.Path == "" {
		return nil, errors.New("bootstrap needs an output file")
	}
	if o.Prefix == "" {
		o.Prefix = "main"
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	tenants := []string{}
	for _, t := range o.Tenants {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(tenants, t) {
			tenants = append(tenants, t)
		}
	}
	if len(tenants) == 0 {
		tenants = []string{"default"}
	}
	if o.IncludeReleaseDemo && !slices.Contains(tenants, "release-demo") {
		tenants = append(tenants, "release-demo")
	}
	unlock, err := lockAccountsFile(o.Path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(o.Path); err == nil && !o.Force {
		return nil, fmt.Errorf("%w: %s; use dg accounts rotate to add tokens, or --force to replace every account", ErrAccountsFileExists, o.Path)
	}
	specs := []struct {
		role  string
		perms []string
	}{
		{auth.RoleReader, []string{}},
		{auth.RoleWriter, []string{auth.PermWorkflowAssign, auth.PermWorkflowReview}},
		{auth.RoleAdmin, auth.AllPermissions()},
	}
	res := &BootstrapResult{Path: o.Path, OperatorAccountID: "admin-" + o.Prefix, Hashed: o.Hashed}
	var entries []map[string]any
	for _, sp := range specs {
		tok, err := auth.NewToken()
		if err != nil {
			return nil, err
		}
		d := auth.HashToken(tok)
		ia := IssuedAccount{AccountID: sp.role + "-" + o.Prefix, Roles: []string{sp.role}, Permissions: sp.perms,
			TenantIDs: tenants, Token: tok, Fingerprint: d.Fingerprint()}
		res.Accounts = append(res.Accounts, ia)
		e := map[string]any{"account_id": ia.AccountID, "roles": ia.Roles, "permissions": ia.Permissions, "tenant_ids": ia.TenantIDs}
		if o.Hashed {
			e["token_sha256"] = []string{d.Hex()}
		} else {
			e["tokens"] = []string{tok}
		}
		entries = append(entries, e)
	}
	doc := map[string]any{
		"generated_at":                o.Now.UTC().Format(time.RFC3339),
		"operator_console_account_id": res.OperatorAccountID,
		"service_accounts":            entries,
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode accounts file: %w", err)
	}
	if err := writeAccounts(o.Path, append(data, '\n')); err != nil {
		return nil, err
	}
	return res, nil
}

// RotateResult is the token RotateAccountToken added.
type RotateResult struct {
	Path        string `json:"file"`
	AccountID   string `json:"account_id"`
	Token       string `json:"token"`
	Fingerprint string `json:"fingerprint"`
	Hashed      bool   `json:"hashed"`
	TokenCount  int    `json:"token_count"`
}

// RotateAccountToken adds a fresh token to an account and keeps its old
// ones, so clients can move over before the old token is revoked. The new
// token is stored hashed when hashed is set or when the account already
// stores hashes only.
func RotateAccountToken(path, accountID string, hashed bool) (*RotateResult, error) {
	var res *RotateResult
	err := editAccounts(path, func(acct map[string]json.RawMessage) error {
		if accountIDOf(acct) != accountID {
			return nil
		}
		plain, hashes, err := tokenLists(acct)
		if err != nil {
			return err
		}
		tok, err := auth.NewToken()
		if err != nil {
			return err
		}
		d := auth.HashToken(tok)
		store := hashed || (len(plain) == 0 && len(hashes) > 0)
		if store {
			hashes = append(hashes, d.Hex())
		} else {
			plain = append(plain, tok)
		}
		if err := setTokenLists(acct, plain, hashes); err != nil {
			return err
		}
		res = &RotateResult{Path: path, AccountID: accountID, Token: tok, Fingerprint: d.Fingerprint(), Hashed: store, TokenCount: len(plain) + len(hashes)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("%w %q in %s; dg accounts list shows the accounts", ErrAccountNotFound, accountID, path)
	}
	return res, nil
}

// RevokeResult is the token RevokeAccountToken removed.
type RevokeResult struct {
	Path        string `json:"file"`
	AccountID   string `json:"account_id"`
	Fingerprint string `json:"fingerprint"`
	TokenCount  int    `json:"token_count"`
}

// RevokeAccountToken removes the one token of an account that prefix
// picks: a prefix (at least 6 characters) of the plaintext token, or of
// its fingerprint / SHA-256 hex (with or without "sha256:"). A token
// stored only as a hash is matched by its fingerprint or by the whole
// token. It refuses
// a prefix matching several tokens or none, and removing an account's
// last token.
func RevokeAccountToken(path, accountID, prefix string) (*RevokeResult, error) {
	prefix = strings.TrimSpace(prefix)
	hexPrefix := strings.ToLower(strings.TrimPrefix(prefix, "sha256:"))
	if len(hexPrefix) < minTokenPrefix {
		return nil, fmt.Errorf("%w: the prefix must have at least %d characters (dg accounts list shows fingerprints)", ErrTokenPrefix, minTokenPrefix)
	}
	var res *RevokeResult
	err := editAccounts(path, func(acct map[string]json.RawMessage) error {
		if accountIDOf(acct) != accountID {
			return nil
		}
		plain, hashes, err := tokenLists(acct)
		if err != nil {
			return err
		}
		type hit struct {
			hashed bool
			i      int
			fp     string
		}
		var hits []hit
		for i, t := range plain {
			d := auth.HashToken(t)
			if strings.HasPrefix(t, prefix) || strings.HasPrefix(d.Hex(), hexPrefix) {
				hits = append(hits, hit{false, i, d.Fingerprint()})
			}
		}
		for i, h := range hashes {
			d, err := auth.ParseTokenSHA256(h)
			if err != nil {
				return fmt.Errorf("%w: account %s: %v", ErrAccountsInvalid, accountID, err)
			}
			if strings.HasPrefix(d.Hex(), hexPrefix) || d == auth.HashToken(prefix) {
				hits = append(hits, hit{true, i, d.Fingerprint()})
			}
		}
		switch {
		case len(hits) == 0:
			return fmt.Errorf("%w: no token of %s starts with %q (dg accounts list shows fingerprints)", ErrTokenPrefix, accountID, prefix)
		case len(hits) > 1:
			return fmt.Errorf("%w: %d tokens of %s match %q; give a longer prefix", ErrTokenPrefix, len(hits), accountID, prefix)
		case len(plain)+len(hashes) == 1:
			return fmt.Errorf("%w: %s is the last token of %s; rotate first (dg accounts rotate --account %s), then revoke the old one", ErrTokenPrefix, hits[0].fp, accountID, accountID)
		}
		h := hits[0]
		if h.hashed {
			hashes = slices.Delete(hashes, h.i, h.i+1)
		} else {
			plain = slices.Delete(plain, h.i, h.i+1)
		}
		if err := setTokenLists(acct, plain, hashes); err != nil {
			return err
		}
		res = &RevokeResult{Path: path, AccountID: accountID, Fingerprint: h.fp, TokenCount: len(plain) + len(hashes)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("%w %q in %s; dg accounts list shows the accounts", ErrAccountNotFound, accountID, path)
	}
	return res, nil
}

// TokenInfo describes a token without revealing it.
type TokenInfo struct {
	Fingerprint string `json:"fingerprint"`
	// Stored is "plaintext" or "sha256" (only the hash is on disk).
	Stored string `json:"stored"`
}

// AccountInfo is one account of a listing.
type AccountInfo struct {
	AccountID   string      `json:"account_id"`
	Roles       []string    `json:"roles"`
	Permissions []string    `json:"permissions"`
	TenantIDs   []string    `json:"tenant_ids"`
	Tokens      []TokenInfo `json:"tokens"`
}

// AccountsReport is ListAccounts' answer. It holds no secret.
type AccountsReport struct {
	Path              string        `json:"file"`
	Mode              string        `json:"mode"`
	GeneratedAt       string        `json:"generated_at,omitempty"`
	OperatorAccountID string        `json:"operator_console_account_id,omitempty"`
	Accounts          []AccountInfo `json:"accounts"`
	Warnings          []string      `json:"warnings"`
}

// ListAccounts describes an accounts file: accounts, roles, tenants,
// permissions and token fingerprints, never tokens. Warnings name what
// prod would refuse (mode open to group or others).
func ListAccounts(path string) (*AccountsReport, error) {
	data, st, err := readAccounts(path)
	if err != nil {
		return nil, err
	}
	doc, err := auth.ParseDocument(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrAccountsInvalid, path, err)
	}
	rep := &AccountsReport{Path: path, Mode: fmt.Sprintf("%04o", st.Mode().Perm()), GeneratedAt: doc.GeneratedAt,
		OperatorAccountID: doc.OperatorAccountID, Warnings: []string{}}
	if st.Mode().Perm()&0o077 != 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("mode %04o lets group or others read the file; dg up refuses it in prod: chmod 600 %s", st.Mode().Perm(), path))
	}
	// Token storage kinds come from the raw file, in the order ParseDocument hashes them.
	var raw struct {
		Accounts []map[string]json.RawMessage `json:"service_accounts"`
	}
	_ = json.Unmarshal(data, &raw)
	for i, a := range doc.Accounts {
		info := AccountInfo{AccountID: a.AccountID, Roles: a.Roles, Permissions: a.Permissions, TenantIDs: a.TenantIDs}
		stored := map[string]string{}
		if i < len(raw.Accounts) {
			plain, hashes, _ := tokenLists(raw.Accounts[i])
			for _, t := range plain {
				stored[auth.HashToken(t).Fingerprint()] = "plaintext"
			}
			for _, h := range hashes {
				if d, err := auth.ParseTokenSHA256(h); err == nil {
					if _, dup := stored[d.Fingerprint()]; !dup {
						stored[d.Fingerprint()] = "sha256"
					}
				}
			}
		}
		for _, fp := range a.Fingerprints() {
			info.Tokens = append(info.Tokens, TokenInfo{Fingerprint: fp, Stored: stored[fp]})
		}
		rep.Accounts = append(rep.Accounts, info)
	}
	return rep, nil
}

// editAccounts applies fn to every account object of the file under the
// file lock, checks the result still loads, and writes it atomically.
// Members dg does not know are kept.
func editAccounts(path string, fn func(map[string]json.RawMessage) error) error {
	unlock, err := lockAccountsFile(path)
	if err != nil {
		return err
	}
	defer unlock()
	data, _, err := readAccounts(path)
	if err != nil {
		return err
	}
	if _, err := auth.ParseDocument(data); err != nil {
		return fmt.Errorf("%w: %s: %v (fix it by hand before editing it with dg accounts)", ErrAccountsInvalid, path, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrAccountsInvalid, path, err)
	}
	var accts []map[string]json.RawMessage
	if err := json.Unmarshal(top["service_accounts"], &accts); err != nil {
		return fmt.Errorf("%w: %s: service_accounts: %v", ErrAccountsInvalid, path, err)
	}
	for _, a := range accts {
		if err := fn(a); err != nil {
			return err
		}
	}
	if top["service_accounts"], err = json.Marshal(accts); err != nil {
		return fmt.Errorf("encode accounts: %w", err)
	}
	out, err := json.Marshal(top)
	if err != nil {
		return fmt.Errorf("encode accounts file: %w", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "  "); err != nil {
		return fmt.Errorf("encode accounts file: %w", err)
	}
	pretty.WriteByte('\n')
	if _, err := auth.ParseDocument(pretty.Bytes()); err != nil {
		return fmt.Errorf("the edited file would not load (%v); nothing was written", err)
	}
	return writeAccounts(path, pretty.Bytes())
}

func readAccounts(path string) ([]byte, os.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s does not exist; create it with dg accounts bootstrap --file %s", ErrAccountsInvalid, path, path)
		}
		return nil, nil, fmt.Errorf("read accounts file: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read accounts file: %w", err)
	}
	return data, st, nil
}

func accountIDOf(acct map[string]json.RawMessage) string {
	var id any
	_ = json.Unmarshal(acct["account_id"], &id)
	s, _ := id.(string)
	return strings.TrimSpace(s)
}

// tokenLists returns an account's plaintext tokens (tokens, or the legacy
// token when tokens is absent) and token_sha256 entries.
func tokenLists(acct map[string]json.RawMessage) (plain, hashes []string, err error) {
	if raw, ok := acct["tokens"]; ok {
		plain, err = rawStrings(raw, "tokens")
	} else if raw, ok := acct["token"]; ok {
		plain, err = rawStrings(raw, "token")
	}
	if err != nil {
		return nil, nil, err
	}
	if raw, ok := acct["token_sha256"]; ok {
		if hashes, err = rawStrings(raw, "token_sha256"); err != nil {
			return nil, nil, err
		}
	}
	return plain, hashes, nil
}

// setTokenLists writes the lists back: tokens (dropping the legacy token
// member) and token_sha256, omitting an empty one.
func setTokenLists(acct map[string]json.RawMessage, plain, hashes []string) error {
	delete(acct, "token")
	delete(acct, "tokens")
	delete(acct, "token_sha256")
	if len(plain) > 0 {
		b, err := json.Marshal(plain)
		if err != nil {
			return err
		}
		acct["tokens"] = b
	}
	if len(hashes) > 0 {
		b, err := json.Marshal(hashes)
		if err != nil {
			return err
		}
		acct["token_sha256"] = b
	}
	return nil
}

func rawStrings(raw json.RawMessage, key string) ([]string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrAccountsInvalid, key, err)
	}
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	var out []string
	for _, it := range items {
		switch x := it.(type) {
		case string:
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		case nil:
		default:
			return nil, fmt.Errorf("%w: %s must hold strings", ErrAccountsInvalid, key)
		}
	}
	return out, nil
}

// writeAccounts replaces path atomically: a temp file in the same
// directory with mode 0600, written, fsynced, renamed over path, and the
// directory fsynced, so a reader (or a crash) sees the old file or the
// new one, never a mix.
func writeAccounts(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write accounts file: %w (does %s exist and is it writable?)", err, dir)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write accounts file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write accounts file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write accounts file: fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write accounts file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write accounts file: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// lockAccountsFile takes an exclusive lock on <path>.lock so two dg
// accounts commands cannot lose each other's edits. It does not wait.
func lockAccountsFile(path string) (func(), error) {
	unlock, err := sysx.LockFile(path + ".lock")
	if errors.Is(err, sysx.ErrLocked) {
		return nil, fmt.Errorf("%w (%s.lock); wait for it to finish", ErrAccountsLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock accounts file: %w (does the directory of %s exist?)", err, path)
	}
	return unlock, nil
}
