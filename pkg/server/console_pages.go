package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// alert is one banner (C.3): kind info, warn or alert.
type alert struct {
	Kind, Title, Detail, Link string
}

type overviewBody struct {
	Counts  section // *tenantCounts
	Health  section // *health
	Summary section // *workflow.Summary
	Inbox   section // []*workflow.Item (open, first 8)
	Recent  section // []traceRow
	Alerts  []alert
	AtRisk  int
	Now     time.Time
}

func (c *console) overviewPage(r *http.Request, v *viewer) (string, any, int) {
	ctx, t := r.Context(), v.Tenant
	d := c.data
	b := &overviewBody{Now: c.cfg.Now()}
	parallel(func() {
		b.Counts = load(ctx, func(ctx context.Context) (*tenantCounts, error) { return d.tenantCounts(ctx, t) },
			func(tc *tenantCounts) bool { return tc.Events == 0 })
	}, func() {
		b.Health = load(ctx, func(ctx context.Context) (*health, error) { return d.health(ctx, t) }, (*health).empty)
	}, func() {
		// One inbox read gives the open items and the summary.
		in := load(ctx, func(ctx context.Context) (*workflow.Inbox, error) { return d.inbox(ctx, t, true, 8) }, nil)
		b.Inbox, b.Summary = splitInbox(in)
	}, func() {
		b.Recent = load(ctx, func(ctx context.Context) ([]traceRow, error) { return d.recentTraces(ctx, t, 8, 0) },
			func(l []traceRow) bool { return len(l) == 0 })
	})
	if b.Inbox.Ready() {
		for _, it := range b.Inbox.Data.([]*workflow.Item) {
			if !it.Overdue(b.Now) && !it.SLADueAt.IsZero() && it.SLADueAt.Sub(b.Now) <= 30*time.Minute {
				b.AtRisk++
			}
		}
	}
	b.Alerts = c.alerts(v, b)
	return "Overview", b, http.StatusOK
}

// alerts builds the banners in the order of C.3.
func (c *console) alerts(v *viewer, b *overviewBody) []alert {
	var out []alert
	if !hasAnyWorkflowPermission(v) {
		out = append(out, alert{"info", "Actions disabled", "Account " + v.Account.AccountID + " holds no workflow permission; pages are read-only.", ""})
	}
	if b.Health.Ready() {
		h := b.Health.Data.(*health)
		if h.OpenFailures > 0 {
			out = append(out, alert{"alert", "Projection failures need review", strconv.Itoa(h.OpenFailures) + " open failure(s)", tenantURL("/console/projections", v.Tenant)})
		}
		if h.Stale > 0 {
			out = append(out, alert{"warn", "Projection lag detected", strconv.Itoa(h.Stale) + " projection(s) behind the log", tenantURL("/console/projections", v.Tenant)})
		}
	} else if b.Health.Unavailable() {
		out = append(out, alert{"warn", "Projection health unavailable", b.Health.Error, ""})
	}
	if b.Inbox.Unavailable() || b.Summary.Unavailable() {
		out = append(out, alert{"warn", "Workflow inbox degraded", b.Inbox.Error + b.Summary.Error, ""})
	}
	if b.Summary.Ready() {
		if n := b.Summary.Data.(*workflow.Summary).OverdueCount; n > 0 {
			out = append(out, alert{"alert", "Workflow SLA risk detected", strconv.FormatInt(n, 10) + " overdue review(s)",
				tenantURL("/console/workflows?only_overdue=1", v.Tenant)})
		}
	}
	if b.AtRisk > 0 {
		out = append(out, alert{"warn", "Review deadline approaching", strconv.Itoa(b.AtRisk) + " open review(s) due within 30 minutes",
			tenantURL("/console/workflows", v.Tenant)})
	}
	return out
}

func hasAnyWorkflowPermission(v *viewer) bool {
	for _, p := range []string{workflow.PermReview, workflow.PermAssign, workflow.PermEscalate, workflow.PermOverride} {
		if v.can(p) {
			return true
		}
	}
	return false
}

func (d *consoleData) inbox(ctx context.Context, t string, onlyOpen bool, limit int) (*workflow.Inbox, error) {
	return d.list(ctx, t, workflow.Filter{OnlyOpen: onlyOpen, Limit: limit})
}

func (d *consoleData) list(ctx context.Context, t string, f workflow.Filter) (*workflow.Inbox, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	return d.wf.List(ctx, t, f)
}

// splitInbox turns one inbox section into its items and summary sections.
func splitInbox(in section) (items, summary section) {
	if !in.Ready() {
		return in, in
	}
	ib := in.Data.(*workflow.Inbox)
	items = section{Status: "ready", Data: ib.Items}
	if len(ib.Items) == 0 {
		items.Status = "empty"
	}
	sm := ib.Summary
	return items, section{Status: "ready", Data: &sm}
}

// parallel runs a page's independent section loaders at once.
func parallel(fns ...func()) {
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	wg.Wait()
}

type tracesBody struct {
	Traces section // []traceRow
	Next   int64
}

func (c *console) tracesPage(r *http.Request, v *viewer) (string, any, int) {
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	b := &tracesBody{}
	b.Traces = load(r.Context(), func(ctx context.Context) ([]traceRow, error) { return c.data.recentTraces(ctx, v.Tenant, 50, before) },
		func(l []traceRow) bool { return len(l) == 0 })
	if b.Traces.Ready() {
		if l := b.Traces.Data.([]traceRow); len(l) == 50 {
			b.Next = l[len(l)-1].LastLogSeq
		}
	}
	return "Traces", b, http.StatusOK
}

type traceBody struct {
	TraceID    string
	Summary    section // traceRow
	Timeline   section // []timelineEvent
	Review     *reviewCards
	Graph      section // *graphView
	Precedents section // []precedentCard
	Workflows  section // []*workflow.Item
	Now        time.Time
}

func (c *console) tracePage(r *http.Request, v *viewer) (string, any, int) {
	ctx, t, id := r.Context(), v.Tenant, pathParam(r, "trace_id")
	d := c.data
	b := &traceBody{TraceID: id, Now: c.cfg.Now()}
	evs, err := d.traceEvents(ctx, t, id)
	switch {
	case err != nil:
		b.Timeline = section{Status: "unavailable", Error: friendlyError(err)}
	case len(evs) == 0:
		b.Timeline = section{Status: "empty"}
		return "Trace " + id, b, http.StatusNotFound
	default:
		tl := make([]timelineEvent, len(evs))
		for k, e := range evs {
			tl[k] = toTimeline(e)
		}
		b.Timeline = section{Status: "ready", Data: tl}
		b.Review = reviewOf(id, evs)
	}
	parallel(func() {
		b.Summary = load(ctx, func(ctx context.Context) (*traceRow, error) {
			if err := d.ready(); err != nil {
				return nil, err
			}
			s, err := d.pg.TraceSummary(ctx, t, id)
			if err != nil {
				return nil, err
			}
			return &traceRow{Summary: *s, Status: summaryStatus(s)}, nil
		}, nil)
	}, func() {
		b.Graph = load(ctx, func(ctx context.Context) (*graphView, error) { return d.graph(ctx, t, id) },
			func(g *graphView) bool { return len(g.Nodes) == 0 })
	}, func() {
		if b.Review != nil {
			b.Precedents = load(ctx, func(ctx context.Context) ([]precedentCard, error) { return d.precedents(ctx, t, id, b.Review) },
				func(l []precedentCard) bool { return len(l) == 0 })
		} else {
			b.Precedents = section{Status: "unavailable", Error: "the trace could not be read"}
		}
	}, func() {
		in := load(ctx, func(ctx context.Context) (*workflow.Inbox, error) {
			return d.list(ctx, t, workflow.Filter{TraceID: id, Limit: workflow.MaxLimit})
		}, nil)
		b.Workflows, _ = splitInbox(in)
	})
	return "Trace " + id, b, http.StatusOK
}

type workflowsBody struct {
	Inbox       section // []*workflow.Item
	Summary     section
	OnlyOpen    bool
	OnlyOverdue bool
	Now         time.Time
}

func (c *console) workflowsPage(r *http.Request, v *viewer) (string, any, int) {
	ctx, t := r.Context(), v.Tenant
	q := r.URL.Query()
	b := &workflowsBody{OnlyOpen: q.Get("all") == "", OnlyOverdue: q.Get("only_overdue") == "1", Now: c.cfg.Now()}
	in := load(ctx, func(ctx context.Context) (*workflow.Inbox, error) {
		return c.data.list(ctx, t, workflow.Filter{OnlyOpen: b.OnlyOpen, OnlyOverdue: b.OnlyOverdue, Limit: workflow.MaxLimit})
	}, nil)
	if in.Ready() {
		b.Now = in.Data.(*workflow.Inbox).Now
	}
	b.Inbox, b.Summary = splitInbox(in)
	return "Workflows", b, http.StatusOK
}

// actionOption is one choice of the action form.
type actionOption struct {
	Name, Label string
}

var actionLabels = map[string]string{
	workflow.ActApprove: "Approve", workflow.ActReject: "Reject", workflow.ActRequestChange: "Request changes",
	workflow.ActComment: "Comment", workflow.ActReassign: "Reassign", workflow.ActEscalate: "Escalate",
	workflow.ActOverride: "Override", workflow.ActClaim: "Claim", workflow.ActRelease: "Release",
}

type workflowBody struct {
	WorkflowID string
	Detail     section // *workflow.Detail
	Options    []actionOption
	Phrase     string
	CanAct     bool
	// TraceFinished: the trace has its TraceFinished, so decisions
	// (which append to it) are not offered.
	TraceFinished bool
	Metadata      string
	Now           time.Time
}

func (c *console) workflowPage(r *http.Request, v *viewer) (string, any, int) {
	ctx, t, wid := r.Context(), v.Tenant, pathParam(r, "workflow_id")
	b := &workflowBody{WorkflowID: wid, Phrase: workflow.OverridePhrase(wid), Now: c.cfg.Now()}
	status := http.StatusOK
	var getErr error
	b.Detail = load(ctx, func(ctx context.Context) (*workflow.Detail, error) {
		if err := c.data.ready(); err != nil {
			return nil, err
		}
		det, err := c.data.detail(ctx, t, wid)
		getErr = err
		return det, err
	}, nil)
	if workflow.ErrorCode(getErr) == workflow.CodeNotFound {
		status = http.StatusNotFound
	}
	if b.Detail.Ready() {
		det := b.Detail.Data.(*workflow.Detail)
		b.Now = det.Now
		b.Metadata = prettyJSON(det.Item.Metadata)
		// Decisions append an ApprovalRecorded to the trace, which a
		// finished trace refuses: do not offer them there.
		b.TraceFinished, _ = c.data.traceFinished(ctx, t, det.Item.TraceID)
		if v.Account.HasAnyRole(auth.RoleWriter, auth.RoleAdmin) {
			for _, a := range workflow.Actions {
				if b.TraceFinished && (a == workflow.ActApprove || a == workflow.ActReject || a == workflow.ActOverride) {
					continue
				}
				if !v.can(workflow.ActionPermission[a]) {
					continue
				}
				if workflow.CheckTransition(wid, det.Item.Kind, det.Item.Status, a) != nil {
					continue
				}
				b.Options = append(b.Options, actionOption{a, actionLabels[a]})
			}
		}
		b.CanAct = len(b.Options) > 0
	}
	return "Workflow " + wid, b, status
}

type studioBody struct {
	Templates []workflow.Template
	TraceID   string
	Traces    section // []traceRow
	Overview  section // map[string]any
	Existing  []any
	CanStart  bool
	Signals   []string
}

func (c *console) studioPage(r *http.Request, v *viewer) (string, any, int) {
	ctx, t := r.Context(), v.Tenant
	b := &studioBody{Templates: workflow.Templates(), TraceID: strings.TrimSpace(r.URL.Query().Get("trace_id")),
		CanStart: v.can(workflow.PermAssign)}
	b.Overview = section{Status: "empty"}
	parallel(func() {
		b.Traces = load(ctx, func(ctx context.Context) ([]traceRow, error) { return c.data.recentTraces(ctx, t, 12, 0) },
			func(l []traceRow) bool { return len(l) == 0 })
	}, func() {
		if b.TraceID == "" {
			return
		}
		b.Overview = load(ctx, func(ctx context.Context) (*studioView, error) {
			if err := c.data.ready(); err != nil {
				return nil, err
			}
			ov, err := c.data.wf.TraceOverview(ctx, t, b.TraceID, r.URL.Query().Get("template_id"))
			if err != nil {
				return nil, err
			}
			return newStudioView(ov), nil
		}, nil)
	})
	return "Studio", b, http.StatusOK
}

// studioView is the studio's dry run of a trace review, for the page.
type studioView struct {
	Template   workflow.Template
	DraftID    string
	Priority   string
	Reason     string
	Signals    []string
	Replay     map[string]any
	Precedents []map[string]any
	Existing   []map[string]any
	Raw        string
}

func maps(v any) []map[string]any {
	var out []map[string]any
	switch l := v.(type) {
	case []map[string]any:
		return l
	case []any:
		for _, e := range l {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

func newStudioView(ov *workflow.Overview) *studioView {
	sv := &studioView{Template: ov.Template, Raw: prettyJSON(ov.Data)}
	sv.DraftID, _ = ov.Draft["workflow_id"].(string)
	if sim, ok := ov.Data["simulation"].(map[string]any); ok {
		sv.Priority, _ = sim["priority"].(string)
		sv.Reason, _ = sim["recommended_reason"].(string)
		switch sig := sim["risk_signals"].(type) {
		case []string:
			sv.Signals = sig
		case []any:
			for _, x := range sig {
				if s, ok := x.(string); ok {
					sv.Signals = append(sv.Signals, s)
				}
			}
		}
	}
	sv.Replay, _ = ov.Data["replay_suggestion"].(map[string]any)
	sv.Precedents = maps(ov.Data["precedent_preview"])
	sv.Existing = maps(ov.Data["existing_workflows"])
	return sv
}

type projectionsBody struct {
	Alignment   []alignment
	Health      section // *health
	Runs        section // []run
	Failures    section // []failure
	CanReplay   bool
	CanRebuild  bool
	Projections []string
}

func (c *console) projectionsPage(r *http.Request, v *viewer) (string, any, int) {
	ctx, t := r.Context(), v.Tenant
	b := &projectionsBody{CanReplay: v.can(auth.PermProjectionReplay), CanRebuild: v.can(auth.PermProjectionRebuild),
		Projections: []string{"trace_summary", "context_graph", "precedent_index", "all"}}
	parallel(func() {
		b.Health = load(ctx, func(ctx context.Context) (*health, error) { return c.data.health(ctx, t) }, (*health).empty)
	}, func() {
		b.Runs = load(ctx, func(ctx context.Context) ([]run, error) { return c.data.runs(ctx, t) }, func(l []run) bool { return len(l) == 0 })
	}, func() {
		b.Failures = load(ctx, func(ctx context.Context) ([]failure, error) { return c.data.failures(ctx, t) },
			func(l []failure) bool { return len(l) == 0 })
	})
	if b.Health.Ready() && !b.Runs.Unavailable() {
		var runs []run
		if b.Runs.Ready() {
			runs = b.Runs.Data.([]run)
		}
		b.Alignment = alignments(b.Health.Data.(*health), runs)
	}
	return "Projections", b, http.StatusOK
}

// alignment compares a projection's digest with its last completed run
// (C.4): "no completed replay", "aligned" (the run ended where the digest
// was taken), "newer than last replay" (the digest covers later events)
// or "needs review" (the run claims events the digest does not cover).
type alignment struct {
	Projection   string
	DigestLogSeq int64
	RunLogSeq    int64
	State        string
}

func alignments(h *health, runs []run) []alignment {
	var out []alignment
	for _, r := range h.Rows {
		a := alignment{Projection: r.Projection, DigestLogSeq: r.DigestLogSeq, State: "no completed replay"}
		for _, x := range runs { // newest first
			if x.Status != "completed" || x.Projection != r.Projection {
				continue
			}
			a.RunLogSeq = x.LastLogSeq
			switch {
			case x.LastLogSeq == r.DigestLogSeq:
				a.State = "aligned"
			case x.LastLogSeq < r.DigestLogSeq:
				a.State = "newer than last replay"
			default:
				a.State = "needs review"
			}
			break
		}
		out = append(out, a)
	}
	return out
}

type liveBody struct {
	Events section // []timelineEvent
	After  int64
}

func (c *console) livePage(r *http.Request, v *viewer) (string, any, int) {
	b := &liveBody{}
	b.Events = load(r.Context(), func(ctx context.Context) ([]timelineEvent, error) { return c.data.lastEvents(ctx, v.Tenant, 20) },
		func(l []timelineEvent) bool { return len(l) == 0 })
	if b.Events.Ready() {
		b.After = b.Events.Data.([]timelineEvent)[0].LogSeq
	} else if b.Events.Empty() {
		if err := c.data.ready(); err == nil {
			if h, err := c.data.st.Head(r.Context()); err == nil {
				b.After = h
			}
		}
	}
	return "Live events", b, http.StatusOK
}

type operationsBody struct {
	Configured bool
	Dir        string
	Backups    section // []ops.BackupEntry
}

func (c *console) operationsPage(r *http.Request, v *viewer) (string, any, int) {
	b := &operationsBody{Configured: c.cfg.BackupDir != "", Dir: c.cfg.BackupDir}
	b.Backups = load(r.Context(), func(context.Context) ([]ops.BackupEntry, error) { return c.data.backups() },
		func(l []ops.BackupEntry) bool { return len(l) == 0 })
	return "Operations", b, http.StatusOK
}

type accountRow struct {
	AccountID   string
	Roles       []string
	Permissions []string
	Tenants     []string
	Tokens      int
	Operator    bool
}

type accountsBody struct {
	Source   string
	Operator string
	Accounts []accountRow
	Preview  section // string (JSON)
	Prefix   string
	Tenant   string
	Demo     bool
}

func (c *console) accountsPage(r *http.Request, v *viewer) (string, any, int) {
	set := c.cfg.Accounts.Current()
	q := r.URL.Query()
	b := &accountsBody{Source: set.Source, Operator: set.OperatorAccountID, Prefix: strings.TrimSpace(q.Get("prefix")),
		Tenant: strings.TrimSpace(q.Get("primary_tenant")), Demo: q.Get("include_release_demo") != ""}
	for _, a := range set.Accounts {
		b.Accounts = append(b.Accounts, accountRow{AccountID: a.AccountID, Roles: a.Roles, Permissions: a.Permissions,
			Tenants: a.TenantIDs, Tokens: a.TokenCount(), Operator: a.AccountID == set.OperatorAccountID})
	}
	if b.Prefix == "" {
		b.Prefix = "main"
	}
	if b.Tenant == "" {
		b.Tenant = "default"
	}
	if q.Get("preview") != "" {
		b.Preview = load(r.Context(), func(context.Context) (string, error) {
			return bootstrapPreview(b.Prefix, b.Tenant, b.Demo, c.cfg.Now())
		}, nil)
	} else {
		b.Preview = section{Status: "empty"}
	}
	return "Accounts", b, http.StatusOK
}

// bootstrapPreview is a fresh accounts document (C.7): reader, writer and
// admin accounts with one new token each. Nothing is written.
func bootstrapPreview(prefix, tenant string, demo bool, now time.Time) (string, error) {
	tenants := []string{tenant}
	if demo && tenant != "release-demo" {
		tenants = append(tenants, "release-demo")
	}
	mk := func(id, role string, perms []string) (map[string]any, error) {
		tok, err := auth.NewToken()
		if err != nil {
			return nil, err
		}
		return map[string]any{"account_id": id, "roles": []string{role}, "permissions": perms, "tenant_ids": tenants, "tokens": []string{tok}}, nil
	}
	var accts []any
	for _, a := range []struct {
		id, role string
		perms    []string
	}{
		{"reader-" + prefix, auth.RoleReader, []string{}},
		{"writer-" + prefix, auth.RoleWriter, []string{auth.PermWorkflowAssign, auth.PermWorkflowReview}},
		{"admin-" + prefix, auth.RoleAdmin, auth.AllPermissions()},
	} {
		m, err := mk(a.id, a.role, a.perms)
		if err != nil {
			return "", err
		}
		accts = append(accts, m)
	}
	doc := map[string]any{"generated_at": now.UTC().Format(time.RFC3339), "operator_console_account_id": "admin-" + prefix,
		"service_accounts": accts,
		"env":              map[string]string{"DECISION_GRAPH_SERVICE_ACCOUNTS_FILE": "/etc/dg/accounts.json", "DECISION_GRAPH_OPERATOR_ACCOUNT_ID": "admin-" + prefix}}
	return prettyJSON(doc), nil
}
