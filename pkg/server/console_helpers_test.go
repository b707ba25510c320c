package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/seed"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

// consoleEnv is a server with the console on a real database.
type consoleEnv struct {
	pool  *pgxpool.Pool
	store *store.Store
	srv   *httptest.Server
	seed  *seed.Report
}

type consoleOpts struct {
	seeded  bool
	failing bool // the database pool is closed: every section fails
	env     string
	backup  string
}

// consoleSet: the dev accounts plus an account limited to another tenant.
func consoleSet() *auth.Set {
	set := auth.DevSet()
	set.Accounts = append(set.Accounts, auth.NewAccount("other-admin", []string{auth.RoleAdmin}, auth.AllPermissions(), []string{"other"}, "other-admin-token"))
	set.Accounts = append(set.Accounts, auth.NewAccount("no-role", []string{}, []string{}, []string{"release-demo"}, "no-role-token"))
	return set
}

func newConsoleEnv(t testing.TB, o consoleOpts) *consoleEnv {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.New(t)
	st, err := store.New(ctx, pool, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &consoleEnv{pool: pool, store: st}
	if o.seeded {
		e.seed, err = seed.Run(ctx, st, seed.Options{})
		if err != nil {
			t.Fatal(err)
		}
	}
	if o.failing {
		st.Close()
		pool.Close()
	} else {
		t.Cleanup(st.Close)
	}
	if o.env == "" {
		o.env = "dev"
	}
	switch o.backup {
	case "":
		o.backup = backupDir(t, o)
	case "-":
		o.backup = ""
	}
	srv := server.New(server.Config{Console: &server.ConsoleConfig{
		Store: st, Accounts: auth.NewRegistry(consoleSet()), SecretKeyBase: strings.Repeat("s", 64),
		Env: o.env, Tenants: []string{"default", "release-demo"}, BackupDir: o.backup,
	}})
	e.srv = httptest.NewServer(srv.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// browser is a cookie-keeping HTTP client that does not follow redirects.
type browser struct {
	t   testing.TB
	c   *http.Client
	url string
}

func (e *consoleEnv) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, url: e.srv.URL, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.Get(b.url + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.url+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", page)
	}
	return m[1]
}

// signIn signs in with a token and returns the overview page's CSRF token.
func (b *browser) signIn(token string) string {
	b.t.Helper()
	_, page, _ := b.get("/console/signin")
	code, body, h := b.post("/console/signin", url.Values{"csrf_token": {csrfOf(b.t, page)}, "token": {token}, "next": {"/console"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/console" {
		b.t.Fatalf("sign in with %s: %d %s\n%s", token, code, h.Get("Location"), body)
	}
	_, page, _ = b.get("/console?tenant=release-demo")
	return csrfOf(b.t, page)
}

// backupDir is a backup directory for the Operations page: one backup
// with a passed drill (seeded), a damaged manifest (failing) or nothing.
func backupDir(t testing.TB, o consoleOpts) string {
	t.Helper()
	dir := t.TempDir()
	switch {
	case o.failing:
		if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"format":"dg-backup/1","id":""}`), 0o600); err != nil {
			t.Fatal(err)
		}
	case o.seeded:
		m := ops.BackupManifest{Format: ops.BackupFormat, ID: "20300101T000000Z-nightly", DumpFile: "20300101T000000Z-nightly.dump",
			StartedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
		b, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(dir, m.ID+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, m.DumpFile), []byte("dump"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := ops.RecordDrill(dir, m.ID, ops.DrillRecord{At: m.StartedAt.Add(time.Hour), Passed: true, RTOMS: 4200}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
