package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/ops"
)

func newAccountsCmds(a *app) []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "accounts",
		Short: "Create and maintain the service-accounts file (bearer tokens for the API)",
		Long: `accounts manages the JSON file dg up reads its service accounts from
(accounts.file in the manifest, or DECISION_GRAPH_SERVICE_ACCOUNTS_FILE).

Each account has roles (reader, writer, admin), permissions, tenant ids and
one or more tokens. Tokens are stored as plaintext ("tokens") or, with
--hashed, only as their SHA-256 ("token_sha256"), so the file holds no
usable secret. Every write is atomic and leaves the file at mode 0600; a
running dg up picks changes up within seconds (or at once on SIGHUP).

Rotation: dg accounts rotate adds a token and keeps the old ones; move the
clients over, then remove the old token with dg accounts revoke.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAccountsBootstrapCmd(a), newAccountsRotateCmd(a), newAccountsRevokeCmd(a), newAccountsListCmd(a))
	return []*cobra.Command{cmd}
}

// accountsError maps the accounts-file errors to exit codes: the caller's
// mistakes are 2, a held lock 4, the rest 3.
func accountsError(err error) error {
	switch {
	case errors.Is(err, ops.ErrAccountsLocked):
		return lockedError(err)
	case errors.Is(err, ops.ErrAccountsFileExists), errors.Is(err, ops.ErrAccountNotFound),
		errors.Is(err, ops.ErrTokenPrefix), errors.Is(err, ops.ErrAccountsInvalid):
		return usageError(err)
	}
	return err
}

// accountsConfigError makes a refused account configuration at start
// (prod without accounts, with dev tokens, with an open file...) a
// configuration error, exit 2.
func accountsConfigError(err error) error {
	if errors.Is(err, auth.ErrMisconfigured) {
		return usageError(err)
	}
	return err
}

// accountsFile is --file, else DECISION_GRAPH_SERVICE_ACCOUNTS_FILE, else
// the manifest's accounts.file.
func (a *app) accountsFile(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if v, ok := a.env(auth.EnvAccountsFile); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), nil
	}
	m, err := a.loadManifest()
	if err != nil {
		return "", err
	}
	if m.Accounts.File == "" {
		return "", usageError(errors.New("no accounts file: pass --file, set accounts.file in the manifest, or set " + auth.EnvAccountsFile))
	}
	return m.Accounts.File, nil
}

func newAccountsBootstrapCmd(a *app) *cobra.Command {
	var o ops.BootstrapOptions
	cmd := &cobra.Command{
		Use:   "bootstrap --file FILE",
		Short: "Write a new accounts file with reader, writer and admin accounts and print their tokens once",
		Long: `bootstrap writes FILE (mode 0600) with three accounts: reader-<prefix>,
writer-<prefix> (workflow_assign, workflow_review) and admin-<prefix> (every
permission, and the operator console account), each with one random token
(32 bytes, base64url). The tokens are printed once: store them now.

With --hashed the file keeps only each token's SHA-256, so the file alone
cannot be used to call the API.`,
		Example: `  dg accounts bootstrap --file /etc/dg/service-accounts.json --tenant default --hashed
  dg accounts bootstrap --file accounts.json --tenant acme --tenant beta -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Path == "" {
				return usageError(errors.New("--file FILE is required (the file to create)"))
			}
			res, err := ops.BootstrapAccounts(o)
			if err != nil {
				return accountsError(err)
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, res)
			}
			w := a.stdout
			stored := "plaintext tokens"
			if res.Hashed {
				stored = "token SHA-256 hashes only"
			}
			fmt.Fprintf(w, "wrote %s (mode 0600, %s); operator console account: %s\n\n", res.Path, stored, res.OperatorAccountID)
			fmt.Fprintln(w, "Tokens (shown once; store them in your secret manager now):")
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			for _, ia := range res.Accounts {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", ia.AccountID, strings.Join(ia.Roles, ","), ia.Token)
			}
			_ = tw.Flush()
			abs, err := filepath.Abs(res.Path)
			if err != nil {
				abs = res.Path
			}
			fmt.Fprintf(w, "\nPoint dg at the file (or set accounts.file in the manifest):\n  export %s=%s\n  export %s=%s\n",
				auth.EnvAccountsFile, abs, auth.EnvOperatorAccountID, res.OperatorAccountID)
			return nil
		},
	}
	f := cmd.Flags()
	// Not --output: -o/--output is every command's report format.
	f.StringVar(&o.Path, "file", "", "file to write (required)")
	f.StringArrayVar(&o.Tenants, "tenant", nil, "tenant the accounts may use (repeat for several; default: default)")
	f.StringVar(&o.Prefix, "account-prefix", "main", "account names are reader-<prefix>, writer-<prefix>, admin-<prefix>")
	f.BoolVar(&o.IncludeReleaseDemo, "include-release-demo", false, "also allow the release-demo tenant")
	f.BoolVar(&o.Hashed, "hashed", false, "store only the SHA-256 of each token (token_sha256)")
	f.BoolVar(&o.Force, "force", false, "replace an existing file (every old token stops working)")
	return cmd
}

func newAccountsRotateCmd(a *app) *cobra.Command {
	var file, account string
	var hashed bool
	cmd := &cobra.Command{
		Use:   "rotate --account ID",
		Short: "Add a new token to an account, keeping its old tokens valid",
		Long: `rotate adds a fresh token to the account and prints it once. The old
tokens stay valid until you revoke them, so clients can move over first.
The new token is stored hashed with --hashed, or when the account already
stores hashes only.`,
		Example: `  dg accounts rotate --account writer-main
  dg accounts revoke --account writer-main --token-prefix sha256:1a2b3c`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if account == "" {
				return usageError(errors.New("--account ID is required (dg accounts list shows the accounts)"))
			}
			path, err := a.accountsFile(file)
			if err != nil {
				return err
			}
			res, err := ops.RotateAccountToken(path, account, hashed)
			if err != nil {
				return accountsError(err)
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, res)
			}
			fmt.Fprintf(a.stdout, "added token %s to %s in %s (%d tokens now valid)\n", res.Fingerprint, res.AccountID, res.Path, res.TokenCount)
			fmt.Fprintf(a.stdout, "new token (shown once): %s\n", res.Token)
			fmt.Fprintln(a.stdout, "a running dg up picks it up within seconds (or send it SIGHUP); revoke the old token once clients use the new one")
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "accounts file (default: "+auth.EnvAccountsFile+", else the manifest's accounts.file)")
	cmd.Flags().StringVar(&account, "account", "", "account id (required)")
	cmd.Flags().BoolVar(&hashed, "hashed", false, "store only the SHA-256 of the new token")
	return cmd
}

func newAccountsRevokeCmd(a *app) *cobra.Command {
	var file, account, prefix string
	cmd := &cobra.Command{
		Use:   "revoke --account ID --token-prefix P",
		Short: "Remove one token of an account",
		Long: `revoke removes the one token of the account that P picks: the start (at
least 6 characters) of the token itself, or of its fingerprint as dg accounts
list shows it (sha256:...). It refuses a prefix that matches several tokens
or none, and refuses to remove an account's last token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if account == "" || prefix == "" {
				return usageError(errors.New("--account ID and --token-prefix P are required (dg accounts list shows fingerprints)"))
			}
			path, err := a.accountsFile(file)
			if err != nil {
				return err
			}
			res, err := ops.RevokeAccountToken(path, account, prefix)
			if err != nil {
				return accountsError(err)
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, res)
			}
			fmt.Fprintf(a.stdout, "revoked token %s of %s in %s (%d tokens left)\n", res.Fingerprint, res.AccountID, res.Path, res.TokenCount)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "accounts file (default: "+auth.EnvAccountsFile+", else the manifest's accounts.file)")
	cmd.Flags().StringVar(&account, "account", "", "account id (required)")
	cmd.Flags().StringVar(&prefix, "token-prefix", "", "start of the token or of its sha256 fingerprint (required)")
	return cmd
}

func newAccountsListCmd(a *app) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show the accounts, roles, tenants and token fingerprints (never tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := a.accountsFile(file)
			if err != nil {
				return err
			}
			rep, err := ops.ListAccounts(path)
			if err != nil {
				return accountsError(err)
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, rep)
			}
			fmt.Fprintf(a.stdout, "%s (mode %s), operator console account: %s\n", rep.Path, rep.Mode, rep.OperatorAccountID)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCOUNT\tROLES\tTENANTS\tPERMISSIONS\tTOKENS")
			for _, ac := range rep.Accounts {
				var toks []string
				for _, t := range ac.Tokens {
					toks = append(toks, t.Fingerprint+" ("+t.Stored+")")
				}
				perms := strings.Join(ac.Permissions, ",")
				if perms == "" {
					perms = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ac.AccountID, strings.Join(ac.Roles, ","), strings.Join(ac.TenantIDs, ","), perms, strings.Join(toks, " "))
			}
			_ = tw.Flush()
			for _, w := range rep.Warnings {
				fmt.Fprintf(a.stderr, "warning: %s\n", w)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "accounts file (default: "+auth.EnvAccountsFile+", else the manifest's accounts.file)")
	return cmd
}
