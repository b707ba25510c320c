package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Environment variables of the bootstrap precedence.
const (
	EnvAccountsJSON      = "DECISION_GRAPH_SERVICE_ACCOUNTS_JSON"
	EnvAccountsFile      = "DECISION_GRAPH_SERVICE_ACCOUNTS_FILE"
	EnvOperatorAccountID = "DECISION_GRAPH_OPERATOR_ACCOUNT_ID"
	EnvReleaseRoot       = "RELEASE_ROOT"
	EnvValidateBootstrap = "DECISION_GRAPH_VALIDATE_BOOTSTRAP"
	EnvReleaseName       = "RELEASE_NAME"
)

// Config says where accounts come from. The fields mirror the manifest
// (server.env, server.dev_tokens, accounts.file,
// accounts.operator_account_id); the environment is read through LookupEnv.
type Config struct {
	// Prod turns on the production rules: no development tokens, at least
	// one account, and an accounts file that only its owner can read.
	Prod bool
	// DevTokens enables the built-in development accounts when nothing else
	// is configured (only outside prod).
	DevTokens bool
	// File is the manifest's accounts.file.
	File string
	// OperatorAccountID is the manifest's accounts.operator_account_id.
	OperatorAccountID string
	// LookupEnv reads the environment (nil: os.LookupEnv).
	LookupEnv func(string) (string, bool)
	Logger    *slog.Logger
}

func (c *Config) env(name string) string {
	look := c.LookupEnv
	if look == nil {
		look = os.LookupEnv
	}
	v, _ := look(name)
	return strings.TrimSpace(v)
}

// ErrMisconfigured wraps every reason Load refuses to start.
var ErrMisconfigured = errors.New("service accounts are misconfigured")

// Registry holds the current Set and replaces it on reload. It is safe
// for concurrent use; Current is one atomic load.
type Registry struct {
	cfg Config
	log *slog.Logger
	cur atomic.Pointer[Set]

	mu         sync.Mutex // serialises reloads
	lastErr    string
	lastReload time.Time
	reloads    int
	// stat describes the accounts file as it was when last read,
	// successfully or not (nil: it could not be opened), so a watch
	// reloads it only once it changes again.
	stat os.FileInfo
	// readHook, when set (tests), runs after the file's bytes are read.
	readHook func()
}

// NewRegistry wraps a fixed Set (tests, embedding). Reload is a no-op.
func NewRegistry(s *Set) *Registry {
	r := &Registry{log: slog.New(slog.DiscardHandler)}
	r.cur.Store(s)
	return r
}

// Load builds the registry in the bootstrap precedence:
//
//  1. DECISION_GRAPH_SERVICE_ACCOUNTS_JSON (source env_json);
//  2. DECISION_GRAPH_SERVICE_ACCOUNTS_FILE, else the manifest's
//     accounts.file, else <RELEASE_ROOT>/config/service-accounts.json when
//     it exists (source file:<path>);
//  3. the built-in development accounts, when not prod and DevTokens
//     (source application_env);
//  4. nothing (source none): allowed outside prod, every API call is 401.
//
// In prod it refuses development tokens (the flag or an account accepting
// one), zero accounts, and a file readable by group or others. Every
// refusal wraps ErrMisconfigured and says how to fix it.
func Load(cfg Config) (*Registry, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{cfg: cfg, log: log}
	if cfg.Prod && cfg.DevTokens {
		return nil, fmt.Errorf("%w: server.dev_tokens is on in prod; the development tokens are public: set server.dev_tokens: false and give dg an accounts file (dg accounts bootstrap --file FILE)", ErrMisconfigured)
	}
	s, err := r.read()
	if err != nil {
		return nil, err
	}
	r.cur.Store(s)
	r.lastReload = s.LoadedAt
	return r, nil
}

// filePath is the accounts file of the precedence, or "".
func (r *Registry) filePath() string {
	if p := r.cfg.env(EnvAccountsFile); p != "" {
		return p
	}
	if r.cfg.File != "" {
		return r.cfg.File
	}
	if root := r.cfg.env(EnvReleaseRoot); root != "" {
		p := filepath.Join(root, "config", "service-accounts.json")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// requireAccounts reports whether the environment asks for the "accounts
// must exist" check outside prod (DECISION_GRAPH_VALIDATE_BOOTSTRAP=1/true,
// or RELEASE_NAME set, as in the reference).
func (r *Registry) requireAccounts() bool {
	switch r.cfg.env(EnvValidateBootstrap) {
	case "1", "true", "TRUE":
		return true
	}
	return r.cfg.env(EnvReleaseName) != ""
}

func (r *Registry) operatorOverride() string {
	if id := r.cfg.env(EnvOperatorAccountID); id != "" {
		return id
	}
	return r.cfg.OperatorAccountID
}

// read builds a Set from the configured source, applying every rule.
func (r *Registry) read() (*Set, error) {
	var s *Set
	if js := r.cfg.env(EnvAccountsJSON); js != "" {
		doc, err := ParseDocument([]byte(js))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrMisconfigured, EnvAccountsJSON, err)
		}
		s, err = r.fromDocument(SourceEnvJSON, doc)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrMisconfigured, EnvAccountsJSON, err)
		}
	} else if p := r.filePath(); p != "" {
		var err error
		if s, err = r.readFile(p); err != nil {
			return nil, err
		}
	} else if !r.cfg.Prod && r.cfg.DevTokens {
		s = DevSet()
		if id := r.operatorOverride(); id != "" {
			s.OperatorAccountID = id
		}
	} else {
		s = &Set{Source: SourceNone, LoadedAt: time.Now().UTC()}
	}
	if len(s.Accounts) == 0 && !r.cfg.Prod && r.requireAccounts() {
		return nil, fmt.Errorf("%w: %s or %s asks for service accounts and none are configured; create a file with `dg accounts bootstrap --file FILE` and set accounts.file (or %s), or pass the document in %s", ErrMisconfigured, EnvValidateBootstrap, EnvReleaseName, EnvAccountsFile, EnvAccountsJSON)
	}
	if r.cfg.Prod {
		if len(s.Accounts) == 0 {
			return nil, fmt.Errorf("%w: server.env is prod and no service accounts are configured; create a file with `dg accounts bootstrap --file FILE` and set accounts.file (or %s), or pass the document in %s", ErrMisconfigured, EnvAccountsFile, EnvAccountsJSON)
		}
		if id, bad := s.usesDevToken(); bad {
			return nil, fmt.Errorf("%w: account %q accepts a public development token in prod; replace its tokens (dg accounts rotate, then revoke)", ErrMisconfigured, id)
		}
	}
	return s, nil
}

func (r *Registry) fromDocument(source string, doc *Document) (*Set, error) {
	op, err := resolveOperator(r.operatorOverride(), doc.OperatorAccountID, doc.Accounts)
	if err != nil {
		return nil, err
	}
	return &Set{Source: source, OperatorAccountID: op, Accounts: doc.Accounts, LoadedAt: time.Now().UTC()}, nil
}

// readFile reads and checks the accounts file at path. Whatever the
// outcome it sets r.stat to the file as it was when opened, before its
// bytes were read: a write that lands during or after the read changes the
// size or mtime from that, so the watch reads the file again. (Taking the
// stat after a failed read instead could record a version newer than the
// one read, a half-written file's completed version, and never read it.)
func (r *Registry) readFile(path string) (*Set, error) {
	r.stat = nil
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: read accounts file: %v (create it with dg accounts bootstrap --file %s)", ErrMisconfigured, err, path)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: stat accounts file %s: %v", ErrMisconfigured, path, err)
	}
	r.stat = st
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		if r.cfg.Prod {
			return nil, fmt.Errorf("%w: accounts file %s has mode %04o: it is open to group or others and holds credentials; run chmod 600 %s", ErrMisconfigured, path, perm, path)
		}
		r.log.Warn("the accounts file is open to group or others; prod would refuse it", "file", path, "mode", fmt.Sprintf("%04o", perm), "fix", "chmod 600 "+path)
	}
	data, err := readAllLimited(f, 4<<20)
	if r.readHook != nil {
		r.readHook()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read accounts file %s: %v", ErrMisconfigured, path, err)
	}
	doc, err := ParseDocument(data)
	if err != nil {
		return nil, fmt.Errorf("%w: accounts file %s: %v", ErrMisconfigured, path, err)
	}
	s, err := r.fromDocument("file:"+path, doc)
	if err != nil {
		return nil, fmt.Errorf("%w: accounts file %s: %v", ErrMisconfigured, path, err)
	}
	s.path = path
	return s, nil
}

func readAllLimited(f *os.File, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("the file is over %d bytes, too large for an accounts file", limit)
	}
	return data, nil
}

// Current is the Set in force.
func (r *Registry) Current() *Set { return r.cur.Load() }

// Reload re-reads a file source. On any error (unreadable, invalid,
// insecure in prod) the accounts in force stay and the error is returned
// and logged; /api/healthz shows it as auth.last_reload_error. Sources
// other than a file do not change while dg runs, so Reload leaves them.
func (r *Registry) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.cur.Load()
	if old == nil || old.path == "" {
		return nil
	}
	s, err := r.read()
	if err == nil && s.Source != old.Source {
		err = fmt.Errorf("the account source changed from %s to %s; restart dg to switch sources", old.Source, s.Source)
	}
	if err != nil {
		r.lastErr = err.Error()
		r.log.Error("accounts reload failed; keeping the accounts in force", "source", old.Source, "accounts", len(old.Accounts), "err", err)
		return err
	}
	r.cur.Store(s)
	r.lastErr = ""
	r.lastReload = s.LoadedAt
	r.reloads++
	r.log.Info("accounts reloaded", "source", s.Source, "accounts", len(s.Accounts), "operator_console_account_id", s.OperatorAccountID)
	return nil
}

// changed reports whether the file differs (identity, size or mtime) from
// the one last loaded.
func (r *Registry) changed() bool {
	r.mu.Lock()
	prev := r.stat
	path := ""
	if s := r.cur.Load(); s != nil {
		path = s.path
	}
	r.mu.Unlock()
	if path == "" {
		return false
	}
	st, err := os.Stat(path)
	if err != nil {
		return prev != nil // vanished: Reload reports it once (and keeps the accounts)
	}
	return prev == nil || !os.SameFile(prev, st) || st.Size() != prev.Size() || !st.ModTime().Equal(prev.ModTime())
}

// Watch reloads a file source whenever signals delivers (SIGHUP in dg up)
// and when the file changes, checked every interval (0: 2s), until ctx
// ends. A failed reload is retried only after the next change or signal.
func (r *Registry) Watch(ctx context.Context, interval time.Duration, signals <-chan os.Signal) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-signals:
			r.log.Info("reloading accounts", "signal", fmt.Sprint(sig))
			_ = r.Reload()
		case <-t.C:
			// A broken (or missing) file is remembered by Reload's read
			// (r.stat), so it is not re-read, nor the failure logged
			// again, every tick.
			if r.changed() {
				_ = r.Reload()
			}
		}
	}
}

// Health is the auth section of /api/healthz: where the accounts came
// from, how many, the operator console account, and the reload state.
// Token values and counts per account are not included.
func (r *Registry) Health() map[string]any {
	s := r.Current()
	r.mu.Lock()
	defer r.mu.Unlock()
	h := map[string]any{
		"bootstrap_source":            s.Source,
		"configured_accounts":         len(s.Accounts),
		"operator_console_account_id": nilIfEmpty(s.OperatorAccountID),
		"loaded_at":                   s.LoadedAt.Format(time.RFC3339),
		"reloads":                     r.reloads,
	}
	if r.lastErr != "" {
		h["last_reload_error"] = r.lastErr
	}
	return h
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
