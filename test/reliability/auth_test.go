package reliability_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/auth"
)

// tokenKind is one kind of caller of the auth matrix.
type tokenKind struct {
	name    string
	token   string // "" sends no Authorization
	valid   bool   // a live token of an account
	tenants []string
	roles   []string
	perms   []string
}

// apiRoute is one /api/v1 route with its family, permission and how to
// build a request for a trace id and a workflow id.
type apiRoute struct {
	method, pattern string
	family          string // reader, writer, admin
	perm            string // a permission the handler also needs ("" none)
	body            func(n int) []byte
}

var apiRoutes = []apiRoute{
	{"POST", "/api/v1/events", "writer", "", nil},
	{"GET", "/api/v1/traces/{trace}", "reader", "", nil},
	{"GET", "/api/v1/workflows", "reader", "", nil},
	{"GET", "/api/v1/workflows/{wf}", "reader", "", nil},
	{"POST", "/api/v1/workflows/{wf}/actions", "writer", "workflow_review", func(n int) []byte {
		return []byte(fmt.Sprintf(`{"action":"comment","note":"matrix %d"}`, n))
	}},
	{"GET", "/api/v1/workflow-studio/templates", "reader", "", nil},
	{"GET", "/api/v1/workflow-studio/traces/{trace}", "reader", "", nil},
	{"POST", "/api/v1/workflow-studio/traces/{trace}/reviews", "writer", "workflow_assign", func(n int) []byte {
		return []byte(`{"template_id":"precedent_gap_review","reason":"matrix"}`)
	}},
	{"GET", "/api/v1/admin/workflows/{wf}/export", "admin", "workflow_export", nil},
}

var familyRoles = map[string][]string{"reader": {"reader", "writer", "admin"}, "writer": {"writer", "admin"}, "admin": {"admin"}}

func oneByteOff(tok string, i int) string {
	b := []byte(tok)
	b[i] ^= 0x01
	return string(b)
}

// TestAuthMatrix runs every route x every account kind x tenant against
// the real binary with an accounts file, including rotated and revoked
// tokens (after a reload) and tokens one byte away from valid ones. No
// route may return another tenant's data: ids of the other tenant are 404,
// lists never mention them.
func TestAuthMatrix(t *testing.T) {
	track(t)
	dir := t.TempDir()
	dburl := pgtest.NewURL(t)
	port := freePort(t)
	accounts := filepath.Join(dir, "accounts.json")
	writeAccounts(t, accounts, 0, false, false)
	manifest := writeManifest(t, dir, nodeConfig{DatabaseURL: dburl, Port: port, AccountsFile: accounts, Tenants: []string{"default", "other"}})
	node := startDG(t, manifest, port)
	base := node.base

	// Data: one open review item per tenant.
	seed := func(tenant, token, trace string) string {
		for _, env := range exceptionTrace(trace) {
			r, err := do(context.Background(), "POST", base+"/api/v1/events", token, tenant, encode(t, env), nil)
			if err != nil || r.Status != 201 {
				t.Fatalf("seed %s: %v %d %s", env.EventID, err, r.Status, r.Body)
			}
		}
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			r, err := do(context.Background(), "GET", base+"/api/v1/workflows?trace_id="+trace, token, tenant, nil, nil)
			if err == nil && r.Status == 200 {
				if m := regexp.MustCompile(`"workflow_id":"([^"]+)"`).FindSubmatch(r.Body); m != nil {
					return string(m[1])
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("no review item for %s/%s", tenant, trace)
		return ""
	}
	ownTrace, otherTrace := "iso-default-trace", "iso-other-trace"
	ownWF := seed("default", tokAdmin, ownTrace)
	otherWF := seed("other", tokOtherAdmin, otherTrace)

	all := auth.AllPermissions()
	wf := []string{"workflow_review", "workflow_assign"}
	kinds := []tokenKind{
		{"no token", "", false, nil, nil, nil},
		{"reader", tokReader, true, []string{"default"}, []string{"reader"}, nil},
		{"writer", tokWriter, true, []string{"default"}, []string{"writer"}, wf},
		{"admin", tokAdmin, true, []string{"default"}, []string{"admin"}, all},
		{"other-tenant reader", tokOtherReader, true, []string{"other"}, []string{"reader"}, nil},
		{"other-tenant writer", tokOtherWriter, true, []string{"other"}, []string{"writer"}, wf},
		{"other-tenant admin", tokOtherAdmin, true, []string{"other"}, []string{"admin"}, all},
		{"account without roles", tokNoRole, true, []string{"default"}, nil, nil},
		{"rotated account, new token", tokRotatedNew, true, []string{"default"}, []string{"writer"}, wf},
		{"rotated account, old token (after rotation)", tokRotatedOld, false, nil, nil, nil},
		{"revoked account (after revocation)", tokRevoked, false, nil, nil, nil},
		{"dev token (accounts file in use)", auth.DevAdminToken, false, nil, nil, nil},
		{"admin token + 1 byte", tokAdmin + "x", false, nil, nil, nil},
		{"admin token - 1 byte", tokAdmin[:len(tokAdmin)-1], false, nil, nil, nil},
		{"admin token in upper case", strings.ToUpper(tokAdmin), false, nil, nil, nil},
		{"admin sha256 as token", auth.HashToken(tokAdmin).Hex(), false, nil, nil, nil},
	}
	for _, i := range []int{0, len(tokAdmin) / 2, len(tokAdmin) - 1} {
		kinds = append(kinds, tokenKind{fmt.Sprintf("admin token with byte %d flipped", i), oneByteOff(tokAdmin, i), false, nil, nil, nil})
		kinds = append(kinds, tokenKind{fmt.Sprintf("other admin token with byte %d flipped", i), oneByteOff(tokOtherAdmin, i), false, nil, nil, nil})
	}

	// Before the matrix: the old and the revoked tokens work, then the
	// file is rewritten (rotation drops the old token, revocation the
	// account) and dg reloads it on SIGHUP.
	for _, tok := range []string{tokRotatedOld, tokRevoked} {
		r, _ := do(context.Background(), "GET", base+"/api/v1/workflows", tok, "default", nil, nil)
		if r.Status != 200 {
			t.Fatalf("token before rotation/revocation: %d %s", r.Status, r.Body)
		}
	}
	writeAccounts(t, accounts, 0, true, true)
	_ = syscall.Kill(node.pid(), syscall.SIGHUP)
	reloaded := false
	for i := 0; i < 100 && !reloaded; i++ {
		r, _ := do(context.Background(), "GET", base+"/api/v1/workflows", tokRevoked, "default", nil, nil)
		reloaded = r.Status == 401
		time.Sleep(100 * time.Millisecond)
	}
	if !reloaded {
		t.Fatalf("revoked token still accepted 10s after the reload")
	}

	tenants := []string{"default", "other", "", "nonexistent"}
	var requests, denied401, denied403, leaks, wrong, passed int
	n := 0
	for round := 0; round < P.AuthRounds; round++ {
		for _, rt := range apiRoutes {
			for _, k := range kinds {
				for _, tenant := range tenants {
					// ids: the tenant's own and the other tenant's.
					targets := [][2]string{{ownTrace, ownWF}, {otherTrace, otherWF}}
					if tenant == "other" {
						targets = [][2]string{{otherTrace, otherWF}, {ownTrace, ownWF}}
					}
					for ti, target := range targets {
						if ti == 1 && !strings.Contains(rt.pattern, "{") {
							continue
						}
						n++
						path := strings.NewReplacer("{trace}", url.PathEscape(target[0]), "{wf}", url.PathEscape(target[1])).Replace(rt.pattern)
						var body []byte
						if rt.method == "POST" {
							if rt.body != nil {
								body = rt.body(n)
							} else {
								body = encode(t, traceEvents(fmt.Sprintf("matrix-%d", n))[0])
							}
						}
						hdr := map[string]string{"Idempotency-Key": fmt.Sprintf("matrix-%d", n)}
						r, err := do(context.Background(), rt.method, base+path, k.token, tenant, body, hdr)
						requests++
						if err != nil {
							t.Fatalf("%s %s as %s in %q: %v", rt.method, path, k.name, tenant, err)
						}
						want, why := expectAuth(rt, k, tenant)
						foreign := ti == 1
						switch {
						case r.Status >= 500:
							wrong++
							t.Errorf("%s %s as %s in %q: HTTP %d %s", rt.method, path, k.name, tenant, r.Status, r.Body)
						case want != 0 && r.Status != want:
							wrong++
							t.Errorf("%s %s as %s in %q: %d %s, want %d (%s)", rt.method, path, k.name, tenant, r.Status, r.Body, want, why)
						case want == 0 && (r.Status == 401 || (r.Status == 403 && (rt.perm == "" || has(k.perms, rt.perm)))):
							wrong++
							t.Errorf("%s %s as %s in %q: %d %s, want access", rt.method, path, k.name, tenant, r.Status, r.Body)
						case want == 0 && foreign && r.Status < 300:
							leaks++
							t.Errorf("LEAK: %s %s as %s in %q answered %d for the other tenant's id: %.300s", rt.method, path, k.name, tenant, r.Status, r.Body)
						}
						if r.Status == 401 {
							denied401++
						} else if r.Status == 403 {
							denied403++
						} else if r.Status < 300 {
							passed++
						}
						// No answer to a caller in one tenant names the other's ids.
						otherIDs := []string{otherTrace, otherWF}
						if tenant == "other" {
							otherIDs = []string{ownTrace, ownWF}
						}
						if !foreign && r.Status < 300 {
							for _, id := range otherIDs {
								if strings.Contains(string(r.Body), id) {
									leaks++
									t.Errorf("LEAK: %s %s as %s in %q mentions %s: %.300s", rt.method, path, k.name, tenant, id, r.Body)
								}
							}
						}
					}
				}
			}
		}
	}
	record("auth", "routes x account kinds x tenant headers (x own/foreign id)", fmt.Sprintf("%d x %d x %d, %d rounds", len(apiRoutes), len(kinds), len(tenants), P.AuthRounds))
	record("auth", "requests of the matrix", requests)
	record("auth", "401 / 403 / 2xx answers", fmt.Sprintf("%d / %d / %d", denied401, denied403, passed))
	record("auth", "wrong statuses", wrong)
	record("auth", "cross-tenant leaks (foreign id answered, or foreign id in a body)", leaks)
	record("auth", "rotated old token and revoked account after SIGHUP reload", "401 on every route")
}

func has(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// expectAuth returns the status the auth layer must answer with (0: the
// request passes authentication and authorization of its family).
func expectAuth(rt apiRoute, k tokenKind, tenant string) (int, string) {
	if strings.TrimSpace(tenant) == "" {
		return 400, "x-tenant-id missing"
	}
	if k.token == "" || !k.valid {
		return 401, "no or unknown token"
	}
	if !has(k.tenants, tenant) {
		return 403, "tenant not allowed"
	}
	ok := false
	for _, r := range familyRoles[rt.family] {
		ok = ok || has(k.roles, r)
	}
	if !ok {
		return 403, "role missing"
	}
	if rt.perm != "" && !has(k.perms, rt.perm) {
		return 403, "permission missing"
	}
	return 0, ""
}

// TestConsoleRefusesActionsWithoutSessionOrCSRF checks the console's
// state-changing routes: no session is 401, a session without or with a
// wrong CSRF token is 403, and nothing is recorded in either case; the
// sign-in itself needs its pre-session CSRF token. A session whose token
// is revoked stops working after the reload.
func TestConsoleRefusesActionsWithoutSessionOrCSRF(t *testing.T) {
	track(t)
	dir := t.TempDir()
	dburl := pgtest.NewURL(t)
	port := freePort(t)
	accounts := filepath.Join(dir, "accounts.json")
	writeAccounts(t, accounts, 0, false, false)
	manifest := writeManifest(t, dir, nodeConfig{DatabaseURL: dburl, Port: port, AccountsFile: accounts,
		Extra: "\n"})
	node := startDG(t, manifest, port)
	base := node.base
	pool := openPool(t, dburl)

	for _, env := range exceptionTrace("console-trace") {
		if r, err := do(context.Background(), "POST", base+"/api/v1/events", tokAdmin, "default", encode(t, env), nil); err != nil || r.Status != 201 {
			t.Fatalf("seed: %v %d %s", err, r.Status, r.Body)
		}
	}
	var wfID string
	for i := 0; i < 300 && wfID == ""; i++ {
		_ = pool.QueryRow(context.Background(), `SELECT workflow_id FROM dg_workflow_items WHERE tenant_id='default' AND trace_id='console-trace'`).Scan(&wfID)
		time.Sleep(200 * time.Millisecond)
	}
	if wfID == "" {
		t.Fatalf("no workflow item")
	}
	countActions := func() int {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM dg_workflow_actions WHERE tenant_id='default'`).Scan(&n); err != nil {
			t.Fatalf("count actions: %v", err)
		}
		return n
	}
	actions0 := countActions()

	newClient := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	post := func(c *http.Client, path string, form url.Values) (int, string) {
		resp, err := c.PostForm(base+path, form)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	csrfRe := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	get := func(c *http.Client, path string) (int, string) {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	signIn := func(c *http.Client, token string) string {
		_, page := get(c, "/console/signin")
		m := csrfRe.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no csrf token on the sign-in page")
		}
		st, body := post(c, "/console/signin", url.Values{"token": {token}, "csrf_token": {m[1]}})
		if st != http.StatusSeeOther {
			t.Fatalf("sign in: %d %.300s", st, body)
		}
		_, page = get(c, "/console/workflows/"+url.PathEscape(wfID))
		m = csrfRe.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no csrf token on the workflow page: %.500s", page)
		}
		return m[1]
	}
	action := url.Values{"action": {"comment"}, "note": {"console matrix"}, "tenant": {"default"}}
	stateChanging := []string{"/console/workflows/" + url.PathEscape(wfID) + "/actions", "/console/studio/reviews", "/console/projections/replay", "/console/signout"}
	var checks int
	// 1. No session.
	anon := newClient()
	for _, p := range stateChanging {
		st, body := post(anon, p, action)
		checks++
		if st != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %d %.200s, want 401", p, st, body)
		}
	}
	// 2. Sign-in without its CSRF token.
	st, _ := post(anon, "/console/signin", url.Values{"token": {tokAdmin}})
	checks++
	if st != http.StatusForbidden {
		t.Errorf("sign-in without CSRF: %d, want 403", st)
	}
	// 3. A session, but no or a wrong CSRF token.
	c := newClient()
	good := signIn(c, tokAdmin)
	for _, p := range stateChanging {
		for _, tok := range []string{"", good[:len(good)-1] + "A", "x", oneByteOff(good, 0)} {
			f := url.Values{}
			for k, v := range action {
				f[k] = v
			}
			if tok != "" {
				f.Set("csrf_token", tok)
			}
			if tok == good {
				continue
			}
			st, body := post(c, p, f)
			checks++
			if st != http.StatusForbidden {
				t.Errorf("POST %s with CSRF %q: %d %.200s, want 403", p, tok, st, body)
			}
		}
	}
	// 4. Another session's CSRF token does not work in this one.
	c2 := newClient()
	good2 := signIn(c2, tokWriter)
	f := url.Values{"action": {"comment"}, "note": {"x"}, "tenant": {"default"}, "csrf_token": {good2}}
	st, _ = post(c, stateChanging[0], f)
	checks++
	if st != http.StatusForbidden {
		t.Errorf("CSRF token of another session: %d, want 403", st)
	}
	if n := countActions(); n != actions0 {
		t.Fatalf("refused console requests recorded %d workflow actions", n-actions0)
	}
	// 5. The right token works (the check above is not vacuous).
	f = url.Values{"action": {"comment"}, "note": {"allowed"}, "tenant": {"default"}, "csrf_token": {good}}
	st, body := post(c, stateChanging[0], f)
	if st != http.StatusSeeOther {
		t.Fatalf("console action with session and CSRF: %d %.300s", st, body)
	}
	// 6. A session of a revoked token stops working after the reload.
	c3 := newClient()
	good3 := signIn(c3, tokRevoked)
	writeAccounts(t, accounts, 0, false, true)
	_ = syscall.Kill(node.pid(), syscall.SIGHUP)
	refused := false
	for i := 0; i < 100 && !refused; i++ {
		f := url.Values{"action": {"comment"}, "note": {"revoked"}, "tenant": {"default"}, "csrf_token": {good3}}
		st, _ := post(c3, stateChanging[0], f)
		refused = st == http.StatusUnauthorized
		time.Sleep(100 * time.Millisecond)
	}
	checks++
	if !refused {
		t.Errorf("a console session of a revoked token still acts 10s after the reload")
	}
	record("auth", "console state-changing requests refused (no session 401, missing/wrong/foreign CSRF 403, revoked session 401)", checks)
}

// TestTokenCompareIsConstantTime asserts the structure that makes token
// checks independent of the matching prefix: the presented token is
// hashed once (SHA-256, fixed length) and compared with every digest of
// every account through crypto/subtle, without an early exit. The timing
// itself is measured by BenchmarkTokenLookupByPrefix (a statistical check,
// never a timed assertion).
func TestTokenCompareIsConstantTime(t *testing.T) {
	track(t)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	funcs := map[string]*ast.FuncDecl{}
	for _, f := range []string{"set.go", "account.go"} {
		file, err := parser.ParseFile(fset, filepath.Join(root, "pkg/auth", f), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	lookup, matches := funcs["Lookup"], funcs["matches"]
	if lookup == nil || matches == nil {
		t.Fatalf("pkg/auth has no Set.Lookup or Account.matches")
	}
	calls := func(fd *ast.FuncDecl) map[string]int {
		out := map[string]int{}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if ce, ok := n.(*ast.CallExpr); ok {
				if se, ok := ce.Fun.(*ast.SelectorExpr); ok {
					if id, ok := se.X.(*ast.Ident); ok {
						out[id.Name+"."+se.Sel.Name]++
					} else {
						out["."+se.Sel.Name]++
					}
				} else if id, ok := ce.Fun.(*ast.Ident); ok {
					out[id.Name]++
				}
			}
			return true
		})
		return out
	}
	earlyExit := func(fd *ast.FuncDecl) bool {
		found := false
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if r, ok := n.(*ast.RangeStmt); ok {
				ast.Inspect(r.Body, func(m ast.Node) bool {
					switch m.(type) {
					case *ast.ReturnStmt:
						found = true
					case *ast.BranchStmt:
						if m.(*ast.BranchStmt).Tok == token.BREAK {
							found = true
						}
					}
					return true
				})
			}
			return true
		})
		return found
	}
	if c := calls(matches); c["subtle.ConstantTimeCompare"] == 0 {
		t.Errorf("Account.matches does not compare through subtle.ConstantTimeCompare: calls %v", c)
	}
	if c := calls(matches); c["bytes.Equal"]+c["bytes.Compare"] > 0 {
		t.Errorf("Account.matches uses a variable-time comparison: %v", c)
	}
	if c := calls(lookup); c["HashToken"] != 1 {
		t.Errorf("Set.Lookup must hash the presented token once (fixed-length digest): calls %v", c)
	}
	if earlyExit(lookup) || earlyExit(matches) {
		t.Errorf("Lookup or matches leaves its loop early on a match (timing depends on the position)")
	}
	// HashToken gives fixed-length digests whatever the input length.
	if len(auth.HashToken("a")) != 32 || len(auth.HashToken(strings.Repeat("a", 4096))) != 32 {
		t.Errorf("token digests are not fixed length")
	}
	// Behaviour: every one-byte variant of a valid token is refused.
	set := auth.DevSet()
	if set.Lookup(auth.DevAdminToken) == nil {
		t.Fatalf("dev admin token not found")
	}
	variants := 0
	for i := range auth.DevAdminToken {
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			b := []byte(auth.DevAdminToken)
			b[i] ^= bit
			variants++
			if set.Lookup(string(b)) != nil {
				t.Errorf("token with byte %d ^ %#x accepted", i, bit)
			}
		}
	}
	record("auth", "token comparison", "SHA-256 digest (32 bytes) once, then subtle.ConstantTimeCompare over every digest of every account, no early exit (AST check of pkg/auth)")
	record("auth", "one-byte variants of a valid token refused", variants)
}
