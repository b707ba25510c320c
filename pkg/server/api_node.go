package server

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/decisiongraph/dg/pkg/audit"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/manifest"
)

// AccountsPollInterval is how often dg up checks the accounts file for
// changes (SIGHUP reloads at once).
const AccountsPollInterval = 2 * time.Second

// LoadAccounts builds the account registry of a node from the manifest
// and the environment in the bootstrap precedence (auth.Load). In prod it
// refuses development tokens, zero accounts and an accounts file open to
// group or others; the error wraps auth.ErrMisconfigured.
func LoadAccounts(m *manifest.Manifest, lookupEnv func(string) (string, bool), log *slog.Logger) (*auth.Registry, error) {
	reg, err := auth.Load(auth.Config{
		Prod:              m.IsProd(),
		DevTokens:         m.Server.DevTokens,
		File:              m.Accounts.File,
		OperatorAccountID: m.Accounts.OperatorAccountID,
		LookupEnv:         lookupEnv,
		Logger:            log,
	})
	if err != nil {
		return nil, err
	}
	s := reg.Current()
	switch s.Source {
	case auth.SourceNone:
		log.Warn("no service accounts are configured: every /api/v1 request will be refused with 401; run dg accounts bootstrap --file FILE and set accounts.file, or turn on server.dev_tokens in dev")
	case auth.SourceBuiltin:
		log.Warn("serving with the public development tokens (dev-reader-token, dev-writer-token, dev-admin-token); never expose this node to a network")
	}
	log.Info("service accounts loaded", "source", s.Source, "accounts", len(s.Accounts), "operator_console_account_id", s.OperatorAccountID)
	return reg, nil
}

// WatchAccounts reloads a file-sourced registry on SIGHUP and when the
// file changes (checked every interval) until ctx ends.
func WatchAccounts(ctx context.Context, reg *auth.Registry, interval time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		reg.Watch(ctx, interval, hup)
	}()
}

// apiConfig is the API of a running node: its event log, accounts, body
// limit and audit log. It starts the accounts watcher, which stops with ctx.
func (n *node) apiConfig(ctx context.Context, accounts *auth.Registry) *APIConfig {
	WatchAccounts(ctx, accounts, AccountsPollInterval)
	return &APIConfig{
		Log:       n.store,
		Accounts:  accounts,
		BodyLimit: n.m.Server.BodyLimit,
		Audit:     audit.New(n.pool, n.log),
	}
}

// withAuthHealth adds the auth section (bootstrap source, account count,
// operator console account) to the healthz details.
func withAuthHealth(details map[string]func(context.Context) (any, error), accounts *auth.Registry) map[string]func(context.Context) (any, error) {
	details["auth"] = func(context.Context) (any, error) { return accounts.Health(), nil }
	return details
}
