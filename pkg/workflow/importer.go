package workflow

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
)

// ManagedTypes are the event types the workflow runtime imports.
var ManagedTypes = []string{event.TypeExceptionRequested, event.TypeApprovalRecorded, event.TypeWorkflowReviewRequested}

// srcEvent is the part of a stored event an import needs.
type srcEvent struct {
	LogSeq     int64
	EventID    string
	TraceID    string
	Type       string
	OccurredAt string
	Actor      Actor
	Payload    map[string]any
	raw        []byte // the payload as read, until decodePayloads
}

type traceContext struct{ title, workflow string }

// changes collects what one import batch or sweep writes.
type changes struct {
	items   map[string]*Item
	order   []string // workflow ids in first-touch order
	actions []*Action
	notes   []*Notification
	// fresh: ids of items the table does not hold yet (import only)
	fresh map[string]bool
}

func newChanges() *changes { return &changes{items: map[string]*Item{}} }

func (c *changes) put(it *Item) {
	if _, ok := c.items[it.WorkflowID]; !ok {
		c.order = append(c.order, it.WorkflowID)
	}
	c.items[it.WorkflowID] = it
}

func (c *changes) itemList() []*Item {
	out := make([]*Item, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.items[id])
	}
	return out
}

// importFailure is a managed event the runtime cannot apply.
type importFailure struct {
	ev  *srcEvent
	wid string
	msg string
}

// readManaged reads up to n managed events of tenant after log_seq; their
// payloads are decoded by decodePayloads (so that the connection is free
// again as soon as the rows are in).
func readManaged(ctx context.Context, q dbtx, tenant string, after int64, n int) ([]*srcEvent, error) {
	rows, err := q.Query(ctx, `SELECT log_seq, event_id, trace_id, event_type, occurred_at, actor_id, actor_type, payload::text
		FROM dg_event_log WHERE tenant_id = $1 AND log_seq > $2 AND event_type = ANY($3)
		ORDER BY log_seq LIMIT $4`, tenant, after, ManagedTypes, n)
	if err != nil {
		return nil, fmt.Errorf("read managed events after log_seq %d: %w", after, err)
	}
	defer rows.Close()
	var out []*srcEvent
	for rows.Next() {
		var e srcEvent
		if err := rows.Scan(&e.LogSeq, &e.EventID, &e.TraceID, &e.Type, &e.OccurredAt, &e.Actor.ActorID, &e.Actor.ActorType, &e.raw); err != nil {
			return nil, fmt.Errorf("read managed events: %w", err)
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read managed events: %w", err)
	}
	return out, nil
}

// decodePayloads decodes the payloads read by readManaged.
func decodePayloads(evs []*srcEvent) {
	for _, e := range evs {
		e.Payload = decodeObject(e.raw)
		e.raw = nil
	}
}

// loadTraceContexts returns (title, workflow) per trace: the projected
// trace summary, else the first TraceStarted payload.
func loadTraceContexts(ctx context.Context, q dbtx, tenant string, traces []string) (map[string]traceContext, error) {
	out := make(map[string]traceContext, len(traces))
	if len(traces) == 0 {
		return out, nil
	}
	// One key probe per trace, whatever the statistics say (see
	// loadItemsByID).
	rows, err := q.Query(ctx, `SELECT k.tid, s.title, s.workflow FROM unnest($2::text[]) AS k(tid)
		CROSS JOIN LATERAL (SELECT title, workflow FROM dg_trace_summary WHERE tenant_id = $1 AND trace_id = k.tid LIMIT 1) s`, tenant, traces)
	if err != nil {
		return nil, fmt.Errorf("read trace summaries: %w", err)
	}
	for rows.Next() {
		var id string
		var tc traceContext
		if err := rows.Scan(&id, &tc.title, &tc.workflow); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read trace summaries: %w", err)
		}
		out[id] = tc
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read trace summaries: %w", err)
	}
	var missing []string
	for _, t := range traces {
		if _, ok := out[t]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	rows, err = q.Query(ctx, `SELECT k.tid, f.title, f.workflow FROM unnest($2::text[]) AS k(tid)
		CROSS JOIN LATERAL (SELECT coalesce(payload->>'title', '') AS title, coalesce(payload->>'workflow', '') AS workflow
			FROM dg_event_log WHERE tenant_id = $1 AND trace_id = k.tid AND event_type = 'TraceStarted'
			ORDER BY trace_seq LIMIT 1) f`, tenant, missing)
	if err != nil {
		return nil, fmt.Errorf("read trace starts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var tc traceContext
		if err := rows.Scan(&id, &tc.title, &tc.workflow); err != nil {
			return nil, fmt.Errorf("read trace starts: %w", err)
		}
		out[id] = tc
	}
	return out, rows.Err()
}

// contextFor completes a trace context with the event payload's title and
// workflow and the fixed fallbacks.
func contextFor(tcs map[string]traceContext, ev *srcEvent) traceContext {
	tc := tcs[ev.TraceID]
	if tc.title == "" {
		tc.title = str(ev.Payload["title"])
	}
	if tc.workflow == "" {
		tc.workflow = str(ev.Payload["workflow"])
	}
	if tc.title == "" {
		tc.title = "Workflow review for " + ev.TraceID
	}
	if tc.workflow == "" {
		tc.workflow = "unknown"
	}
	return tc
}

// str returns v when it is a string, else "".
func str(v any) string {
	s, _ := v.(string)
	return s
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func list(v any) []any {
	l, ok := v.([]any)
	if !ok {
		return []any{}
	}
	return l
}

// targetID is the workflow id an event addresses ("" and a message when
// the event is malformed).
func targetID(ev *srcEvent) (string, string) {
	switch ev.Type {
	case event.TypeExceptionRequested:
		ex := strings.TrimSpace(str(ev.Payload["exception_id"]))
		if ex == "" {
			return "", "ExceptionRequested has no exception_id"
		}
		return makeID(ev.TraceID, SubjectException, ex)
	case event.TypeApprovalRecorded:
		subj := obj(ev.Payload["subject"])
		st := strings.TrimSpace(str(subj["subject_type"]))
		if st == "" {
			st = SubjectException
		}
		sid := strings.TrimSpace(str(subj["subject_id"]))
		if sid == "" {
			return "", "ApprovalRecorded has no subject.subject_id"
		}
		if st == SubjectOverride {
			return sid, ""
		}
		return makeID(ev.TraceID, st, sid)
	case event.TypeWorkflowReviewRequested:
		tpl := strings.TrimSpace(str(ev.Payload["template_id"]))
		if tpl == "" {
			return "", "WorkflowReviewRequested has no template_id"
		}
		subj := obj(ev.Payload["subject"])
		st, sid := strings.TrimSpace(str(subj["subject_type"])), strings.TrimSpace(str(subj["subject_id"]))
		if st == "" {
			st = SubjectTraceReview
		}
		if sid == "" {
			sid = tpl
		}
		return makeID(ev.TraceID, st, sid)
	}
	return "", "not a managed event type"
}

// makeID builds "{trace}:{subject_type}:{subject_id}" (A.3).
func makeID(trace, st, sid string) (string, string) {
	trace, st, sid = strings.TrimSpace(trace), strings.TrimSpace(st), strings.TrimSpace(sid)
	if trace == "" || st == "" || sid == "" {
		return "", "workflow id parts must be non-empty"
	}
	return trace + ":" + st + ":" + sid, ""
}

// priorityRule is rule P of A.6.1.
func priorityRule(payloadPriority any, existing *Item, reason string) string {
	if p, ok := NormalizePriority(str(payloadPriority)); ok {
		return p
	}
	if existing != nil && existing.Priority != "" {
		return existing.Priority
	}
	if strings.Contains(strings.ToLower(reason), "urgent") {
		return "urgent"
	}
	return "high"
}

// applier applies managed events to items in memory.
type applier struct {
	cfg    Config
	tenant string
	now    time.Time
	ch     *changes
	base   map[string]*Item // items as stored before this batch
	tcs    map[string]traceContext
	fails  []importFailure
}

func (a *applier) existing(wid string) *Item {
	if it, ok := a.ch.items[wid]; ok {
		return it
	}
	return a.base[wid]
}

func (a *applier) apply(ev *srcEvent) {
	wid, bad := targetID(ev)
	if bad != "" {
		a.fails = append(a.fails, importFailure{ev: ev, wid: ev.TraceID + ":import", msg: bad})
		return
	}
	at, err := event.ParseOccurredAt(ev.OccurredAt)
	if err != nil {
		a.fails = append(a.fails, importFailure{ev: ev, wid: wid, msg: "occurred_at is not RFC 3339: " + ev.OccurredAt})
		return
	}
	at = at.UTC()
	switch ev.Type {
	case event.TypeExceptionRequested:
		a.exceptionRequested(ev, wid, at)
	case event.TypeApprovalRecorded:
		if msg := a.approvalRecorded(ev, wid, at); msg != "" {
			a.fails = append(a.fails, importFailure{ev: ev, wid: wid, msg: msg})
		}
	case event.TypeWorkflowReviewRequested:
		a.reviewRequested(ev, wid, at)
	}
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+8)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (a *applier) exceptionRequested(ev *srcEvent, wid string, at time.Time) {
	p := ev.Payload
	ex := a.existing(wid)
	tc := contextFor(a.tcs, ev)
	reason := str(p["reason"])
	policy := obj(p["policy"])
	it := &Item{
		TenantID: a.tenant, WorkflowID: wid, TraceID: ev.TraceID, Kind: KindExceptionReview, Name: tc.workflow,
		SubjectType: SubjectException, SubjectID: strings.TrimSpace(str(p["exception_id"])),
		Status: StatusRequested, Title: tc.title,
		PolicyID: str(policy["policy_id"]), PolicyVersion: str(policy["policy_version"]),
		RequestedBy:    ev.Actor,
		RequestedAt:    at,
		SLADueAt:       at.Add(a.cfg.ExceptionReviewSLA),
		AssignedRole:   a.cfg.DefaultAssignedRole,
		CurrentReason:  reason,
		LastActionType: "requested", LastActionAt: at, UpdatedAt: at,
		CreatedFromEventID: ev.EventID, LastSourceLogSeq: ev.LogSeq,
	}
	it.AssignedAccountID = a.cfg.DefaultAssignedAcct
	md := map[string]any{}
	if ex != nil {
		md = copyMap(ex.Metadata)
		if IsTerminal(ex.Status) {
			it.Status = ex.Status
			it.ResolvedAt = ex.ResolvedAt
		}
		it.AssignedAccountID, it.AssignedRole = ex.AssignedAccountID, ex.AssignedRole
		it.RequestedAt = ex.RequestedAt
		if !ex.SLADueAt.IsZero() {
			it.SLADueAt = ex.SLADueAt
		}
		if reason == "" {
			it.CurrentReason = ex.CurrentReason
		}
		it.CurrentDecision, it.ApprovalEventID = ex.CurrentDecision, ex.ApprovalEventID
		it.deadlineRiskFor = ex.deadlineRiskFor
	}
	it.Priority = priorityRule(p["priority"], ex, reason)
	evidence := list(p["evidence"])
	md["evidence"] = evidence
	md["exception_reason"] = reason
	md["policy"] = map[string]any{"policy_id": strJSON(it.PolicyID), "policy_version": strJSON(it.PolicyVersion)}
	md["request_event_id"] = ev.EventID
	md["workflow"] = tc.workflow
	it.Metadata = md
	a.ch.put(it)
	a.ch.actions = append(a.ch.actions, &Action{
		TenantID: a.tenant, ActionID: "wfa:event:" + ev.EventID, WorkflowID: wid, TraceID: ev.TraceID, Type: "requested",
		ActorID: ev.Actor.ActorID, ActorType: ev.Actor.ActorType, Note: reason,
		Payload:       map[string]any{"evidence": evidence, "exception_id": it.SubjectID, "policy": md["policy"]},
		SourceEventID: ev.EventID, ResultingStatus: it.Status, CreatedAt: at,
	})
	a.ch.notes = append(a.ch.notes, assignmentNote(it, a.now, "Workflow "+wid+" assigned to ", map[string]any{"source": "exception_requested"}))
}

// assignmentNote is the assignment notification for the item's current
// assignee (dedupe assignment:{wid}:{target}).
func assignmentNote(it *Item, now time.Time, prefix string, extra map[string]any) *Notification {
	target := assigneeLabel(it.AssignedAccountID, it.AssignedRole)
	payload := map[string]any{"assigned_account_id": strJSON(it.AssignedAccountID), "assigned_role": strJSON(it.AssignedRole)}
	for k, v := range extra {
		payload[k] = v
	}
	return &Notification{
		TenantID: it.TenantID, WorkflowID: it.WorkflowID, TraceID: it.TraceID, Category: CategoryAssignment,
		Message: prefix + target, RecipientAccountID: it.AssignedAccountID, RecipientRole: it.AssignedRole,
		Payload: payload, DedupeKey: "assignment:" + it.WorkflowID + ":" + target, CreatedAt: now,
	}
}

func (a *applier) approvalRecorded(ev *srcEvent, wid string, at time.Time) string {
	p := ev.Payload
	subj := obj(p["subject"])
	st := strings.TrimSpace(str(subj["subject_type"]))
	if st == "" {
		st = SubjectException
	}
	sid := strings.TrimSpace(str(subj["subject_id"]))
	decision := str(p["decision"])
	var status, current, last string
	switch {
	case st == SubjectOverride:
		status, current, last = StatusOverridden, "override_"+decision, "override"
	case decision == "approved":
		status, current, last = StatusApproved, decision, "approve"
	case decision == "rejected":
		status, current, last = StatusRejected, decision, "reject"
	default:
		return fmt.Sprintf("ApprovalRecorded decision must be approved or rejected, got %q", decision)
	}
	reason := str(p["reason"])
	if reason == "" {
		reason = str(p["rationale"])
	}
	approver := obj(p["approver"])
	actor := Actor{ActorID: str(approver["actor_id"]), ActorType: str(approver["actor_type"])}
	if actor.ActorID == "" {
		actor = ev.Actor
	}
	ex := a.existing(wid)
	tc := contextFor(a.tcs, ev)
	it := &Item{
		TenantID: a.tenant, WorkflowID: wid, TraceID: ev.TraceID, SubjectType: st, SubjectID: sid,
		Status: status, CurrentDecision: current, LastActionType: last, LastActionAt: at, UpdatedAt: at,
		CurrentReason: reason, ApprovalEventID: ev.EventID, ResolvedAt: at, LastSourceLogSeq: ev.LogSeq,
	}
	evidence := list(p["evidence"])
	var md map[string]any
	if ex != nil {
		md = copyMap(ex.Metadata)
		it.AssignedAccountID, it.AssignedRole = ex.AssignedAccountID, ex.AssignedRole
		it.CreatedFromEventID = ex.CreatedFromEventID
		it.PolicyID, it.PolicyVersion = ex.PolicyID, ex.PolicyVersion
		it.Priority, it.RequestedAt, it.RequestedBy = ex.Priority, ex.RequestedAt, ex.RequestedBy
		it.SLADueAt, it.Title, it.Kind, it.Name = ex.SLADueAt, ex.Title, ex.Kind, ex.Name
		it.deadlineRiskFor = ex.deadlineRiskFor
	} else {
		md = map[string]any{}
		it.CreatedFromEventID = ev.EventID
		it.Priority, it.RequestedAt, it.RequestedBy = "high", at, actor
		it.Title, it.Name = tc.title, tc.workflow
		it.Kind = KindExceptionReview
		if st == SubjectOverride {
			it.Kind = KindOverrideReview
		}
	}
	md["approval_event_id"] = ev.EventID
	md["approval_reason"] = reason
	md["approver"] = map[string]any{"actor_id": actor.ActorID, "actor_type": actor.ActorType}
	md["evidence"] = evidence
	it.Metadata = md
	a.ch.put(it)
	a.ch.actions = append(a.ch.actions, &Action{
		TenantID: a.tenant, ActionID: "wfa:event:" + ev.EventID, WorkflowID: wid, TraceID: ev.TraceID, Type: last,
		ActorID: actor.ActorID, ActorType: actor.ActorType, Note: reason,
		Payload:       map[string]any{"decision": decision, "evidence": evidence, "subject": map[string]any{"subject_id": sid, "subject_type": st}},
		SourceEventID: ev.EventID, ResultingStatus: status, CreatedAt: at,
	})
	a.ch.notes = append(a.ch.notes, &Notification{
		TenantID: a.tenant, WorkflowID: wid, TraceID: ev.TraceID, Category: CategoryApproval,
		Message:            "Workflow " + wid + " recorded " + current,
		RecipientAccountID: it.AssignedAccountID, RecipientRole: it.AssignedRole,
		Payload:   map[string]any{"decision": decision, "source_event_id": ev.EventID, "subject_type": st},
		DedupeKey: "approval:" + wid + ":" + ev.EventID, CreatedAt: a.now, eventKeyed: true,
	})
	return ""
}

func (a *applier) reviewRequested(ev *srcEvent, wid string, at time.Time) {
	p := ev.Payload
	tpl := strings.TrimSpace(str(p["template_id"]))
	subj := obj(p["subject"])
	st, sid := strings.TrimSpace(str(subj["subject_type"])), strings.TrimSpace(str(subj["subject_id"]))
	if st == "" {
		st = SubjectTraceReview
	}
	if sid == "" {
		sid = tpl
	}
	ex := a.existing(wid)
	tc := contextFor(a.tcs, ev)
	kind := str(p["workflow_kind"])
	if kind == "" {
		kind = KindIncidentReview
	}
	title := str(p["title"])
	if title == "" {
		title = "Incident review for " + tc.title
	}
	reason := str(p["reason"])
	assignee := obj(p["assignee"])
	it := &Item{
		TenantID: a.tenant, WorkflowID: wid, TraceID: ev.TraceID, Kind: kind, Name: tpl,
		SubjectType: st, SubjectID: sid, Status: StatusRequested, Title: title,
		PolicyID: str(p["policy_id"]), PolicyVersion: str(p["policy_version"]),
		RequestedBy: ev.Actor, RequestedAt: at, CurrentReason: reason,
		LastActionType: "incident_review_requested", LastActionAt: at, UpdatedAt: at,
		CreatedFromEventID: ev.EventID, LastSourceLogSeq: ev.LogSeq,
	}
	md := map[string]any{}
	if ex != nil {
		md = copyMap(ex.Metadata)
		if IsTerminal(ex.Status) {
			it.Status, it.ResolvedAt = ex.Status, ex.ResolvedAt
		}
		it.AssignedAccountID, it.AssignedRole = ex.AssignedAccountID, ex.AssignedRole
		it.RequestedAt, it.SLADueAt = ex.RequestedAt, ex.SLADueAt
		it.CurrentDecision, it.ApprovalEventID = ex.CurrentDecision, ex.ApprovalEventID
		it.deadlineRiskFor = ex.deadlineRiskFor
		if reason == "" {
			it.CurrentReason = ex.CurrentReason
		}
	}
	if acct := str(assignee["account_id"]); acct != "" {
		it.AssignedAccountID = acct
	}
	if role := str(assignee["role"]); role != "" {
		it.AssignedRole = role
	}
	if it.AssignedRole == "" && it.AssignedAccountID == "" {
		it.AssignedRole = a.cfg.DefaultAssignedRole
	}
	if it.SLADueAt.IsZero() {
		if h := intOf(p["sla_hours"]); h > 0 {
			it.SLADueAt = at.Add(time.Duration(h) * time.Hour)
		} else {
			it.SLADueAt = at.Add(a.cfg.IncidentReviewSLA)
		}
	}
	it.Priority = priorityRule(p["priority"], ex, reason)
	md["entrypoint"] = "workflow_studio"
	md["review_template"] = map[string]any{
		"default_priority": p["priority"], "default_sla_hours": p["sla_hours"],
		"description": p["template_description"], "reviewer_role": assignee["role"], "template_id": tpl,
	}
	if sim, ok := p["simulation"]; ok && sim != nil {
		md["simulation"] = sim
	}
	md["source_event_id"] = ev.EventID
	it.Metadata = md
	a.ch.put(it)
	a.ch.actions = append(a.ch.actions, &Action{
		TenantID: a.tenant, ActionID: "wfa:event:" + ev.EventID, WorkflowID: wid, TraceID: ev.TraceID,
		Type: "incident_review_requested", ActorID: ev.Actor.ActorID, ActorType: ev.Actor.ActorType, Note: reason,
		Payload:       map[string]any{"assignee": p["assignee"], "simulation": p["simulation"], "template_id": tpl},
		SourceEventID: ev.EventID, ResultingStatus: it.Status, CreatedAt: at,
	})
	a.ch.notes = append(a.ch.notes, assignmentNote(it, a.now, "Workflow "+wid+" assigned to ",
		map[string]any{"source": "workflow_review_requested", "template_id": tpl}))
}

// failureNote records an event the importer had to skip.
func failureNote(tenant string, f importFailure, now time.Time) *Notification {
	return &Notification{
		TenantID: tenant, WorkflowID: f.wid, TraceID: f.ev.TraceID, Category: CategoryFailure,
		Message:   "Workflow " + f.wid + " failed to import " + f.ev.Type + " " + f.ev.EventID + ": " + f.msg,
		Payload:   map[string]any{"action": "import", "error": f.msg, "event_id": f.ev.EventID, "event_type": f.ev.Type, "log_seq": f.ev.LogSeq},
		DedupeKey: "failure:" + f.wid + ":import:" + f.ev.EventID, CreatedAt: now, eventKeyed: true,
	}
}
