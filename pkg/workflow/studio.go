package workflow

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/audit"
	"github.com/decisiongraph/dg/pkg/event"
)

// Template is a fixed workflow-studio review template (A.12).
type Template struct {
	TemplateID      string   `json:"template_id"`
	Title           string   `json:"title"`
	Description     string   `json:"description"`
	WorkflowKind    string   `json:"workflow_kind"`
	ReviewerRole    string   `json:"reviewer_role"`
	DefaultPriority string   `json:"default_priority"`
	DefaultSLAHours int      `json:"default_sla_hours"`
	Tags            []string `json:"tags"`
}

// Templates returns the studio's template catalogue (a fresh copy).
func Templates() []Template {
	return []Template{
		{"incident_triage", "Incident Triage Review", "Operator triage of a trace with its replay options and close precedents.",
			KindIncidentReview, "admin", "high", 2, []string{"incident", "replay", "human_review"}},
		{"exception_follow_up", "Exception Follow-Up", "Escalated follow-up for traces with exceptions or approvals still open.",
			KindIncidentReview, "admin", "urgent", 1, []string{"exception", "approval", "sla"}},
		{"precedent_gap_review", "Precedent Gap Review", "Review of a trace whose precedents disagree with its outcome.",
			KindIncidentReview, "writer", "normal", 6, []string{"precedent", "analysis", "dry_run"}},
	}
}

func templateByID(id string) (Template, bool) {
	for _, t := range Templates() {
		if t.TemplateID == id {
			return t, true
		}
	}
	return Template{}, false
}

var unfavorable = map[string]bool{"failed": true, "rejected": true, "deny": true, "denied": true}

// traceFacts is what the studio reads from a trace's events.
type traceFacts struct {
	traceID, title, workflow     string
	entityType, entityID         string
	outcome, startedAt, finished string
	hasException                 bool
	policyID, policyVersion      string
	eventCount                   int
}

func (s *Service) traceFacts(ctx context.Context, tenant, traceID string) (*traceFacts, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_type, occurred_at, payload::text FROM dg_event_log
		WHERE tenant_id = $1 AND trace_id = $2 ORDER BY trace_seq`, tenant, traceID)
	if err != nil {
		return nil, fmt.Errorf("read trace %s: %w", traceID, err)
	}
	defer rows.Close()
	f := &traceFacts{traceID: traceID}
	for rows.Next() {
		var typ, at, payload string
		if err := rows.Scan(&typ, &at, &payload); err != nil {
			return nil, fmt.Errorf("read trace %s: %w", traceID, err)
		}
		f.eventCount++
		p := decodeObject([]byte(payload))
		switch typ {
		case event.TypeTraceStarted:
			f.title, f.workflow, f.startedAt = str(p["title"]), str(p["workflow"]), at
			pe := obj(p["primary_entity"])
			f.entityType, f.entityID = str(pe["entity_type"]), str(pe["entity_id"])
		case event.TypeTraceFinished:
			f.outcome, f.finished = str(p["outcome"]), at
		case event.TypeExceptionRequested:
			f.hasException = true
		case event.TypePolicyEvaluated:
			pol := obj(p["policy"])
			f.policyID, f.policyVersion = str(pol["policy_id"]), str(pol["policy_version"])
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read trace %s: %w", traceID, err)
	}
	if f.eventCount == 0 {
		return nil, errf(CodeNotFound, "Trace not found: %s", traceID)
	}
	if f.title == "" {
		f.title = traceID
	}
	return f, nil
}

// precedents are finished traces of the tenant sharing the trace's
// primary entity or policy, with the trace's outcome when it has one;
// at most 6 are read and 4 kept.
func (s *Service) precedents(ctx context.Context, tenant string, f *traceFacts) ([]map[string]any, error) {
	// Candidates through the entity and policy indexes (a UNION, so each
	// side uses its index), then the finished ones with the same outcome.
	rows, err := s.pool.Query(ctx, `WITH cand AS (
			SELECT trace_id FROM dg_trace_summary WHERE tenant_id = $1 AND primary_entity_type = $3 AND primary_entity_id = $4
			UNION
			SELECT trace_id FROM dg_precedent_index WHERE tenant_id = $1 AND $6 <> '' AND policy_id = $6)
		SELECT ts.trace_id, ts.workflow, ts.title, coalesce(ts.outcome, ''), coalesce(ts.finished_at, '')
		FROM cand JOIN dg_trace_summary ts ON ts.tenant_id = $1 AND ts.trace_id = cand.trace_id
		WHERE ts.trace_id <> $2 AND ts.finished_at IS NOT NULL AND ($5 = '' OR ts.outcome = $5)
		ORDER BY ts.finished_at DESC, ts.trace_id LIMIT 6`, tenant, f.traceID, f.entityType, f.entityID, f.outcome, f.policyID)
	if err != nil {
		return nil, fmt.Errorf("search precedents: %w", err)
	}
	defer rows.Close()
	out := []map[string]any{}
	for rows.Next() {
		var id, wf, title, outcome, fin string
		if err := rows.Scan(&id, &wf, &title, &outcome, &fin); err != nil {
			return nil, fmt.Errorf("search precedents: %w", err)
		}
		out = append(out, map[string]any{"trace_id": id, "workflow": wf, "title": title, "outcome": strJSON(outcome),
			"finished_at": strJSON(fin), "policy_id": strJSON(f.policyID), "policy_version": strJSON(f.policyVersion)})
	}
	if len(out) > 4 {
		out = out[:4]
	}
	return out, rows.Err()
}

// Overview is the studio's dry run for a trace (A.12).
type Overview struct {
	TraceID  string
	Template Template
	Draft    map[string]any
	Data     map[string]any
	facts    *traceFacts
}

// TraceOverview refreshes the tenant and builds the studio view of a
// trace with the requested template (unknown: a default by the trace).
func (s *Service) TraceOverview(ctx context.Context, tenant, traceID, templateID string) (*Overview, error) {
	if _, err := s.Refresh(ctx, tenant); err != nil {
		return nil, err
	}
	return s.overview(ctx, tenant, traceID, templateID)
}

func (s *Service) overview(ctx context.Context, tenant, traceID, templateID string) (*Overview, error) {
	f, err := s.traceFacts(ctx, tenant, traceID)
	if err != nil {
		return nil, err
	}
	tpl, ok := templateByID(templateID)
	if !ok {
		switch {
		case f.hasException:
			tpl, _ = templateByID("exception_follow_up")
		case unfavorable[f.outcome]:
			tpl, _ = templateByID("incident_triage")
		default:
			tpl, _ = templateByID("precedent_gap_review")
		}
	}
	hits, err := s.precedents(ctx, tenant, f)
	if err != nil {
		return nil, err
	}
	var signals []string
	if f.hasException {
		signals = append(signals, "exception requested")
	}
	if unfavorable[f.outcome] {
		signals = append(signals, "unfavorable outcome")
	}
	if f.finished == "" {
		signals = append(signals, "trace still active")
	}
	if len(hits) == 0 {
		signals = append(signals, "no close precedents")
	}
	divergence := false
	if f.outcome != "" && len(hits) > 0 {
		outs := map[string]bool{}
		for _, h := range hits {
			if o, ok := h["outcome"].(string); ok {
				outs[o] = true
			}
		}
		divergence = len(outs) > 1 || !outs[f.outcome]
	}
	if divergence {
		signals = append(signals, "precedent divergence")
	}
	priority := "normal"
	switch {
	case f.hasException || unfavorable[f.outcome]:
		priority = "urgent"
	case divergence || f.finished == "":
		priority = "high"
	}
	projection := "trace_summary"
	if len(signals) > 2 {
		projection = "all"
	}
	reason := "operator review requested"
	if len(signals) > 0 {
		reason = tpl.Title + " opened for " + f.title + ": " + strings.Join(signals, ", ")
	}
	if signals == nil {
		signals = []string{}
	}
	wid := traceID + ":" + SubjectTraceReview + ":" + tpl.TemplateID
	simulation := map[string]any{"policy_id": strJSON(f.policyID), "policy_version": strJSON(f.policyVersion), "priority": priority,
		"recommended_reason": reason, "risk_signals": signals, "trace_outcome": strJSON(f.outcome)}
	draft := map[string]any{
		"workflow_id": wid, "subject_type": SubjectTraceReview, "subject_id": tpl.TemplateID, "workflow_kind": tpl.WorkflowKind,
		"workflow_name": tpl.TemplateID, "assigned_role": tpl.ReviewerRole, "priority": priority, "sla_hours": tpl.DefaultSLAHours,
		"policy_id": strJSON(f.policyID), "policy_version": strJSON(f.policyVersion), "reason": reason,
		"title": "Incident review for " + f.title,
	}
	existing, err := s.traceItems(ctx, tenant, traceID)
	if err != nil {
		return nil, err
	}
	replay := map[string]any{"mode": "catch_up", "projection": projection, "reason": "workflow studio review for " + f.title}
	data := map[string]any{
		"trace_id": traceID, "template": tpl, "templates": Templates(), "draft": draft, "simulation": simulation,
		"replay_suggestion": replay, "precedent_preview": hits, "existing_workflows": existing,
	}
	return &Overview{TraceID: traceID, Template: tpl, Draft: draft, Data: data, facts: f}, nil
}

func (s *Service) traceItems(ctx context.Context, tenant, traceID string) ([]any, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+itemSelect+` FROM dg_workflow_items WHERE tenant_id = $1 AND trace_id = $2
		ORDER BY requested_at, workflow_id COLLATE "C"`, tenant, traceID)
	if err != nil {
		return nil, fmt.Errorf("read workflows of trace %s: %w", traceID, err)
	}
	items, err := collectItems(rows)
	if err != nil {
		return nil, fmt.Errorf("read workflows of trace %s: %w", traceID, err)
	}
	now := s.now()
	out := make([]any, len(items))
	for k, it := range items {
		out[k] = it.JSON(now)
	}
	return out, nil
}

// reviewContext is the detail's studio view of an item's trace.
func (s *Service) reviewContext(ctx context.Context, tenant string, it *Item) (map[string]any, error) {
	tplID := ""
	if rt := obj(it.Metadata["review_template"]); rt != nil {
		tplID = str(rt["template_id"])
	}
	ov, err := s.overview(ctx, tenant, it.TraceID, tplID)
	if err != nil {
		return nil, err
	}
	f := ov.facts
	summary := map[string]any{"trace_id": f.traceID, "title": f.title, "workflow": strJSON(f.workflow),
		"primary_entity_type": strJSON(f.entityType), "primary_entity_id": strJSON(f.entityID),
		"started_at": strJSON(f.startedAt), "finished_at": strJSON(f.finished), "outcome": strJSON(f.outcome), "event_count": f.eventCount}
	return map[string]any{
		"existing_workflows": ov.Data["existing_workflows"], "precedent_preview": ov.Data["precedent_preview"],
		"recommended_replay": ov.Data["replay_suggestion"], "simulation": ov.Data["simulation"],
		"trace_summary": summary, "templates": ov.Data["templates"],
	}, nil
}

// StartReviewResult is the answer of StartReview.
type StartReviewResult struct {
	Created         bool
	AppendedEventID string
	Item            *Item
	ReviewContext   map[string]any
	Now             time.Time
}

// JSON is the response data.
func (r *StartReviewResult) JSON() map[string]any {
	var appended any
	if r.AppendedEventID != "" {
		appended = r.AppendedEventID
	}
	var rc any
	if r.ReviewContext != nil {
		rc = r.ReviewContext
	}
	return map[string]any{"created": r.Created, "action": map[string]any{"appended_event_id": appended, "outcome": "start_review"},
		"workflow": r.Item.JSON(r.Now), "review_context": rc}
}

// StartReview opens a trace review from a studio template (A.12): reason
// first (400), then workflow_assign (403); an existing draft item is
// returned with Created false; otherwise WorkflowReviewRequested is
// appended and imported. A finished trace is a conflict (and a failure
// notification) before anything is appended.
func (s *Service) StartReview(ctx context.Context, tenant, traceID string, caller *Caller, templateID, reason, requestID string) (*StartReviewResult, error) {
	req := &ActionRequest{Action: "start_review", Reason: reason, RequestID: requestID}
	if strings.TrimSpace(reason) == "" {
		return nil, errf(CodeInvalidArgument, "start_review requires a reason")
	}
	if caller == nil || caller.AccountID == "" {
		return nil, errf(CodeForbidden, "Service account context is required to start workflow reviews")
	}
	if !caller.Can(PermAssign) {
		s.auditAction(ctx, tenant, traceID, caller, req, audit.Rejected, "Service account lacks workflow_assign permission")
		return nil, errf(CodeForbidden, "Service account lacks %s permission", PermAssign)
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ov, err := s.TraceOverview(ctx, tenant, traceID, templateID)
	if err != nil {
		return nil, err
	}
	wid := ov.Draft["workflow_id"].(string)
	if it, err := loadItem(ctx, s.pool, tenant, wid, false); err == nil {
		rc, _ := s.reviewContext(ctx, tenant, it)
		return &StartReviewResult{Created: false, Item: it, ReviewContext: rc, Now: s.now()}, nil
	} else if !isNotFound(err) {
		return nil, err
	}
	if ov.facts.finished != "" {
		ferr := &Error{Code: CodeConflict, Message: fmt.Sprintf("trace %s is already finished: a review cannot be started on it", traceID),
			Details: map[string]any{"trace_id": traceID}}
		placeholder := &Item{TenantID: tenant, WorkflowID: wid, TraceID: traceID, AssignedRole: ov.Template.ReviewerRole}
		s.recordFailure(ctx, placeholder, caller, req, firstNonBlank(requestID, newUUID()), ferr)
		return nil, ferr
	}
	appended, err := s.appendReview(ctx, tenant, ov, caller, reason)
	if err != nil {
		placeholder := &Item{TenantID: tenant, WorkflowID: wid, TraceID: traceID, AssignedRole: ov.Template.ReviewerRole}
		s.recordFailure(ctx, placeholder, caller, req, firstNonBlank(requestID, newUUID()), err)
		return nil, err
	}
	if _, err := s.Refresh(ctx, tenant); err != nil {
		return nil, err
	}
	it, err := loadItem(ctx, s.pool, tenant, wid, false)
	if err != nil {
		return nil, err
	}
	s.auditAction(ctx, tenant, wid, caller, req, audit.Accepted, "")
	rc, _ := s.reviewContext(ctx, tenant, it)
	return &StartReviewResult{Created: true, AppendedEventID: appended, Item: it, ReviewContext: rc, Now: s.now()}, nil
}

func (s *Service) appendReview(ctx context.Context, tenant string, ov *Overview, caller *Caller, reason string) (string, error) {
	tpl := ov.Template
	subsystem := "workflow"
	for attempt := 0; ; attempt++ {
		var seq int64
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(trace_seq), -1) + 1 FROM dg_event_log WHERE tenant_id = $1 AND trace_id = $2`,
			tenant, ov.TraceID).Scan(&seq); err != nil {
			return "", fmt.Errorf("next trace_seq of %s: %w", ov.TraceID, err)
		}
		env := &event.Envelope{
			EventID:        fmt.Sprintf("%s-workflow-review-requested-%d", ov.TraceID, seq),
			TraceID:        ov.TraceID,
			TraceSeq:       seq,
			EventType:      event.TypeWorkflowReviewRequested,
			OccurredAt:     FormatTime(s.now()),
			Source:         event.Source{ProducerID: "workflow-studio", System: "decisiongraph-api", Subsystem: &subsystem},
			Actor:          event.Actor{ActorType: "role", ActorID: caller.AccountID},
			IdempotencyKey: "workflow-review-request:" + ov.TraceID + ":" + tpl.TemplateID,
			Payload: map[string]any{
				"assignee":             map[string]any{"account_id": nil, "role": tpl.ReviewerRole},
				"policy_id":            ov.Draft["policy_id"],
				"policy_version":       ov.Draft["policy_version"],
				"priority":             ov.Draft["priority"],
				"reason":               reason,
				"simulation":           ov.Data["simulation"],
				"sla_hours":            tpl.DefaultSLAHours,
				"subject":              map[string]any{"subject_id": tpl.TemplateID, "subject_type": SubjectTraceReview},
				"template_description": tpl.Description,
				"template_id":          tpl.TemplateID,
				"title":                ov.Draft["title"],
				"workflow_kind":        tpl.WorkflowKind,
			},
		}
		env.ApplyDefaults()
		res, err := s.log.Append(ctx, tenant, env)
		if err == nil {
			return res.Event.EventID, nil
		}
		if c, ok := event.CodeOf(err); ok && c == event.CodeEventSequenceInvalid && attempt < 3 {
			continue
		}
		return "", fmt.Errorf("append review request for trace %s: %w", ov.TraceID, err)
	}
}
