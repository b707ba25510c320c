package workflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/pkg/audit"
	"github.com/decisiongraph/dg/pkg/event"
)

// Action names (A.7), plus dg's claim and release.
const (
	ActApprove       = "approve"
	ActReject        = "reject"
	ActRequestChange = "request_change"
	ActComment       = "comment"
	ActReassign      = "reassign"
	ActEscalate      = "escalate"
	ActOverride      = "override"
	ActClaim         = "claim"
	ActRelease       = "release"
)

// Permissions (HTTP spec §3.5).
const (
	PermReview   = "workflow_review"
	PermAssign   = "workflow_assign"
	PermEscalate = "workflow_escalate"
	PermOverride = "workflow_override"
	PermExport   = "workflow_export"
)

// ActionPermission maps each action to the permission it needs.
var ActionPermission = map[string]string{
	ActApprove: PermReview, ActReject: PermReview, ActRequestChange: PermReview, ActComment: PermReview,
	ActReassign: PermAssign, ActClaim: PermAssign, ActRelease: PermAssign,
	ActEscalate: PermEscalate, ActOverride: PermOverride,
}

// Actions lists the action names in a stable order.
var Actions = []string{ActApprove, ActReject, ActRequestChange, ActComment, ActReassign, ActEscalate, ActOverride, ActClaim, ActRelease}

// Caller is the authenticated service account acting.
type Caller struct {
	AccountID   string
	Permissions []string
}

// Can reports whether the caller holds permission ("*" grants all).
func (c *Caller) Can(permission string) bool {
	if c == nil {
		return false
	}
	for _, p := range c.Permissions {
		if p == "*" || p == permission {
			return true
		}
	}
	return false
}

// ActionRequest is the body of POST /api/v1/workflows/{id}/actions.
type ActionRequest struct {
	Action            string `json:"action"`
	Reason            string `json:"reason,omitempty"`
	Note              string `json:"note,omitempty"`
	Evidence          any    `json:"evidence,omitempty"`
	AssignedAccountID string `json:"assigned_account_id,omitempty"`
	AssignedRole      string `json:"assigned_role,omitempty"`
	ConfirmText       string `json:"confirm_text,omitempty"`
	// IdempotencyKey (the Idempotency-Key header) makes a retried request
	// apply once: every retry gets the first answer.
	IdempotencyKey string `json:"-"`
	// RequestID is the HTTP request id (for event idempotency keys and audit).
	RequestID string `json:"-"`
}

// ActionResult is the answer of Act.
type ActionResult struct {
	Outcome         string
	AppendedEventID string
	EscalatedTo     string
	Item            *Item
	Now             time.Time
	// Replayed is true when the answer is the stored answer of an earlier
	// request with the same Idempotency-Key.
	Replayed bool
	stored   map[string]any
}

// JSON is the response data {action, workflow}.
func (r *ActionResult) JSON() map[string]any {
	if r.stored != nil {
		return r.stored
	}
	act := map[string]any{"outcome": r.Outcome}
	if r.AppendedEventID != "" {
		act["appended_event_id"] = r.AppendedEventID
	}
	if r.EscalatedTo != "" {
		act["escalated_to"] = r.EscalatedTo
	}
	return map[string]any{"action": act, "workflow": r.Item.JSON(r.Now)}
}

// NormalizeAction lower-cases and checks an action name.
func NormalizeAction(a string) (string, error) {
	a = strings.ToLower(strings.TrimSpace(a))
	if a == "" {
		return "", errf(CodeInvalidArgument, "action is required")
	}
	if a == "export" {
		return "", errf(CodeInvalidArgument, "export is not an action; use GET /api/v1/admin/workflows/{workflow_id}/export")
	}
	if _, ok := ActionPermission[a]; !ok {
		return "", errf(CodeInvalidArgument, "Unsupported workflow action %q", a)
	}
	return a, nil
}

// CheckTransition is the transition check of A.7.1 (with dg's claim and
// release): nil when action may run on an item of kind in status.
func CheckTransition(wid, kind, status, action string) error {
	switch {
	case action == ActComment:
		return nil
	case action == ActEscalate && status == StatusEscalated:
		return errf(CodeInvalidArgument, "Workflow %s is already escalated", wid)
	case IsTerminal(status):
		return errf(CodeInvalidArgument, "Workflow %s is already %s", wid, status)
	case action == ActOverride && kind != KindExceptionReview:
		return errf(CodeInvalidArgument, "Workflow %s is a %s; overrides are only for exception reviews", wid, kind)
	case action == ActClaim && status == StatusInReview:
		return errf(CodeInvalidArgument, "Workflow %s is already in review; release it or reassign it first", wid)
	case action == ActRelease && status != StatusInReview:
		return errf(CodeInvalidArgument, "Workflow %s is not claimed (status %s); only in_review items can be released", wid, status)
	}
	return nil
}

// NextStatus is the status an allowed action leads to (A.7.2).
func NextStatus(status, action string) string {
	switch action {
	case ActApprove:
		return StatusApproved
	case ActReject:
		return StatusRejected
	case ActRequestChange:
		return StatusChangesRequested
	case ActEscalate:
		return StatusEscalated
	case ActOverride:
		return StatusOverridden
	case ActClaim:
		return StatusInReview
	case ActRelease:
		return StatusRequested
	}
	return status // comment, reassign
}

// OverridePhrase is the confirm_text an override of wid needs.
func OverridePhrase(wid string) string { return "OVERRIDE " + strings.ToUpper(wid) }

// validate is the action-specific validation (after the transition check).
func validate(wid string, req *ActionRequest) error {
	switch req.Action {
	case ActApprove, ActReject, ActRequestChange, ActEscalate, ActOverride:
		if strings.TrimSpace(req.Reason) == "" {
			return errf(CodeInvalidArgument, "%s requires a reason", req.Action)
		}
	case ActComment:
		if strings.TrimSpace(req.Note) == "" && strings.TrimSpace(req.Reason) == "" {
			return errf(CodeInvalidArgument, "Comment note is required")
		}
	case ActReassign:
		if strings.TrimSpace(req.AssignedAccountID) == "" && strings.TrimSpace(req.AssignedRole) == "" {
			return errf(CodeInvalidArgument, "reassign requires assigned_account_id or assigned_role")
		}
	}
	if req.Action == ActOverride && req.ConfirmText != OverridePhrase(wid) {
		return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("override requires confirm_text %q", OverridePhrase(wid)),
			Details: map[string]any{"expected_confirm_text": OverridePhrase(wid)}}
	}
	return nil
}

// normalizeEvidence turns evidence into a list of objects: scalars become
// {"value": "<string>"}; anything but a list (or absent) is an error.
func normalizeEvidence(v any) ([]any, error) {
	if v == nil {
		return []any{}, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, errf(CodeInvalidArgument, "evidence must be a list")
	}
	out := make([]any, len(l))
	for k, e := range l {
		if m, ok := e.(map[string]any); ok {
			out[k] = m
			continue
		}
		out[k] = map[string]any{"value": fmt.Sprint(e)}
	}
	return out, nil
}

// Act runs one action on an item (A.7): normalise → refresh → load (404)
// → permission (403) → transition (400) → validation (400) → apply.
// Decisions are appended as ApprovalRecorded events and imported; every
// other action is recorded in the action history.
func (s *Service) Act(ctx context.Context, tenant, wid string, caller *Caller, req ActionRequest) (*ActionResult, error) {
	action, err := NormalizeAction(req.Action)
	if err != nil {
		return nil, err
	}
	req.Action = action
	evidence, err := normalizeEvidence(req.Evidence)
	if err != nil {
		return nil, err
	}
	req.Evidence = evidence
	if caller == nil || caller.AccountID == "" {
		return nil, errf(CodeForbidden, "Service account context is required for workflow actions")
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if req.IdempotencyKey == "" {
		return s.act(ctx, tenant, wid, caller, &req)
	}
	return s.actOnce(ctx, tenant, wid, caller, &req)
}

// actOnce applies a keyed request at most once: a transaction-scoped
// advisory lock on (tenant, account, key) serialises retries, the first
// answer is stored with the key and returned to every later retry; a
// retry with a different request is an idempotency_conflict.
func (s *Service) actOnce(ctx context.Context, tenant, wid string, caller *Caller, req *ActionRequest) (*ActionResult, error) {
	body, _ := json.Marshal(req)
	sum := sha256.Sum256(append([]byte(wid+"\x00"), body...))
	hash := hex.EncodeToString(sum[:])
	var res *ActionResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7))`,
			tenant+"\x1f"+caller.AccountID+"\x1f"+req.IdempotencyKey); err != nil {
			return fmt.Errorf("lock idempotency key: %w", err)
		}
		var storedHash, storedWID string
		var raw []byte
		err := tx.QueryRow(ctx, `SELECT request_hash, workflow_id, response::text FROM dg_workflow_action_requests
			WHERE tenant_id = $1 AND account_id = $2 AND idempotency_key = $3`, tenant, caller.AccountID, req.IdempotencyKey).Scan(&storedHash, &storedWID, &raw)
		switch {
		case err == nil:
			if storedHash != hash {
				return &Error{Code: CodeIdempotencyConflict, Message: fmt.Sprintf("Idempotency-Key %q was used for a different request", req.IdempotencyKey),
					Details: map[string]any{"workflow_id": storedWID}}
			}
			res = &ActionResult{Replayed: true, stored: decodeObject(raw)}
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read idempotency key: %w", err)
		}
		r, err := s.act(ctx, tenant, wid, caller, req)
		if err != nil {
			return err
		}
		resp, err := json.Marshal(r.JSON())
		if err != nil {
			return fmt.Errorf("encode action answer: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO dg_workflow_action_requests (tenant_id, account_id, idempotency_key, workflow_id,
			request_hash, response, created_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)`,
			tenant, caller.AccountID, req.IdempotencyKey, wid, hash, string(resp), s.now()); err != nil {
			return fmt.Errorf("store idempotency key: %w", err)
		}
		res = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (s *Service) auditAction(ctx context.Context, tenant, wid string, caller *Caller, req *ActionRequest, outcome, reason string) {
	if reason == "" {
		reason = req.Reason
	}
	if err := s.audit.Record(ctx, audit.Entry{
		Tenant: tenant, ActorID: caller.AccountID, Action: "workflow_" + req.Action, Outcome: outcome,
		TargetType: "workflow", TargetID: wid, Reason: reason, RequestID: req.RequestID,
	}); err != nil {
		s.lg.Error("audit write failed; the workflow action stands", "tenant_id", tenant, "workflow_id", wid, "err", err)
	}
}

func (s *Service) act(ctx context.Context, tenant, wid string, caller *Caller, req *ActionRequest) (*ActionResult, error) {
	if _, err := s.Refresh(ctx, tenant); err != nil {
		return nil, err
	}
	switch req.Action {
	case ActApprove, ActReject, ActOverride:
		return s.decide(ctx, tenant, wid, caller, req)
	}
	var res *ActionResult
	err := s.inTenantTx(ctx, tenant, func(tx pgx.Tx, cursor int64) (int64, error) {
		it, err := s.check(ctx, tx, tenant, wid, caller, req)
		if err != nil {
			return cursor, err
		}
		res, err = s.applyManual(ctx, tx, it, caller, req)
		return cursor, err
	})
	if err != nil {
		return nil, err
	}
	s.auditAction(ctx, tenant, wid, caller, req, audit.Accepted, "")
	return res, nil
}

// check loads the item and runs permission, transition and validation,
// auditing a refusal.
func (s *Service) check(ctx context.Context, q dbtx, tenant, wid string, caller *Caller, req *ActionRequest) (*Item, error) {
	it, err := loadItem(ctx, q, tenant, wid, true)
	if err != nil {
		return nil, err
	}
	perm := ActionPermission[req.Action]
	if !caller.Can(perm) {
		err = errf(CodeForbidden, "Service account lacks %s permission", perm)
	} else if err = CheckTransition(wid, it.Kind, it.Status, req.Action); err == nil {
		err = validate(wid, req)
	}
	if err != nil {
		s.auditAction(ctx, tenant, wid, caller, req, audit.Rejected, err.Error())
		return nil, err
	}
	return it, nil
}

func (s *Service) applyManual(ctx context.Context, tx pgx.Tx, it *Item, caller *Caller, req *ActionRequest) (*ActionResult, error) {
	now := s.now()
	ch := newChanges()
	act := &Action{
		TenantID: it.TenantID, ActionID: "wfa:" + newUUID(), WorkflowID: it.WorkflowID, TraceID: it.TraceID, Type: req.Action,
		ActorID: caller.AccountID, ActorType: "role", ActorAccountID: caller.AccountID, CreatedAt: now,
		Payload: map[string]any{"evidence": req.Evidence},
	}
	res := &ActionResult{Outcome: req.Action, Item: it, Now: now}
	switch req.Action {
	case ActRequestChange:
		it.Status, it.CurrentReason, it.ResolvedAt = StatusChangesRequested, req.Reason, time.Time{}
		act.Note = req.Reason
	case ActComment:
		act.Note = req.Note
		if strings.TrimSpace(act.Note) == "" {
			act.Note = req.Reason
		}
	case ActReassign:
		it.AssignedAccountID, it.AssignedRole = strings.TrimSpace(req.AssignedAccountID), strings.TrimSpace(req.AssignedRole)
		act.Note = req.Note
		act.Payload = map[string]any{"assigned_account_id": strJSON(it.AssignedAccountID), "assigned_role": strJSON(it.AssignedRole)}
		ch.notes = append(ch.notes, assignmentNote(it, now, "Workflow "+it.WorkflowID+" reassigned to ", map[string]any{"source": "manual_reassign"}))
	case ActClaim:
		prev := map[string]any{"assigned_account_id": strJSON(it.AssignedAccountID), "assigned_role": strJSON(it.AssignedRole), "status": it.Status}
		it.Status, it.AssignedAccountID = StatusInReview, caller.AccountID
		act.Note = firstNonBlank(req.Note, req.Reason)
		act.Payload = map[string]any{"assigned_account_id": caller.AccountID, "previous": prev}
		ch.notes = append(ch.notes, assignmentNote(it, now, "Workflow "+it.WorkflowID+" claimed by ", map[string]any{"source": "claim"}))
	case ActRelease:
		prev := map[string]any{"assigned_account_id": strJSON(it.AssignedAccountID), "assigned_role": strJSON(it.AssignedRole)}
		it.Status, it.AssignedAccountID = StatusRequested, ""
		if it.AssignedRole == "" {
			it.AssignedRole = s.cfg.DefaultAssignedRole
		}
		act.Note = firstNonBlank(req.Note, req.Reason)
		act.Payload = map[string]any{"previous_assignment": prev}
		ch.notes = append(ch.notes, assignmentNote(it, now, "Workflow "+it.WorkflowID+" released to ", map[string]any{"source": "release"}))
	case ActEscalate:
		esc, note := escalate(it, s.cfg, now, caller.AccountID, req.Reason, "manual_escalation")
		esc.Payload["evidence"] = req.Evidence
		act = esc
		ch.notes = append(ch.notes, note)
		res.EscalatedTo = assigneeLabel(it.AssignedAccountID, it.AssignedRole)
	}
	if req.Action != ActEscalate {
		it.LastActionType, it.LastActionAt, it.UpdatedAt = req.Action, now, now
	}
	act.ResultingStatus = it.Status
	ch.put(it)
	ch.actions = append(ch.actions, act)
	if err := s.write(ctx, tx, ch, true); err != nil {
		return nil, err
	}
	return res, nil
}

func firstNonBlank(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// decide handles approve, reject and override: append ApprovalRecorded
// through the normal append path, then import it. The check, the append
// and the import run under the tenant's runtime row lock, so two
// concurrent decisions on one item cannot both pass the transition check
// (the second sees the first one's result and is refused).
func (s *Service) decide(ctx context.Context, tenant, wid string, caller *Caller, req *ActionRequest) (*ActionResult, error) {
	unique := newUUID()
	if req.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte(req.IdempotencyKey))
		unique = hex.EncodeToString(sum[:8])
	}
	failKey := firstNonBlank(req.IdempotencyKey, req.RequestID, unique)
	var it, after *Item
	var appended string
	var failure error
	err := s.inTenantTx(ctx, tenant, func(tx pgx.Tx, cursor int64) (int64, error) {
		var err error
		if it, err = s.check(ctx, tx, tenant, wid, caller, req); err != nil {
			return cursor, err
		}
		var finished bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dg_event_log WHERE tenant_id = $1 AND trace_id = $2 AND event_type = 'TraceFinished')`,
			tenant, it.TraceID).Scan(&finished); err != nil {
			return cursor, fmt.Errorf("check trace %s: %w", it.TraceID, err)
		}
		if finished {
			failure = &Error{Code: CodeConflict, Message: fmt.Sprintf("trace %s is already finished: %s cannot be recorded on workflow %s (decisions are appended to the trace)", it.TraceID, req.Action, wid),
				Details: map[string]any{"trace_id": it.TraceID}}
			return cursor, failure
		}
		if appended, err = s.appendDecision(ctx, tx, tenant, it, caller, req, unique, failKey); err != nil {
			failure = err
			return cursor, err
		}
		res, err := s.refreshTx(ctx, tx, tenant, cursor, s.now())
		if err != nil {
			return cursor, err
		}
		if after, err = loadItem(ctx, tx, tenant, wid, false); err != nil {
			return cursor, err
		}
		return res.Cursor, nil
	})
	if err != nil {
		if failure != nil && it != nil {
			s.recordFailure(ctx, it, caller, req, failKey, failure)
		}
		return nil, err
	}
	s.auditAction(ctx, tenant, wid, caller, req, audit.Accepted, "")
	return &ActionResult{Outcome: req.Action, AppendedEventID: appended, Item: after, Now: s.now()}, nil
}

// recordFailure writes the failure notification and audit of a decision
// that could not be appended.
func (s *Service) recordFailure(ctx context.Context, it *Item, caller *Caller, req *ActionRequest, key string, cause error) {
	note := &Notification{
		TenantID: it.TenantID, WorkflowID: it.WorkflowID, TraceID: it.TraceID, Category: CategoryFailure,
		Message:            "Workflow " + it.WorkflowID + " failed to record " + req.Action + ": " + cause.Error(),
		RecipientAccountID: it.AssignedAccountID, RecipientRole: it.AssignedRole,
		Payload:   map[string]any{"action": req.Action, "error": cause.Error()},
		DedupeKey: "failure:" + it.WorkflowID + ":" + req.Action + ":" + key, CreatedAt: s.now(),
	}
	if _, err := insertNotifications(ctx, s.pool, s.cfg.Webhooks, []*Notification{note}); err != nil {
		s.lg.Error("could not record a workflow failure notification", "tenant_id", it.TenantID, "workflow_id", it.WorkflowID, "err", err)
	}
	s.auditAction(ctx, it.TenantID, it.WorkflowID, caller, req, audit.Rejected, cause.Error())
}

func (s *Service) appendDecision(ctx context.Context, q dbtx, tenant string, it *Item, caller *Caller, req *ActionRequest, unique, key string) (string, error) {
	subject := map[string]any{"subject_id": it.SubjectID, "subject_type": it.SubjectType}
	decision := "approved"
	switch req.Action {
	case ActReject:
		decision = "rejected"
	case ActOverride:
		subject = map[string]any{"subject_id": it.WorkflowID, "subject_type": SubjectOverride}
	}
	idem := "workflow:" + it.WorkflowID + ":" + req.Action + ":" + key
	if len(idem) > 190 {
		idem = idem[:190]
	}
	subsystem := "workflow"
	for attempt := 0; ; attempt++ {
		var seq int64
		if err := q.QueryRow(ctx, `SELECT coalesce(max(trace_seq), -1) + 1 FROM dg_event_log WHERE tenant_id = $1 AND trace_id = $2`,
			tenant, it.TraceID).Scan(&seq); err != nil {
			return "", fmt.Errorf("next trace_seq of %s: %w", it.TraceID, err)
		}
		approver := map[string]any{"actor_id": caller.AccountID, "actor_type": "role"}
		env := &event.Envelope{
			EventID:        fmt.Sprintf("%s-approval-recorded-%d-%s", it.TraceID, seq, unique),
			TraceID:        it.TraceID,
			TraceSeq:       seq,
			EventType:      event.TypeApprovalRecorded,
			OccurredAt:     FormatTime(s.now()),
			Source:         event.Source{ProducerID: "workflow-service", System: "decisiongraph-api", Subsystem: &subsystem},
			Actor:          event.Actor{ActorType: "role", ActorID: caller.AccountID},
			IdempotencyKey: idem,
			Payload: map[string]any{
				"approval_id": "approval:" + it.WorkflowID + ":" + unique,
				"approver":    approver,
				"decision":    decision,
				"evidence":    req.Evidence,
				"reason":      req.Reason,
				"subject":     subject,
			},
		}
		env.ApplyDefaults()
		res, err := s.log.Append(ctx, tenant, env)
		if err == nil {
			return res.Event.EventID, nil
		}
		if c, ok := event.CodeOf(err); ok && c == event.CodeEventSequenceInvalid && attempt < 3 {
			continue // another writer took the trace_seq: recompute and retry
		}
		return "", fmt.Errorf("append %s decision for %s: %w", req.Action, it.WorkflowID, err)
	}
}
