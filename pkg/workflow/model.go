// Package workflow is dg's review workflow runtime (workflows spec Part A).
//
// The event log stays the source of truth for decisions. Items, actions
// and notifications are operational state derived from three managed event
// types (ExceptionRequested, ApprovalRecorded, WorkflowReviewRequested)
// plus the human-side records of actions that are not decisions.
//
// Decisions (approve, reject, override) and studio reviews are appended as
// events through the normal append path and then imported; every other
// action (comment, request_change, reassign, escalate, claim, release)
// lives only in the workflow tables. Imports run per tenant from a cursor
// on log_seq; the SLA sweep produces deadline-risk notifications and
// escalates overdue items. Both run before every read (so reads are never
// stale) and, inside dg up, continuously from a Runtime (so escalation is
// on time even when nobody reads). Notifications are a durable outbox:
// rows for the operator console and, per configured webhook, delivery rows
// that a Deliverer POSTs with an HMAC signature and retries with backoff.
package workflow

import (
	"strings"
	"time"
)

// Statuses (A.4).
const (
	StatusRequested        = "requested"
	StatusInReview         = "in_review"
	StatusChangesRequested = "changes_requested"
	StatusEscalated        = "escalated"
	StatusApproved         = "approved"
	StatusRejected         = "rejected"
	StatusOverridden       = "overridden"
)

// OpenStatuses are the statuses of items still awaiting a decision.
var OpenStatuses = []string{StatusRequested, StatusInReview, StatusChangesRequested, StatusEscalated}

// IsOpen reports whether status is an open status.
func IsOpen(status string) bool {
	switch status {
	case StatusRequested, StatusInReview, StatusChangesRequested, StatusEscalated:
		return true
	}
	return false
}

// IsTerminal reports whether status is approved, rejected or overridden.
func IsTerminal(status string) bool {
	switch status {
	case StatusApproved, StatusRejected, StatusOverridden:
		return true
	}
	return false
}

// Kinds and subject types (A.3).
const (
	KindExceptionReview = "exception_review"
	KindIncidentReview  = "incident_review"
	KindOverrideReview  = "override_review"

	SubjectException   = "exception"
	SubjectTraceReview = "trace_review"
	SubjectOverride    = "override"
)

// Notification categories (A.10).
const (
	CategoryAssignment   = "assignment"
	CategoryApproval     = "approval"
	CategoryDeadlineRisk = "deadline_risk"
	CategoryEscalation   = "escalation"
	CategoryFailure      = "failure"
)

// Priorities, in queue order.
var priorities = []string{"urgent", "high", "normal", "low"}

// NormalizePriority lower-cases and checks a priority; ok is false for
// anything outside urgent, high, normal, low.
func NormalizePriority(p string) (string, bool) {
	p = strings.ToLower(strings.TrimSpace(p))
	for _, q := range priorities {
		if p == q {
			return p, true
		}
	}
	return "", false
}

// Actor is who did something.
type Actor struct {
	ActorID   string `json:"actor_id"`
	ActorType string `json:"actor_type"`
}

// Item is one reviewable item (a dg_workflow_items row). Empty strings and
// zero times are NULL in the table and null in JSON.
type Item struct {
	TenantID           string
	WorkflowID         string
	TraceID            string
	Kind               string
	Name               string
	SubjectType        string
	SubjectID          string
	Status             string
	Priority           string
	Title              string
	PolicyID           string
	PolicyVersion      string
	RequestedBy        Actor
	AssignedAccountID  string
	AssignedRole       string
	RequestedAt        time.Time
	SLADueAt           time.Time
	UpdatedAt          time.Time
	ResolvedAt         time.Time
	LastActionType     string
	LastActionAt       time.Time
	CurrentDecision    string
	CurrentReason      string
	ApprovalEventID    string
	CreatedFromEventID string
	LastSourceLogSeq   int64
	Metadata           map[string]any
	deadlineRiskFor    time.Time
}

// Overdue is computed at read time: open, with a due date before now.
func (it *Item) Overdue(now time.Time) bool {
	return IsOpen(it.Status) && !it.SLADueAt.IsZero() && it.SLADueAt.Before(now)
}

// EscalationCount is metadata.escalation_count (0 when absent).
func (it *Item) EscalationCount() int {
	return intOf(it.Metadata["escalation_count"])
}

// assigneeLabel is the account, else the role, else "unassigned".
func assigneeLabel(account, role string) string {
	switch {
	case account != "":
		return account
	case role != "":
		return role
	}
	return "unassigned"
}

// Action is one entry of an item's history (a dg_workflow_actions row).
type Action struct {
	TenantID        string
	ActionID        string
	WorkflowID      string
	TraceID         string
	Type            string
	ActorID         string
	ActorType       string
	ActorAccountID  string
	Note            string
	Payload         map[string]any
	SourceEventID   string
	ResultingStatus string
	CreatedAt       time.Time
}

// Notification is one durable signal (a dg_workflow_notifications row).
type Notification struct {
	TenantID           string
	NotificationID     string
	WorkflowID         string
	TraceID            string
	Category           string
	Channel            string
	Status             string
	Message            string
	RecipientAccountID string
	RecipientRole      string
	Payload            map[string]any
	DedupeKey          string
	CreatedAt          time.Time
	DeliveredAt        time.Time
	// eventKeyed: the dedupe key names the source event (imported
	// approvals and failures), so it can be stored only if that event was
	// imported already, which the import cursor rules out.
	eventKeyed bool
}

// FormatTime renders t as RFC 3339 UTC with "Z" and fractional seconds
// only when they are non-zero; the zero time is "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func timeJSON(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return FormatTime(t)
}

func strJSON(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// JSON is the item row of the API (HTTP spec §10.8), overdue computed at now.
func (it *Item) JSON(now time.Time) map[string]any {
	md := it.Metadata
	if md == nil {
		md = map[string]any{}
	}
	var seq any
	if it.LastSourceLogSeq > 0 {
		seq = it.LastSourceLogSeq
	}
	return map[string]any{
		"workflow_id":           it.WorkflowID,
		"tenant_id":             it.TenantID,
		"trace_id":              it.TraceID,
		"workflow_kind":         it.Kind,
		"workflow_name":         it.Name,
		"subject":               map[string]any{"subject_id": it.SubjectID, "subject_type": it.SubjectType},
		"status":                it.Status,
		"priority":              it.Priority,
		"title":                 it.Title,
		"policy_id":             strJSON(it.PolicyID),
		"policy_version":        strJSON(it.PolicyVersion),
		"requested_by_actor":    map[string]any{"actor_id": strJSON(it.RequestedBy.ActorID), "actor_type": strJSON(it.RequestedBy.ActorType)},
		"assigned_account_id":   strJSON(it.AssignedAccountID),
		"assigned_role":         strJSON(it.AssignedRole),
		"requested_at":          timeJSON(it.RequestedAt),
		"sla_due_at":            timeJSON(it.SLADueAt),
		"updated_at":            timeJSON(it.UpdatedAt),
		"resolved_at":           timeJSON(it.ResolvedAt),
		"last_action_type":      strJSON(it.LastActionType),
		"last_action_at":        timeJSON(it.LastActionAt),
		"current_decision":      strJSON(it.CurrentDecision),
		"current_reason":        strJSON(it.CurrentReason),
		"approval_event_id":     strJSON(it.ApprovalEventID),
		"created_from_event_id": it.CreatedFromEventID,
		"last_source_log_seq":   seq,
		"metadata":              md,
		"overdue":               it.Overdue(now),
	}
}

// JSON is the action row of the API.
func (a *Action) JSON() map[string]any {
	p := a.Payload
	if p == nil {
		p = map[string]any{}
	}
	return map[string]any{
		"action_id":        a.ActionID,
		"action_type":      a.Type,
		"actor":            map[string]any{"account_id": strJSON(a.ActorAccountID), "actor_id": strJSON(a.ActorID), "actor_type": strJSON(a.ActorType)},
		"created_at":       timeJSON(a.CreatedAt),
		"note":             strJSON(a.Note),
		"payload":          p,
		"resulting_status": a.ResultingStatus,
		"source_event_id":  strJSON(a.SourceEventID),
		"trace_id":         a.TraceID,
		"workflow_id":      a.WorkflowID,
	}
}

// JSON is the notification row of the API.
func (n *Notification) JSON() map[string]any {
	p := n.Payload
	if p == nil {
		p = map[string]any{}
	}
	return map[string]any{
		"notification_id":      n.NotificationID,
		"workflow_id":          n.WorkflowID,
		"trace_id":             n.TraceID,
		"category":             n.Category,
		"channel":              n.Channel,
		"status":               n.Status,
		"message":              n.Message,
		"recipient_account_id": strJSON(n.RecipientAccountID),
		"recipient_role":       strJSON(n.RecipientRole),
		"payload":              p,
		"dedupe_key":           n.DedupeKey,
		"created_at":           timeJSON(n.CreatedAt),
		"delivered_at":         timeJSON(n.DeliveredAt),
	}
}
