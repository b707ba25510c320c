package server

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/decisiongraph/dg/pkg/workflow"
)

//go:embed web
var webFS embed.FS

// ConsoleConfig turns on the operator console (/console).
type ConsoleConfig struct {
	// Store is the event log (required): its pool backs every read.
	Store *store.Store
	// Accounts authenticates sign-ins (required).
	Accounts *auth.Registry
	// Workflows is the workflow service (nil: one is built on Store with
	// the default configuration).
	Workflows *workflow.Service
	// Projections is the projection reader (nil: built on Store).
	Projections *projection.PG
	// SecretKeyBase signs session cookies and CSRF tokens (empty: a
	// random key per process, for dev).
	SecretKeyBase string
	// Env is dev or prod; the one-click operator sign-in exists only in
	// dev and only for requests from the loopback interface.
	Env string
	// Tenants are the manifest's tenants (the switcher offers those the
	// signed-in account may use).
	Tenants []string
	// BackupDir is where the Operations page reads backups ("" hides it).
	BackupDir string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// console serves the /console pages.
type console struct {
	s     *Server
	cfg   *ConsoleConfig
	keys  sessionKeys
	pages map[string]*template.Template
	data  *consoleData
}

// consoleNav is the page list of the navigation bar, in order.
var consoleNav = []struct{ Key, Title, Path string }{
	{"overview", "Overview", "/console"},
	{"traces", "Traces", "/console/traces"},
	{"workflows", "Workflows", "/console/workflows"},
	{"studio", "Studio", "/console/studio"},
	{"projections", "Projections", "/console/projections"},
	{"live", "Live events", "/console/live"},
	{"operations", "Operations", "/console/operations"},
	{"accounts", "Accounts", "/console/accounts"},
}

// registerConsole adds the console routes to s.
func registerConsole(s *Server, cfg *ConsoleConfig) *console {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &console{s: s, cfg: cfg, keys: deriveKeys(cfg.SecretKeyBase)}
	c.pages = mustParsePages()
	c.data = newConsoleData(cfg)
	rt := s.router
	rt.handle(http.MethodGet, "/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console", http.StatusSeeOther)
	})
	rt.handle(http.MethodGet, "/console/assets/{name}", c.serveAsset)
	rt.handle(http.MethodGet, "/console/signin", c.signInPage)
	rt.handle(http.MethodPost, "/console/signin", c.signIn)
	rt.handle(http.MethodPost, "/console/signin/dev", c.devSignIn)
	rt.handle(http.MethodPost, "/console/signout", c.post(c.signOut))
	rt.handle(http.MethodGet, "/console", c.page("overview", c.overviewPage))
	rt.handle(http.MethodGet, "/console/find", c.find)
	rt.handle(http.MethodGet, "/console/traces", c.page("traces", c.tracesPage))
	rt.handle(http.MethodGet, "/console/traces/{trace_id}", c.pageT("traces", "trace", c.tracePage))
	rt.handle(http.MethodGet, "/console/workflows", c.page("workflows", c.workflowsPage))
	rt.handle(http.MethodGet, "/console/workflows/{workflow_id}", c.pageT("workflows", "workflow", c.workflowPage))
	rt.handle(http.MethodPost, "/console/workflows/{workflow_id}/actions", c.post(c.workflowAction))
	rt.handle(http.MethodGet, "/console/studio", c.page("studio", c.studioPage))
	rt.handle(http.MethodPost, "/console/studio/reviews", c.post(c.startReview))
	rt.handle(http.MethodGet, "/console/projections", c.page("projections", c.projectionsPage))
	rt.handle(http.MethodPost, "/console/projections/replay", c.post(c.replay))
	rt.handle(http.MethodGet, "/console/live", c.page("live", c.livePage))
	rt.handle(http.MethodGet, "/console/live/stream", c.liveStream)
	rt.handle(http.MethodGet, "/console/operations", c.page("operations", c.operationsPage))
	rt.handle(http.MethodGet, "/console/accounts", c.page("accounts", c.accountsPage))
	return c
}

// viewer is the signed-in account of a console request and the tenant it
// is looking at.
type viewer struct {
	Account *auth.Account
	Session *session
	Tenant  string
	Tenants []string
	CSRF    string
}

// can reports whether the viewer holds a permission.
func (v *viewer) can(p string) bool { return v != nil && v.Account != nil && v.Account.Can(p) }

// caller is the viewer as the workflow service's actor.
func (v *viewer) caller() *workflow.Caller {
	return &workflow.Caller{AccountID: v.Account.AccountID, Permissions: v.Account.Permissions}
}

// tenantsFor lists the tenants an account may use: the manifest's tenants
// it is allowed in (all of them for "*"), plus any tenant named in its
// own list.
func (c *console) tenantsFor(acct *auth.Account) []string {
	var out []string
	for _, t := range c.cfg.Tenants {
		if acct.AllowsTenant(t) && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, t := range acct.TenantIDs {
		if t != auth.Wildcard && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// consoleRole: the console needs one of the API's roles (reader, writer
// or admin), as every API read does.
func consoleRole(acct *auth.Account) bool {
	return acct.HasAnyRole(auth.RoleReader, auth.RoleWriter, auth.RoleAdmin)
}

// devSignInAllowed: dev environment and a loopback client.
func (c *console) devSignInAllowed(r *http.Request) bool {
	if c.cfg.Env != "dev" || c.cfg.Accounts.Current().OperatorAccountID == "" {
		return false
	}
	host := r.RemoteAddr
	if i := strings.LastIndex(host, ":"); i >= 0 {
		host = host[:i]
	}
	host = strings.Trim(host, "[]")
	return host == "127.0.0.1" || host == "::1" || strings.HasPrefix(host, "127.")
}

// viewerOf resolves the request's session; nil when signed out.
func (c *console) viewerOf(r *http.Request) *viewer {
	sess := c.keys.readSession(r, c.cfg.Now())
	acct := accountFor(c.cfg.Accounts.Current(), sess, c.cfg.Env == "dev")
	if acct == nil || !consoleRole(acct) {
		return nil
	}
	v := &viewer{Account: acct, Session: sess, Tenants: c.tenantsFor(acct), CSRF: c.keys.csrfToken(sess.Nonce)}
	if lf := logFieldsFrom(r.Context()); lf != nil {
		lf.account = acct.AccountID
	}
	return v
}

// pageData is what every page template gets.
type pageData struct {
	Title     string
	Active    string
	Nav       any
	V         *viewer
	Env       string
	Flash     string
	FlashErr  string
	Path      string
	Refreshed string
	Body      any
}

// tenantURL adds the tenant parameter to a console path.
func tenantURL(path, tenant string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "tenant=" + url.QueryEscape(tenant)
}

// page wraps a GET page handler: sign-in, tenant selection, rendering
// with the template named like the nav entry.
func (c *console) page(active string, fn func(r *http.Request, v *viewer) (string, any, int)) http.HandlerFunc {
	return c.pageT(active, active, fn)
}

// pageT is page with its own template name.
func (c *console) pageT(active, tmpl string, fn func(r *http.Request, v *viewer) (string, any, int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := c.viewerOf(r)
		if v == nil {
			http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		t := strings.TrimSpace(r.URL.Query().Get("tenant"))
		switch {
		case t == "" && len(v.Tenants) > 0:
			t = c.data.defaultTenant(r.Context(), v.Tenants)
		case t != "" && !v.Account.AllowsTenant(t):
			c.render(w, r, http.StatusForbidden, "error", &pageData{Title: "Not allowed", Active: active, V: v,
				Body: "Your account " + v.Account.AccountID + " cannot use tenant " + t + "."})
			return
		}
		if t != "" && !slices.Contains(v.Tenants, t) {
			v.Tenants = append(v.Tenants, t)
		}
		v.Tenant = t
		defer func() {
			// A bug in a page must still leave a page: log it and render
			// the error page (the middleware's JSON 500 is for the API).
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				c.s.log.ErrorContext(r.Context(), "console page panicked", append(logAttrs(r), "page", tmpl, "panic", p)...)
				c.render(w, r, http.StatusInternalServerError, "error", &pageData{Title: "This page failed", Active: active, V: v,
					Body: "The page could not be built (request " + requestID(r.Context()) + "); the other pages still work. The server log has the details."})
			}
		}()
		title, body, status := fn(r, v)
		q := r.URL.Query()
		c.render(w, r, status, tmpl, &pageData{Title: title, Active: active, V: v, Body: body,
			Flash: q.Get("flash"), FlashErr: q.Get("error")})
	}
}

// post wraps a form handler: sign-in, CSRF, tenant check. The handler
// returns where to go next (see-other redirect).
func (c *console) post(fn func(w http.ResponseWriter, r *http.Request, v *viewer) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			c.plainError(w, http.StatusBadRequest, "the form could not be read")
			return
		}
		v := c.viewerOf(r)
		if v == nil {
			c.plainError(w, http.StatusUnauthorized, "sign in first: your session is missing or has expired")
			return
		}
		if !c.keys.checkCSRF(v.Session.Nonce, r.PostForm.Get(csrfField)) {
			c.plainError(w, http.StatusForbidden, "the form's CSRF token is missing or wrong; reload the page and try again")
			return
		}
		t := strings.TrimSpace(r.PostForm.Get("tenant"))
		if t != "" && !v.Account.AllowsTenant(t) {
			c.plainError(w, http.StatusForbidden, "your account cannot use tenant "+t)
			return
		}
		v.Tenant = t
		next := fn(w, r, v)
		if next != "" {
			http.Redirect(w, r, next, http.StatusSeeOther)
		}
	}
}

func (c *console) plainError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// render executes a page template into a buffer first, so a template
// failure becomes a clean 500 rather than half a page.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, d *pageData) {
	d.Nav = consoleNav
	d.Env = c.cfg.Env
	d.Path = r.URL.Path
	d.Refreshed = c.cfg.Now().UTC().Format(time.RFC3339)
	if d.Active == "" {
		d.Active = name
	}
	t := c.pages[name]
	if t == nil {
		t = c.pages["error"]
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		c.s.log.ErrorContext(r.Context(), "console page failed to render", append(logAttrs(r), "page", name, "err", err)...)
		c.plainError(w, http.StatusInternalServerError, "the page could not be rendered; see the server log (request "+requestID(r.Context())+")")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *console) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := pathParam(r, "name")
	b, err := fs.ReadFile(webFS, "web/static/"+name)
	if err != nil || strings.Contains(name, "/") {
		c.plainError(w, http.StatusNotFound, "no such asset")
		return
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".svg"):
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

// consoleFuncs are the template helpers.
var consoleFuncs = template.FuncMap{
	"turl": tenantURL,
	"short": func(s string, n int) string {
		if len(s) <= n {
			return s
		}
		return s[:n] + "…"
	},
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join":    strings.Join,
	"pathesc": url.PathEscape,
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"tone":   statusTone,
	"urlq":   url.QueryEscape,
	"minus":  func(a, b int64) int64 { return a - b },
	"pretty": prettyJSON,
	"formid": randomNonce,
	"icard":  newItemCard,
	"tcard":  func(r traceRow, tenant string) traceCard { return traceCard{Row: r, Tenant: tenant} },
}

// itemCard is a workflow item with its SLA state, for the item templates.
type itemCard struct {
	Item    *workflow.Item
	Tenant  string
	Overdue bool
	AtRisk  bool
}

func newItemCard(it *workflow.Item, tenant string, now time.Time) itemCard {
	ov := it.Overdue(now)
	risk := !ov && workflow.IsOpen(it.Status) && !it.SLADueAt.IsZero() && it.SLADueAt.Sub(now) <= 30*time.Minute
	return itemCard{Item: it, Tenant: tenant, Overdue: ov, AtRisk: risk}
}

type traceCard struct {
	Row    traceRow
	Tenant string
}

// statusTone maps a status word to a chip tone (good, warn, alert, neutral).
func statusTone(s string) string {
	switch strings.ToLower(s) {
	case "healthy", "ready", "complete", "completed", "approved", "aligned", "success", "passed", "delivered", "current":
		return "good"
	case "catching up", "stale", "running", "requested", "in_review", "changes_requested", "overridden", "queued",
		"newer than last replay", "at risk", "pending", "partial":
		return "warn"
	case "failing", "failure", "rejected", "escalated", "overdue", "failed", "cancelled", "unavailable", "needs review":
		return "alert"
	}
	return "neutral"
}

func mustParsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(consoleFuncs).ParseFS(webFS, "web/templates/layout.html", "web/templates/parts.html"))
	names, err := fs.Glob(webFS, "web/templates/page_*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		key := strings.TrimSuffix(strings.TrimPrefix(n, "web/templates/page_"), ".html")
		out[key] = template.Must(template.Must(base.Clone()).ParseFS(webFS, n))
	}
	return out
}

// section is one independently loaded part of a page: ready with data,
// empty, or unavailable with the reason. A failing section never breaks
// the page.
type section struct {
	Status string // ready, empty, unavailable
	Error  string
	Data   any
}

func (s section) Ready() bool       { return s.Status == "ready" }
func (s section) Empty() bool       { return s.Status == "empty" }
func (s section) Unavailable() bool { return s.Status == "unavailable" }

// load runs one section loader with its own deadline; empty reports
// whether the data counts as empty.
func load[T any](ctx context.Context, fn func(ctx context.Context) (T, error), empty func(T) bool) section {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := fn(ctx)
	if err != nil {
		return section{Status: "unavailable", Error: friendlyError(err)}
	}
	if empty != nil && empty(v) {
		return section{Status: "empty", Data: v}
	}
	return section{Status: "ready", Data: v}
}

// friendlyError is the first line of an error, without internal noise.
func friendlyError(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}
