package auth

import (
	"fmt"
	"time"
)

// Bootstrap source labels, as /api/healthz reports them. A file source is
// "file:" followed by its path.
const (
	SourceEnvJSON = "env_json"
	// SourceBuiltin is the built-in development accounts (the reference's
	// static application config, hence its label).
	SourceBuiltin = "application_env"
	// SourceNone means no accounts are configured: every API request is 401.
	SourceNone = "none"
)

// Set is one immutable snapshot of the configured accounts. A reload
// builds a new Set and swaps it in; requests in flight keep the one they
// started with.
type Set struct {
	Source            string
	OperatorAccountID string
	Accounts          []*Account
	LoadedAt          time.Time
	// path and fileInfo identify the file a file-sourced Set came from.
	path string
}

// Lookup returns the account holding token, or nil. The token is hashed
// once and compared with every digest of every account with
// subtle.ConstantTimeCompare, without stopping at a match, so the time
// taken depends on neither the token's content nor its position. Accounts
// are tried in configuration order and the first match wins (a document
// that shares a token between accounts is refused on load anyway).
func (s *Set) Lookup(token string) *Account {
	if s == nil || token == "" {
		return nil
	}
	d := HashToken(token)
	var found *Account
	for _, a := range s.Accounts {
		if a.matches(d) && found == nil {
			found = a
		}
	}
	return found
}

// Account returns the account with id, or nil.
func (s *Set) Account(id string) *Account {
	if s == nil {
		return nil
	}
	for _, a := range s.Accounts {
		if a.AccountID == id {
			return a
		}
	}
	return nil
}

// Path is the file a file-sourced Set was read from ("" otherwise).
func (s *Set) Path() string { return s.path }

// Development tokens. They are public (they are in the documentation and
// in this source), so dg accepts them only when server.env is dev and
// server.dev_tokens is on, and refuses to start in prod with any account
// that accepts one.
const (
	DevReaderToken = "dev-reader-token"
	DevWriterToken = "dev-writer-token"
	DevAdminToken  = "dev-admin-token"
)

// DevSet returns the built-in development accounts: dev-reader, dev-writer
// (workflow_assign, workflow_review) for tenants default and release-demo,
// and dev-admin (every permission) for default and every tenant; the
// operator console acts as dev-admin.
func DevSet() *Set {
	tenants := []string{"default", "release-demo"}
	return &Set{
		Source:            SourceBuiltin,
		OperatorAccountID: "dev-admin",
		LoadedAt:          time.Now().UTC(),
		Accounts: []*Account{
			NewAccount("dev-reader", []string{RoleReader}, []string{}, tenants, DevReaderToken),
			NewAccount("dev-writer", []string{RoleWriter}, []string{PermWorkflowAssign, PermWorkflowReview}, tenants, DevWriterToken),
			NewAccount("dev-admin", []string{RoleAdmin}, AllPermissions(), []string{"default", Wildcard}, DevAdminToken),
		},
	}
}

// usesDevToken names the first account that accepts a development token.
func (s *Set) usesDevToken() (string, bool) {
	for _, t := range []string{DevReaderToken, DevWriterToken, DevAdminToken} {
		if a := s.Lookup(t); a != nil {
			return a.AccountID, true
		}
	}
	return "", false
}

// resolveOperator picks the operator console account: override (the
// DECISION_GRAPH_OPERATOR_ACCOUNT_ID variable or the manifest's
// accounts.operator_account_id), else the document's
// operator_console_account_id, else the first admin account. The result
// must name a configured account.
func resolveOperator(override, fromDoc string, accounts []*Account) (string, error) {
	id := override
	if id == "" {
		id = fromDoc
	}
	if id == "" {
		for _, a := range accounts {
			if a.HasAnyRole(RoleAdmin) {
				id = a.AccountID
				break
			}
		}
	}
	if id == "" {
		return "", fmt.Errorf("no operator console account: set operator_console_account_id in the document, set DECISION_GRAPH_OPERATOR_ACCOUNT_ID, or add an account with role admin")
	}
	for _, a := range accounts {
		if a.AccountID == id {
			return id, nil
		}
	}
	return "", fmt.Errorf("operator console account %q is not one of the configured accounts; fix operator_console_account_id (or DECISION_GRAPH_OPERATOR_ACCOUNT_ID)", id)
}
