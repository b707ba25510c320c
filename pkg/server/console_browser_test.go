package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/decisiongraph/dg/pkg/seed"
)

// chromiumInstall is the command the browser tests need run when Debian's
// Chromium is missing (make deps runs scripts/ensure-deps.sh --browser).
const chromiumInstall = "sudo apt-get update && sudo apt-get install -y chromium"

// findChromium returns Chromium's path, installing it through
// scripts/ensure-deps.sh --browser when it is missing (as root or with
// password-less sudo). A missing browser fails the test; it never skips.
func findChromium(t *testing.T) string {
	t.Helper()
	look := func() string {
		for _, n := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		return ""
	}
	if p := look(); p != "" {
		return p
	}
	script, _ := filepath.Abs("../../scripts/ensure-deps.sh")
	out, err := exec.Command(script, "--browser").CombinedOutput()
	if p := look(); p != "" {
		return p
	}
	t.Fatalf("the console browser tests need Debian's Chromium, which is not installed and could not be installed (%v: %s).\nInstall it with:\n  %s", err, out, chromiumInstall)
	return ""
}

// artifacts is where screenshots go (test-artifacts/console at the
// repository root, ignored by git).
func artifacts(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../test-artifacts/console")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newChrome starts a headless Chromium with a fresh profile. As root the
// sandbox must be off; without the background-networking flags Chromium's
// own connections are refused here and slow every start.
func newChrome(t *testing.T) context.Context {
	t.Helper()
	path := findChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

// br drives one tab and fails the test on the first error.
type br struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
}

func (b *br) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *br) open(path, waitFor string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

func (b *br) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

func evalJS[T any](b *br, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

func (b *br) shot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *br) signIn(token string) {
	b.t.Helper()
	b.open("/console/signin", "#token")
	b.do(chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("nav.nav")))
}

func wfPath(wid string) string {
	return "/console/workflows/" + strings.ReplaceAll(wid, ":", "%3A") + "?tenant=release-demo"
}

func TestConsoleInBrowser(t *testing.T) {
	e := newConsoleEnv(t, consoleOpts{seeded: true})
	b := &br{t: t, ctx: newChrome(t), base: e.srv.URL, dir: artifacts(t)}
	tq := "?tenant=release-demo"
	b.do(chromedp.EmulateViewport(1280, 900))

	// Sign in with a token; the overview shows the overdue alert.
	b.open("/console/signin", "#token")
	b.shot("00-signin")
	b.signIn("dev-admin-token")
	b.open("/console"+tq, ".alerts")
	b.shot("01-overview")
	if text := b.text(".alerts"); !strings.Contains(text, "Workflow SLA risk detected") || !strings.Contains(text, "2 overdue review(s)") {
		t.Fatalf("overview alerts: %q", text)
	}

	// The live trace: timeline and context graph.
	b.open("/console/traces/"+seed.LiveTrace+tq, "#context-graph")
	nodes := evalJS[int](b, `document.querySelectorAll('#context-graph circle').length`)
	events := evalJS[int](b, `document.querySelectorAll('#timeline > li').length`)
	timeline := b.text("#timeline")
	b.shot("02-trace-live")
	if events != 6 || nodes < 3 || !strings.Contains(timeline, "PrecedentCited") {
		t.Fatalf("live trace: %d events, %d graph nodes, timeline %q", events, nodes, timeline)
	}

	// The other pages, for the screenshots (and that each renders).
	for _, p := range []struct{ name, path, sel string }{
		{"03-traces", "/console/traces" + tq, "table"},
		{"04-workflows", "/console/workflows" + tq, "#inbox"},
		{"05-studio", "/console/studio" + tq + "&trace_id=" + seed.IncidentTrace, "#template_id"},
		{"06-projections", "/console/projections" + tq, "#replay-form"},
		{"07-live", "/console/live" + tq, "#live-events"},
		{"08-operations", "/console/operations" + tq, "main h1"},
		{"09-accounts", "/console/accounts" + tq + "&preview=1", "#bootstrap-preview"},
		{"10-trace-incident", "/console/traces/" + seed.IncidentTrace + tq, "#timeline"},
	} {
		b.open(p.path, p.sel)
		b.shot(p.name)
	}

	// Open the escalated live workflow and approve it with a reason.
	b.open(wfPath(seed.LiveWorkflow), "#action-form")
	before := b.text("#wf-status")
	b.shot("11-workflow-escalated")
	b.do(chromedp.SetValue(chromedp.ID("action"), "approve"),
		chromedp.SendKeys(chromedp.ID("reason"), "Strategic renewal; margin stays above the floor."),
		chromedp.Click(chromedp.ID("apply-action")),
		chromedp.WaitVisible(chromedp.CSS(".banner.info")))
	flash, after := b.text(".banner.info"), b.text("#wf-status")
	b.shot("12-workflow-approved")
	if before != "escalated" || after != "approved" || !strings.Contains(flash, "approve recorded") {
		t.Fatalf("approve: before %q, after %q, flash %q", before, after, flash)
	}
	b.open("/console/traces/"+seed.LiveTrace+tq, "#timeline")
	approvals := evalJS[int](b, `[...document.querySelectorAll('#timeline > li strong')].filter(e => e.textContent === 'ApprovalRecorded').length`)
	b.shot("13-trace-live-approved")
	if approvals != 1 {
		t.Fatalf("ApprovalRecorded events in the live trace: %d", approvals)
	}

	// A forged form (no CSRF token) posted from the page is refused.
	b.open(wfPath(seed.IncidentWorkflow), "#action-form")
	evalJS[bool](b, fmt.Sprintf(`(() => { const f = document.createElement('form'); f.method = 'post';
		f.action = '/console/workflows/%s/actions';
		for (const [k, v] of [['tenant','release-demo'],['action','comment'],['note','forged']]) {
			const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
		document.body.appendChild(f); f.submit(); return true; })()`, strings.ReplaceAll(seed.IncidentWorkflow, ":", "%3A")))
	b.do(chromedp.Sleep(700*time.Millisecond), chromedp.WaitVisible(chromedp.CSS("body")))
	if forged := b.text("body"); !strings.Contains(forged, "CSRF token is missing or wrong") {
		t.Fatalf("forged form answer: %q", forged)
	}

	// Phone width.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	for _, p := range []struct{ name, path, sel string }{
		{"20-phone-overview", "/console" + tq, ".alerts"},
		{"21-phone-trace", "/console/traces/" + seed.LiveTrace + tq, "#timeline"},
		{"22-phone-workflow", wfPath(seed.IncidentWorkflow), "#action-form"},
	} {
		b.open(p.path, p.sel)
		b.shot(p.name)
		if evalJS[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
			t.Errorf("%s scrolls sideways at phone width", p.name)
		}
	}
}

func TestConsoleReaderInBrowser(t *testing.T) {
	e := newConsoleEnv(t, consoleOpts{seeded: true})
	b := &br{t: t, ctx: newChrome(t), base: e.srv.URL, dir: artifacts(t)}
	b.do(chromedp.EmulateViewport(1280, 900))
	b.signIn("dev-reader-token")
	b.open(wfPath(seed.LiveWorkflow), "#act-h")
	forms := evalJS[int](b, `document.querySelectorAll('#action-form').length`)
	text := b.text("main")
	b.shot("30-reader-workflow")
	if forms != 0 || !strings.Contains(text, "Workflow actions are not available to dev-reader") {
		t.Fatalf("reader sees %d action forms; page: %q", forms, text)
	}

	// Live events: an event appended while the page is open appears at the
	// top through the server-sent events stream.
	b.open("/console/live?tenant=release-demo", "#live-events")
	b.do(chromedp.WaitVisible(chromedp.CSS("#live-status")))
	for evalJS[string](b, `document.getElementById('live-status').textContent`) == "Connecting to the live stream…" {
		b.do(chromedp.Sleep(100 * time.Millisecond))
	}
	env := seed.Envelopes(time.Now())[0]
	env.TraceID, env.EventID, env.IdempotencyKey = "trace-browser-live", "browser-live-0", "browser-live-0"
	if _, err := e.store.Append(context.Background(), "release-demo", env); err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.WaitVisible(chromedp.CSS("#live-events li.new")))
	if top := b.text("#live-events li.new"); !strings.Contains(top, "trace-browser-live") || !strings.Contains(top, "TraceStarted") {
		t.Fatalf("live event: %q", top)
	}
	b.shot("31-live-new-event")
}
