package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/workflow"
)

func prettyJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

type signInBody struct {
	Next      string
	Error     string
	DevSignIn bool
	Operator  string
	CSRF      string
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/console") && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return "/console"
}

func (c *console) signInPage(w http.ResponseWriter, r *http.Request) {
	if c.viewerOf(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.renderSignIn(w, r, http.StatusOK, "")
}

func (c *console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, msg string) {
	nonce := c.keys.preSession(w, r)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostForm.Get("next")
	}
	b := &signInBody{Next: safeNext(next), Error: msg, DevSignIn: c.devSignInAllowed(r),
		Operator: c.cfg.Accounts.Current().OperatorAccountID, CSRF: c.keys.csrfToken(nonce)}
	c.render(w, r, status, "signin", &pageData{Title: "Sign in", Active: "signin", Body: b})
}

// signIn checks the pre-session CSRF token and the service-account token,
// then starts a session bound to that token's fingerprint.
func (c *console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.plainError(w, http.StatusBadRequest, "the form could not be read")
		return
	}
	if !c.keys.checkCSRF(c.keys.preSessionNonce(r), r.PostForm.Get(csrfField)) {
		c.plainError(w, http.StatusForbidden, "the form's CSRF token is missing or wrong; reload the sign-in page and try again")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	acct := c.cfg.Accounts.Current().Lookup(token)
	if acct == nil {
		c.s.log.WarnContext(r.Context(), "console sign-in refused", logAttrs(r)...)
		c.renderSignIn(w, r, http.StatusUnauthorized, "That token belongs to no service account.")
		return
	}
	if !consoleRole(acct) {
		c.renderSignIn(w, r, http.StatusForbidden, "Service account "+acct.AccountID+" has no reader, writer or admin role.")
		return
	}
	c.keys.startSession(w, r, acct, auth.HashToken(token).Fingerprint(), c.cfg.Now())
	c.s.log.InfoContext(r.Context(), "console sign-in", append(logAttrs(r), "account_id", acct.AccountID)...)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// devSignIn signs in as the operator account without a token: dev
// environment and loopback clients only.
func (c *console) devSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.plainError(w, http.StatusBadRequest, "the form could not be read")
		return
	}
	if !c.keys.checkCSRF(c.keys.preSessionNonce(r), r.PostForm.Get(csrfField)) {
		c.plainError(w, http.StatusForbidden, "the form's CSRF token is missing or wrong; reload the sign-in page and try again")
		return
	}
	if !c.devSignInAllowed(r) {
		c.plainError(w, http.StatusForbidden, "the one-click sign-in exists only in dev, from this machine, with an operator account configured")
		return
	}
	set := c.cfg.Accounts.Current()
	acct := set.Account(set.OperatorAccountID)
	if acct == nil {
		c.plainError(w, http.StatusForbidden, "the operator account "+set.OperatorAccountID+" is not configured")
		return
	}
	c.keys.startSession(w, r, acct, "dev", c.cfg.Now())
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (c *console) signOut(w http.ResponseWriter, r *http.Request, v *viewer) string {
	clearCookie(w, r, sessionCookie)
	return "/console/signin"
}

// find opens a trace or a workflow item by id (workflow ids are
// "<trace>:<subject type>:<subject>", trace ids have no such suffix).
func (c *console) find(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	t := r.URL.Query().Get("tenant")
	switch {
	case q == "":
		http.Redirect(w, r, tenantURL("/console/traces", t), http.StatusSeeOther)
	case strings.Contains(q, ":exception:") || strings.Contains(q, ":trace_review:") || strings.Contains(q, ":override:"):
		http.Redirect(w, r, tenantURL("/console/workflows/"+url.PathEscape(q), t), http.StatusSeeOther)
	default:
		http.Redirect(w, r, tenantURL("/console/traces/"+url.PathEscape(q), t), http.StatusSeeOther)
	}
}

// back is the page to return to after a form, with a flash message.
func back(path, tenant, key, msg string) string {
	return tenantURL(path, tenant) + "&" + key + "=" + url.QueryEscape(msg)
}

func actionError(err error) string {
	var ee *workflow.Error
	if errors.As(err, &ee) {
		return ee.Message
	}
	var ev *event.Error
	if errors.As(err, &ev) {
		return ev.Message
	}
	return friendlyError(err)
}

func (c *console) workflowAction(w http.ResponseWriter, r *http.Request, v *viewer) string {
	wid := pathParam(r, "workflow_id")
	page := "/console/workflows/" + url.PathEscape(wid)
	f := r.PostForm
	if !v.Account.HasAnyRole(auth.RoleWriter, auth.RoleAdmin) {
		c.plainError(w, http.StatusForbidden, "account "+v.Account.AccountID+" has no writer or admin role; workflow actions are not allowed")
		return ""
	}
	if err := c.data.ready(); err != nil {
		return back(page, v.Tenant, "error", err.Error())
	}
	req := workflow.ActionRequest{
		Action: f.Get("action"), Reason: strings.TrimSpace(f.Get("reason")), Note: strings.TrimSpace(f.Get("note")),
		AssignedAccountID: strings.TrimSpace(f.Get("assigned_account_id")), AssignedRole: strings.TrimSpace(f.Get("assigned_role")),
		ConfirmText: strings.TrimSpace(f.Get("confirm_text")), RequestID: requestID(r.Context()),
		IdempotencyKey: f.Get("form_id"),
	}
	if ev := strings.TrimSpace(f.Get("evidence")); ev != "" {
		var list []any
		for _, l := range strings.Split(ev, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				list = append(list, map[string]any{"locator": l})
			}
		}
		req.Evidence = list
	}
	res, err := c.data.wf.Act(r.Context(), v.Tenant, wid, v.caller(), req)
	if err != nil {
		if workflow.ErrorCode(err) == workflow.CodeForbidden {
			c.plainError(w, http.StatusForbidden, actionError(err))
			return ""
		}
		return back(page, v.Tenant, "error", "Action failed: "+actionError(err))
	}
	msg := fmt.Sprintf("Workflow action %s recorded for %s: now %s", req.Action, wid, res.Item.Status)
	if res.AppendedEventID != "" {
		msg += " (event " + res.AppendedEventID + ")"
	}
	return back(page, v.Tenant, "flash", msg)
}

func (c *console) startReview(w http.ResponseWriter, r *http.Request, v *viewer) string {
	f := r.PostForm
	traceID := strings.TrimSpace(f.Get("trace_id"))
	page := "/console/studio?trace_id=" + url.QueryEscape(traceID)
	if !v.Account.HasAnyRole(auth.RoleWriter, auth.RoleAdmin) {
		c.plainError(w, http.StatusForbidden, "account "+v.Account.AccountID+" has no writer or admin role")
		return ""
	}
	if err := c.data.ready(); err != nil {
		return back(page, v.Tenant, "error", err.Error())
	}
	res, err := c.data.wf.StartReview(r.Context(), v.Tenant, traceID, v.caller(), f.Get("template_id"), strings.TrimSpace(f.Get("reason")), requestID(r.Context()))
	if err != nil {
		if workflow.ErrorCode(err) == workflow.CodeForbidden {
			c.plainError(w, http.StatusForbidden, actionError(err))
			return ""
		}
		return back(page, v.Tenant, "error", "Action failed: "+actionError(err))
	}
	msg := "Trace review started for " + traceID
	if !res.Created {
		msg = "A trace review already exists for " + traceID
	}
	return back("/console/workflows/"+url.PathEscape(res.Item.WorkflowID), v.Tenant, "flash", msg)
}

// ReplayPhrase is the typed confirmation of a replay (C.6).
func ReplayPhrase(mode, projectionName string) string {
	return strings.ToUpper(mode + " " + projectionName)
}

// replay runs a catch-up or a rebuild of the tenant's projections now, as
// the signed-in account, after the typed confirmation.
func (c *console) replay(w http.ResponseWriter, r *http.Request, v *viewer) string {
	f := r.PostForm
	page := "/console/projections"
	mode, name := f.Get("mode"), f.Get("projection")
	if !v.can(auth.PermProjectionReplay) || (mode == "rebuild" && !v.can(auth.PermProjectionRebuild)) {
		c.plainError(w, http.StatusForbidden, "account "+v.Account.AccountID+" may not run a "+mode+" (needs projection_replay, and projection_rebuild for a rebuild)")
		return ""
	}
	set, ok := projection.SetOf(name)
	if !ok || (mode != "catch_up" && mode != "rebuild") {
		return back(page, v.Tenant, "error", "Action failed: choose a projection and a mode (catch_up or rebuild)")
	}
	if strings.TrimSpace(f.Get("reason")) == "" {
		return back(page, v.Tenant, "error", "Action failed: a reason is required")
	}
	if strings.TrimSpace(f.Get("confirm_text")) != ReplayPhrase(mode, name) {
		return back(page, v.Tenant, "error", "Action failed: type "+ReplayPhrase(mode, name)+" to confirm")
	}
	if err := c.data.ready(); err != nil {
		return back(page, v.Tenant, "error", err.Error())
	}
	start := time.Now()
	c.s.log.InfoContext(r.Context(), "console replay", append(logAttrs(r), "account_id", v.Account.AccountID, "tenant", v.Tenant,
		"projection", name, "mode", mode, "reason", f.Get("reason"))...)
	var processed int
	if mode == "rebuild" {
		rep, err := c.data.pg.Rebuild(r.Context(), projection.RebuildOptions{Tenant: v.Tenant, Set: set})
		if err != nil {
			return back(page, v.Tenant, "error", "Action failed: "+friendlyError(err))
		}
		processed = rep.Events
	} else {
		names := []string{name}
		if name == "all" {
			names = projection.Names()
		}
		for _, n := range names {
			cat, err := c.data.pg.NewCatcher(v.Tenant, n)
			if err != nil {
				return back(page, v.Tenant, "error", "Action failed: "+friendlyError(err))
			}
			res, err := cat.CatchUp(r.Context(), 0)
			if err != nil {
				return back(page, v.Tenant, "error", "Action failed: "+friendlyError(err))
			}
			processed += res.Processed
		}
	}
	return back(page, v.Tenant, "flash", fmt.Sprintf("%s of %s completed: %d events in %s", mode, name, processed, time.Since(start).Round(time.Millisecond)))
}

// liveStream is a server-sent events stream of the tenant's new events.
// Each message's id is its log_seq, so a reconnecting browser resumes
// with Last-Event-ID; the request deadline ends a stream, and the browser
// reconnects on its own.
func (c *console) liveStream(w http.ResponseWriter, r *http.Request) {
	v := c.viewerOf(r)
	if v == nil {
		c.plainError(w, http.StatusUnauthorized, "sign in first")
		return
	}
	t := strings.TrimSpace(r.URL.Query().Get("tenant"))
	if t == "" || !v.Account.AllowsTenant(t) {
		c.plainError(w, http.StatusForbidden, "choose a tenant your account may use")
		return
	}
	if err := c.data.ready(); err != nil {
		c.plainError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	after := int64(-1)
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		fmt.Sscan(id, &after)
	} else if a := r.URL.Query().Get("after"); a != "" {
		fmt.Sscan(a, &after)
	}
	if after < 0 {
		h, err := c.data.st.Head(r.Context())
		if err != nil {
			c.plainError(w, http.StatusServiceUnavailable, friendlyError(err))
			return
		}
		after = h
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		c.plainError(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n: dg live events\n\n")
	fl.Flush()
	_ = c.data.st.Follow(r.Context(), t, after, time.Second, func(e *event.StoredEvent) error {
		tl := toTimeline(e)
		b, _ := json.Marshal(map[string]any{"log_seq": tl.LogSeq, "event_type": tl.Type, "event_id": tl.EventID, "trace_id": tl.TraceID,
			"trace_seq": tl.TraceSeq, "occurred_at": tl.OccurredAt, "actor": tl.Actor, "summary": tl.Summary, "tone": tl.Tone,
			"trace_url": tenantURL("/console/traces/"+url.PathEscape(tl.TraceID), t)})
		if _, err := fmt.Fprintf(w, "id: %d\nevent: dg-event\ndata: %s\n\n", tl.LogSeq, b); err != nil {
			return err
		}
		fl.Flush()
		return nil
	})
}
