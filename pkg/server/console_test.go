package server_test

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/seed"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// consolePages are every GET page, with what each must show when the
// tenant is seeded, empty, or when its data cannot be read.
var consolePages = []struct {
	name, path             string
	seeded, empty, failing []string
}{
	{"overview", "/console?tenant=release-demo",
		[]string{"Workflow SLA risk detected", "2 overdue review(s)", "Last event recorded", "Review deadline approaching", "Live renewal exception review for Acme Platform", "Projection health"},
		[]string{"No open reviews in this tenant.", "No traces yet."},
		[]string{"Unavailable."}},
	{"traces", "/console/traces?tenant=release-demo",
		[]string{seed.LiveTrace, seed.IncidentTrace, seed.PrecedentTrace, "running", "failure", "success"},
		[]string{"No traces in this tenant."}, []string{"Unavailable."}},
	{"trace", "/console/traces/" + seed.LiveTrace + "?tenant=release-demo",
		[]string{"Timeline", "PrecedentCited", "ExceptionRequested", `id="context-graph"`, "Investigator handoff", "exception_id=ex-live-renewal-002",
			"Approved renewal precedent for Acme Platform", "success vs pending", seed.LiveWorkflow},
		[]string{"This tenant has no trace with that id."}, []string{"Unavailable."}},
	{"incident trace", "/console/traces/" + seed.IncidentTrace + "?tenant=release-demo",
		[]string{"No matching precedents.", "outcome=failure", seed.IncidentWorkflow},
		[]string{"This tenant has no trace with that id."}, []string{"Unavailable."}},
	{"workflows", "/console/workflows?tenant=release-demo",
		[]string{seed.IncidentWorkflow, seed.LiveWorkflow, seed.AtRiskWorkflow, `class="overdue"`, "overdue since", "at risk"},
		[]string{"No review items match."}, []string{"Unavailable."}},
	{"workflow", "/console/workflows/" + url.PathEscape(seed.LiveWorkflow) + "?tenant=release-demo",
		[]string{`id="action-form"`, "OVERRIDE TRACE-LIVE-RENEWAL-002:EXCEPTION:EX-LIVE-RENEWAL-002", `<p class="mono small">` + seed.LiveWorkflow + `</p>`,
			`href="/console/traces/` + seed.LiveTrace + `?tenant=release-demo"`, "exception:ex-live-renewal-002", "requested", "escalate", "workflow-sla", `value="approve"`, `value="override"`, "escalation", "assignment", "SLA deadline passed"},
		[]string{"Unavailable.", "not_found"}, []string{"Unavailable."}},
	{"studio", "/console/studio?tenant=release-demo&trace_id=" + seed.IncidentTrace,
		[]string{"incident_triage", "Start trace review", "Studio view of", `id="studio-view"`, "exception requested", "catch_up of", seed.IncidentWorkflow},
		[]string{"Unavailable."}, []string{"Unavailable."}},
	{"projections", "/console/projections?tenant=release-demo",
		[]string{"context_graph", "trace_summary", "precedent_index", `id="full-digest">sha256:`, "Run replay", "No open projection failures.", "trace_summary: no completed replay"},
		[]string{"No projection state for this tenant yet.", "No replay runs recorded."}, []string{"Unavailable."}},
	{"live", "/console/live?tenant=release-demo",
		[]string{"seq 25", "ExceptionRequested", `data-stream="/console/live/stream?tenant=release-demo`},
		[]string{"No events in this tenant yet"}, []string{"Unavailable."}},
	{"operations", "/console/operations?tenant=release-demo",
		[]string{"20300101T000000Z-nightly", "passed", "RTO 4200 ms"}, []string{"No backups in"}, []string{"Unavailable.", "broken.json"}},
	{"accounts", "/console/accounts?tenant=release-demo&preview=1&prefix=ops",
		[]string{"dev-admin", "dev-reader", "application_env", "admin-ops", "reader-ops"},
		[]string{"dev-admin", "admin-ops"}, []string{"dev-admin", "admin-ops"}},
}

// consoleTokens are every token consoleSet accepts.
var consoleTokens = []string{auth.DevReaderToken, auth.DevWriterToken, auth.DevAdminToken, "other-admin-token", "no-role-token"}

func checkPages(t *testing.T, e *consoleEnv, pick func(int) []string, wantStatus func(name string) int) {
	b := e.browser(t)
	b.signIn("dev-admin-token")
	for k, p := range consolePages {
		code, body, h := b.get(p.path)
		if want := wantStatus(p.name); code != want {
			t.Errorf("%s: status %d, want %d\n%s", p.name, code, want, body)
			continue
		}
		if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "</html>") {
			t.Errorf("%s: not a whole HTML page", p.name)
		}
		for _, s := range pick(k) {
			if !strings.Contains(body, s) {
				t.Errorf("%s: missing %q", p.name, s)
			}
		}
		// The pages carry random base64url strings (CSRF tokens, the
		// accounts preview's fresh tokens), so a generic pattern such as
		// "sk-" matches by chance about once in a hundred runs. What must
		// never appear is a token the server accepts.
		for _, tok := range consoleTokens {
			if strings.Contains(body, tok) {
				t.Errorf("%s: the token %q leaked into the page", p.name, tok)
			}
		}
	}
}

func TestConsolePagesSeeded(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{seeded: true})
	checkPages(t, e, func(k int) []string { return consolePages[k].seeded }, func(string) int { return http.StatusOK })
}

func TestConsolePagesEmpty(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{})
	checkPages(t, e, func(k int) []string { return consolePages[k].empty }, func(name string) int {
		switch name {
		case "trace", "incident trace", "workflow":
			return http.StatusNotFound
		}
		return http.StatusOK
	})
}

func TestConsolePagesFailing(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{failing: true})
	checkPages(t, e, func(k int) []string { return consolePages[k].failing }, func(string) int { return http.StatusOK })
}

func TestOperationsWithoutBackupDir(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{backup: "-"})
	b := e.browser(t)
	b.signIn("dev-admin-token")
	if _, body, _ := b.get("/console/operations"); !strings.Contains(body, "No backup directory is configured") {
		t.Fatal("no unconfigured state")
	}
}

func TestConsoleLiveStream(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{seeded: true})
	b := e.browser(t)
	b.signIn("dev-reader-token")
	if code, _, _ := b.get("/console/live/stream?tenant=other"); code != http.StatusForbidden {
		t.Fatalf("foreign tenant stream: %d", code)
	}
	resp, err := b.c.Get(e.srv.URL + "/console/live/stream?tenant=release-demo&after=25")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	env := seed.Envelopes(time.Now())[0]
	env.TraceID, env.EventID, env.IdempotencyKey = "trace-stream-test", "stream-test-0", "stream-test-0"
	if _, err := e.store.Append(context.Background(), "release-demo", env); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
		if strings.HasPrefix(sc.Text(), "data: ") {
			break
		}
	}
	all := strings.Join(got, "\n")
	if !strings.Contains(all, "id: 26") || !strings.Contains(all, "event: dg-event") || !strings.Contains(all, `"trace_id":"trace-stream-test"`) {
		t.Fatalf("stream: %s", all)
	}
}

func TestFinishedTraceOffersNoDecisions(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{seeded: true})
	b := e.browser(t)
	b.signIn("dev-admin-token")
	_, body, _ := b.get("/console/workflows/" + url.PathEscape(seed.IncidentWorkflow) + "?tenant=release-demo")
	if !strings.Contains(body, `id="finished-note"`) || strings.Contains(body, `value="approve"`) || !strings.Contains(body, `value="comment"`) {
		t.Fatalf("incident review of a finished trace:\n%s", body)
	}
}

func TestConsoleFind(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{})
	b := e.browser(t)
	for q, want := range map[string]string{
		seed.LiveTrace:    "/console/traces/" + seed.LiveTrace + "?tenant=release-demo",
		seed.LiveWorkflow: "/console/workflows/" + url.PathEscape(seed.LiveWorkflow) + "?tenant=release-demo",
		"":                "/console/traces?tenant=release-demo",
	} {
		code, _, h := b.get("/console/find?tenant=release-demo&q=" + url.QueryEscape(q))
		if code != http.StatusSeeOther || h.Get("Location") != want {
			t.Errorf("find %q: %d %s, want %s", q, code, h.Get("Location"), want)
		}
	}
}

func TestConsoleRequiresSignIn(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{})
	b := e.browser(t)
	code, _, h := b.get("/console/workflows?tenant=release-demo")
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/signin?next=") {
		t.Fatalf("signed out: %d %s", code, h.Get("Location"))
	}
	_, page, _ := b.get("/console/signin")
	csrf := csrfOf(t, page)
	code, body, _ := b.post("/console/signin", url.Values{"csrf_token": {csrf}, "token": {"not-a-token"}})
	if code != http.StatusUnauthorized || !strings.Contains(body, "belongs to no service account") {
		t.Fatalf("bad token: %d", code)
	}
	code, body, _ = b.post("/console/signin", url.Values{"csrf_token": {csrf}, "token": {"no-role-token"}})
	if code != http.StatusForbidden || !strings.Contains(body, "has no reader, writer or admin role") {
		t.Fatalf("account without a role: %d", code)
	}
	// Sign-in itself needs the pre-session CSRF token.
	code, _, _ = b.post("/console/signin", url.Values{"token": {"dev-admin-token"}})
	if code != http.StatusForbidden {
		t.Fatalf("sign-in without CSRF: %d", code)
	}
	// An open redirect is not possible through next.
	code, _, h = b.post("/console/signin", url.Values{"csrf_token": {csrf}, "token": {"dev-reader-token"}, "next": {"https://evil.example/"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/console" {
		t.Fatalf("next: %d %s", code, h.Get("Location"))
	}
	var sess *http.Cookie
	u, _ := url.Parse(e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "dg_session" {
			sess = c
		}
	}
	if sess == nil {
		t.Fatal("no session cookie")
	}
	// A tampered cookie is no session.
	other := e.browser(t)
	other.c.Jar.SetCookies(u, []*http.Cookie{{Name: "dg_session", Value: strings.Replace(sess.Value, "A", "B", 1) + "x"}})
	if code, _, _ := other.get("/console"); code != http.StatusSeeOther {
		t.Fatalf("tampered cookie accepted: %d", code)
	}
}

func TestSessionCookieFlags(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{})
	b := e.browser(t)
	_, page, _ := b.get("/console/signin")
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/console/signin", strings.NewReader(url.Values{"csrf_token": {csrfOf(t, page)}, "token": {"dev-admin-token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var found bool
	for _, c := range resp.Cookies() {
		if c.Name != "dg_session" {
			continue
		}
		found = true
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || !c.Secure || c.MaxAge <= 0 || c.MaxAge > 8*3600 {
			t.Fatalf("cookie flags: %+v", c)
		}
		if strings.Contains(c.Value, "dev-admin-token") {
			t.Fatal("the token is in the cookie")
		}
	}
	if !found {
		t.Fatal("no session cookie set")
	}
}

func TestConsoleTenantSwitcherAndForeignTenant(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{seeded: true})
	b := e.browser(t)
	b.signIn("dev-reader-token")
	_, body, _ := b.get("/console?tenant=release-demo")
	if !strings.Contains(body, `<option value="release-demo" selected>`) || !strings.Contains(body, `<option value="default"`) || strings.Contains(body, `value="other"`) {
		t.Fatalf("switcher of dev-reader:\n%s", body)
	}
	if code, _, _ := b.get("/console?tenant=other"); code != http.StatusForbidden {
		t.Fatalf("foreign tenant: %d", code)
	}
	o := e.browser(t)
	o.signIn("other-admin-token")
	_, body, _ = o.get("/console")
	if !strings.Contains(body, `<option value="other" selected>`) || strings.Contains(body, `value="release-demo"`) {
		t.Fatalf("switcher of other-admin:\n%s", body)
	}
}

func TestConsoleReaderSeesNoActionForm(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{seeded: true})
	b := e.browser(t)
	csrf := b.signIn("dev-reader-token")
	_, body, _ := b.get("/console/workflows/" + url.PathEscape(seed.LiveWorkflow) + "?tenant=release-demo")
	if strings.Contains(body, `id="action-form"`) || !strings.Contains(body, "Workflow actions are not available to dev-reader") {
		t.Fatalf("reader page:\n%s", body)
	}
	_, body, _ = b.get("/console?tenant=release-demo")
	if !strings.Contains(body, "Actions disabled") {
		t.Fatal("no read-only banner for the reader")
	}
	// Posting anyway is refused by role.
	code, _, _ := b.post("/console/workflows/"+url.PathEscape(seed.LiveWorkflow)+"/actions",
		url.Values{"csrf_token": {csrf}, "tenant": {"release-demo"}, "action": {"approve"}, "reason": {"sneaky"}})
	if code != http.StatusForbidden {
		t.Fatalf("reader action: %d", code)
	}
}

func TestConsoleCSRF(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{seeded: true})
	b := e.browser(t)
	csrf := b.signIn("dev-admin-token")
	path := "/console/workflows/" + url.PathEscape(seed.LiveWorkflow) + "/actions"
	form := url.Values{"tenant": {"release-demo"}, "action": {"approve"}, "reason": {"forged"}}
	if code, _, _ := b.post(path, form); code != http.StatusForbidden {
		t.Fatalf("no token: %d", code)
	}
	// One character changed (never to itself: a token may start with "x").
	forged := "x" + csrf[1:]
	if csrf[0] == 'x' {
		forged = "y" + csrf[1:]
	}
	form.Set("csrf_token", forged)
	if code, _, _ := b.post(path, form); code != http.StatusForbidden {
		t.Fatalf("wrong token: %d", code)
	}
	// Another session's token does not work either.
	o := e.browser(t)
	otherCSRF := o.signIn("dev-writer-token")
	form.Set("csrf_token", otherCSRF)
	if code, _, _ := b.post(path, form); code != http.StatusForbidden {
		t.Fatalf("other session's token: %d", code)
	}
	var status string
	if err := e.pool.QueryRow(context.Background(), `SELECT status FROM dg_workflow_items WHERE workflow_id = $1`, seed.LiveWorkflow).Scan(&status); err != nil || status != "escalated" {
		t.Fatalf("forged forms changed the item: %s %v", status, err)
	}
}

func TestConsoleWorkflowActions(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{seeded: true})
	b := e.browser(t)
	csrf := b.signIn("dev-admin-token")
	path := "/console/workflows/" + url.PathEscape(seed.LiveWorkflow)
	// A validation failure comes back as an error banner.
	code, _, h := b.post(path+"/actions", url.Values{"csrf_token": {csrf}, "tenant": {"release-demo"}, "action": {"override"}, "reason": {"x"}, "confirm_text": {"OVERRIDE"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "error=") {
		t.Fatalf("bad override: %d %s", code, h.Get("Location"))
	}
	_, body, _ := b.get(h.Get("Location"))
	if !strings.Contains(body, "Action failed.") || !strings.Contains(body, "confirm_text") {
		t.Fatalf("no error banner:\n%s", body)
	}
	code, _, h = b.post(path+"/actions", url.Values{"csrf_token": {csrf}, "tenant": {"release-demo"}, "action": {"approve"},
		"reason": {"Margin is fine for a strategic renewal"}, "form_id": {"f1"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "flash=") {
		t.Fatalf("approve: %d %s", code, h.Get("Location"))
	}
	_, body, _ = b.get(h.Get("Location"))
	if !strings.Contains(body, `id="wf-status">approved`) || !strings.Contains(body, "recorded for "+seed.LiveWorkflow) {
		t.Fatalf("approved page:\n%s", body)
	}
	_, body, _ = b.get("/console/traces/" + seed.LiveTrace + "?tenant=release-demo")
	if !strings.Contains(body, "ApprovalRecorded") || !strings.Contains(body, "dev-admin") {
		t.Fatal("the approval event is not in the trace")
	}
	// Studio: start a review on the live trace.
	code, _, h = b.post("/console/studio/reviews", url.Values{"csrf_token": {csrf}, "tenant": {"release-demo"}, "trace_id": {seed.LiveTrace},
		"template_id": {"exception_follow_up"}, "reason": {"Follow the approval through"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "/console/workflows/") {
		t.Fatalf("start review: %d %s", code, h.Get("Location"))
	}
	// Replay with the typed confirmation.
	code, _, h = b.post("/console/projections/replay", url.Values{"csrf_token": {csrf}, "tenant": {"release-demo"}, "projection": {"trace_summary"},
		"mode": {"catch_up"}, "reason": {"check"}, "confirm_text": {"CATCH_UP TRACE_SUMMARY"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "flash=") {
		t.Fatalf("replay: %d %s", code, h.Get("Location"))
	}
	code, _, h = b.post("/console/projections/replay", url.Values{"csrf_token": {csrf}, "tenant": {"release-demo"}, "projection": {"all"},
		"mode": {"rebuild"}, "reason": {"check"}, "confirm_text": {"REBUILD TRACE_SUMMARY"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "error=") {
		t.Fatalf("replay with the wrong phrase: %d %s", code, h.Get("Location"))
	}
	// dev-writer may not replay at all.
	w := e.browser(t)
	wcsrf := w.signIn("dev-writer-token")
	if code, _, _ := w.post("/console/projections/replay", url.Values{"csrf_token": {wcsrf}, "tenant": {"release-demo"}, "projection": {"all"},
		"mode": {"catch_up"}, "reason": {"r"}, "confirm_text": {"CATCH_UP ALL"}}); code != http.StatusForbidden {
		t.Fatalf("writer replay: %d", code)
	}
	_ = workflow.StatusApproved
}

func TestDevSignIn(t *testing.T) {
	t.Parallel()
	e := newConsoleEnv(t, consoleOpts{})
	b := e.browser(t)
	_, page, _ := b.get("/console/signin")
	if !strings.Contains(page, "Sign in as dev-admin (dev)") {
		t.Fatal("no dev sign-in button in dev on localhost")
	}
	code, _, h := b.post("/console/signin/dev", url.Values{"csrf_token": {csrfOf(t, page)}})
	if code != http.StatusSeeOther || h.Get("Location") != "/console" {
		t.Fatalf("dev sign-in: %d", code)
	}
	if _, body, _ := b.get("/console"); !strings.Contains(body, "dev-admin") {
		t.Fatal("not signed in as dev-admin")
	}
	p := newConsoleEnv(t, consoleOpts{env: "prod"})
	pb := p.browser(t)
	_, page, _ = pb.get("/console/signin")
	if strings.Contains(page, "(dev)") {
		t.Fatal("dev sign-in offered in prod")
	}
	if code, _, _ := pb.post("/console/signin/dev", url.Values{"csrf_token": {csrfOf(t, page)}}); code != http.StatusForbidden {
		t.Fatalf("dev sign-in in prod: %d", code)
	}
}
