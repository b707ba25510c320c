package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Roles with meaning to dg. Each route family accepts a fixed list of
// roles; there is no inheritance.
const (
	RoleReader = "reader"
	RoleWriter = "writer"
	RoleAdmin  = "admin"
)

// Permissions checked inside handlers (second layer after roles). "*" in
// an account's permissions grants every one of them.
const (
	PermProjectionReplay  = "projection_replay"
	PermProjectionRebuild = "projection_rebuild"
	PermWorkflowReview    = "workflow_review"
	PermWorkflowEscalate  = "workflow_escalate"
	PermWorkflowAssign    = "workflow_assign"
	PermWorkflowOverride  = "workflow_override"
	PermWorkflowExport    = "workflow_export"
)

// AllPermissions lists the seven permissions in sorted order (the admin
// account of a bootstrap file gets all of them).
func AllPermissions() []string {
	return []string{PermProjectionRebuild, PermProjectionReplay, PermWorkflowAssign,
		PermWorkflowEscalate, PermWorkflowExport, PermWorkflowOverride, PermWorkflowReview}
}

// Wildcard in tenant_ids allows every tenant; in permissions it grants all.
const Wildcard = "*"

// TokenDigest is the SHA-256 of a token's bytes. Only digests are kept in
// memory; plaintext tokens from a file are hashed on load.
type TokenDigest [sha256.Size]byte

// HashToken returns the digest a token is stored and compared as.
func HashToken(token string) TokenDigest { return sha256.Sum256([]byte(token)) }

// Hex is the lower-case hex form used by token_sha256 entries.
func (d TokenDigest) Hex() string { return hex.EncodeToString(d[:]) }

// Fingerprint is a short, non-secret name for a token: "sha256:" and the
// first 12 hex digits of its digest. `dg accounts list` shows it and
// `dg accounts revoke --token-prefix` accepts a prefix of it.
func (d TokenDigest) Fingerprint() string { return "sha256:" + d.Hex()[:12] }

// ParseTokenSHA256 decodes a token_sha256 entry (64 hex digits, an
// optional "sha256:" prefix).
func ParseTokenSHA256(s string) (TokenDigest, error) {
	var d TokenDigest
	h := strings.TrimPrefix(strings.TrimSpace(s), "sha256:")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return d, fmt.Errorf("token_sha256 entry %q must be 64 hex digits (the SHA-256 of the token)", s)
	}
	copy(d[:], b)
	return d, nil
}

// NewToken returns a fresh token: 32 random bytes, unpadded base64url
// (43 characters), as the reference's generator makes them.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Account is one service account. Token digests are unexported: nothing
// outside this package can read them back, and they are never serialised.
type Account struct {
	AccountID   string   `json:"account_id"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	TenantIDs   []string `json:"tenant_ids"`

	digests []TokenDigest
}

// NewAccount builds an account from plaintext tokens (for tests and the
// built-in development accounts).
func NewAccount(id string, roles, permissions, tenants []string, tokens ...string) *Account {
	a := &Account{AccountID: id, Roles: roles, Permissions: permissions, TenantIDs: tenants}
	for _, t := range tokens {
		a.digests = append(a.digests, HashToken(t))
	}
	return a
}

// TokenCount is how many tokens are valid for the account.
func (a *Account) TokenCount() int { return len(a.digests) }

// Fingerprints lists the account's tokens by fingerprint, in file order.
func (a *Account) Fingerprints() []string {
	out := make([]string, len(a.digests))
	for i, d := range a.digests {
		out[i] = d.Fingerprint()
	}
	return out
}

// HasAnyRole reports whether the account holds one of roles.
func (a *Account) HasAnyRole(roles ...string) bool {
	for _, r := range a.Roles {
		if slices.Contains(roles, r) {
			return true
		}
	}
	return false
}

// Can reports whether the account holds permission (or "*").
func (a *Account) Can(permission string) bool {
	return slices.Contains(a.Permissions, Wildcard) || slices.Contains(a.Permissions, permission)
}

// AllowsTenant reports whether the account may act in tenant.
func (a *Account) AllowsTenant(tenant string) bool {
	return slices.Contains(a.TenantIDs, Wildcard) || slices.Contains(a.TenantIDs, tenant)
}

// matches compares d with every digest of the account in constant time.
func (a *Account) matches(d TokenDigest) bool {
	found := 0
	for i := range a.digests {
		found |= subtle.ConstantTimeCompare(a.digests[i][:], d[:])
	}
	return found == 1
}

// Document is a parsed bootstrap document.
type Document struct {
	GeneratedAt       string
	OperatorAccountID string
	Accounts          []*Account
}

// ParseDocument decodes and validates a bootstrap document: a JSON object
// with a non-empty service_accounts array. Each account needs an
// account_id (unique) and at least one token, given as tokens (a list; the
// legacy single token is used only when tokens is absent) and/or
// token_sha256 (hex digests, so no plaintext has to be stored). A scalar
// where a list is expected becomes a one-element list, scalars are
// stringified, empty strings are dropped. Two accounts may not share a
// token. Errors name the account and the field, never a token.
func ParseDocument(data []byte) (*Document, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return nil, errors.New(`the document must be a JSON object like {"service_accounts": [...]}`)
	}
	doc := &Document{}
	doc.GeneratedAt, _ = scalarString(obj["generated_at"])
	doc.OperatorAccountID, _ = scalarString(obj["operator_console_account_id"])
	raw, ok := obj["service_accounts"].([]any)
	if !ok || len(raw) == 0 {
		return nil, errors.New("service_accounts must be a non-empty array of accounts; create a file with dg accounts bootstrap")
	}
	seenID := map[string]bool{}
	owner := map[TokenDigest]string{}
	for i, v := range raw {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("service_accounts[%d] must be an object", i)
		}
		a, err := parseAccount(m)
		if err != nil {
			return nil, fmt.Errorf("service_accounts[%d]%s: %w", i, nameSuffix(a), err)
		}
		if seenID[a.AccountID] {
			return nil, fmt.Errorf("service_accounts[%d]: account_id %q appears twice; account ids must be unique", i, a.AccountID)
		}
		seenID[a.AccountID] = true
		for _, d := range a.digests {
			if other, dup := owner[d]; dup && other != a.AccountID {
				return nil, fmt.Errorf("accounts %q and %q share a token (%s); give each account its own tokens", other, a.AccountID, d.Fingerprint())
			}
			owner[d] = a.AccountID
		}
		doc.Accounts = append(doc.Accounts, a)
	}
	return doc, nil
}

func nameSuffix(a *Account) string {
	if a == nil || a.AccountID == "" {
		return ""
	}
	return " (" + a.AccountID + ")"
}

func parseAccount(m map[string]any) (*Account, error) {
	a := &Account{}
	id, ok := scalarString(m["account_id"])
	a.AccountID = strings.TrimSpace(id)
	if !ok || a.AccountID == "" {
		return a, errors.New("account_id is required")
	}
	var err error
	if a.Roles, err = stringList(m, "roles"); err != nil {
		return a, err
	}
	if a.Permissions, err = stringList(m, "permissions"); err != nil {
		return a, err
	}
	if a.TenantIDs, err = stringList(m, "tenant_ids"); err != nil {
		return a, err
	}
	var plain []string
	if _, has := m["tokens"]; has {
		if plain, err = stringList(m, "tokens"); err != nil {
			return a, err
		}
	} else if t, ok := scalarString(m["token"]); ok && t != "" {
		plain = []string{t}
	}
	hashed, err := stringList(m, "token_sha256")
	if err != nil {
		return a, err
	}
	seen := map[TokenDigest]bool{}
	add := func(d TokenDigest) {
		if !seen[d] {
			seen[d] = true
			a.digests = append(a.digests, d)
		}
	}
	for _, t := range plain {
		add(HashToken(t))
	}
	for _, h := range hashed {
		d, err := ParseTokenSHA256(h)
		if err != nil {
			return a, err
		}
		add(d)
	}
	if len(a.digests) == 0 {
		return a, errors.New("has no token: give it a non-empty tokens list or token_sha256 entries (dg accounts rotate adds one)")
	}
	return a, nil
}

// stringList reads a list field: absent or null is empty, a scalar is a
// one-element list, values are stringified, empty strings are dropped.
func stringList(m map[string]any, key string) ([]string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return []string{}, nil
	}
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		s, ok := scalarString(it)
		if !ok {
			return nil, fmt.Errorf("%s[%d] must be a string", key, i)
		}
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// scalarString stringifies a JSON scalar (string, number, bool).
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}
