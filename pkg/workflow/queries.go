package workflow

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Filter selects inbox items (A.9).
type Filter struct {
	Status            string
	AssignedAccountID string
	AssignedRole      string
	Priority          string
	TraceID           string
	OnlyOpen          bool
	OnlyOverdue       bool
	Limit             int
}

// Inbox limits.
const (
	DefaultLimit = 12
	MaxLimit     = 50
)

// ParseFilter reads the inbox query parameters with the reference's
// lenient rules: booleans accept true/false/1/0 (else the default),
// limit defaults to 12 and is capped at 50 (invalid: 12); an unknown
// priority is an invalid_argument error.
func ParseFilter(get func(string) string) (Filter, error) {
	f := Filter{
		Status:            strings.TrimSpace(get("status")),
		AssignedAccountID: strings.TrimSpace(get("assigned_account_id")),
		AssignedRole:      strings.TrimSpace(get("assigned_role")),
		TraceID:           strings.TrimSpace(get("trace_id")),
		OnlyOpen:          parseBool(get("only_open"), true),
		OnlyOverdue:       parseBool(get("only_overdue"), false),
		Limit:             DefaultLimit,
	}
	if p := strings.TrimSpace(get("priority")); p != "" {
		norm, ok := NormalizePriority(p)
		if !ok {
			return f, errf(CodeInvalidArgument, "Unsupported priority %q; use urgent, high, normal or low", p)
		}
		f.Priority = norm
	}
	if l, err := strconv.Atoi(strings.TrimSpace(get("limit"))); err == nil && l > 0 {
		f.Limit = min(l, MaxLimit)
	}
	return f, nil
}

func parseBool(s string, def bool) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true
	case "false", "0":
		return false
	}
	return def
}

// JSON is the normalised filter echoed by the inbox.
func (f Filter) JSON() map[string]any {
	return map[string]any{
		"status": strJSON(f.Status), "assigned_account_id": strJSON(f.AssignedAccountID),
		"assigned_role": strJSON(f.AssignedRole), "priority": strJSON(f.Priority), "trace_id": strJSON(f.TraceID),
		"only_open": f.OnlyOpen, "only_overdue": f.OnlyOverdue, "limit": f.Limit,
	}
}

// Summary counts a tenant's items (not filtered).
type Summary struct {
	TenantID               string `json:"tenant_id"`
	TotalCount             int64  `json:"total_count"`
	OpenCount              int64  `json:"open_count"`
	OverdueCount           int64  `json:"overdue_count"`
	RequestedCount         int64  `json:"requested_count"`
	ChangesRequestedCount  int64  `json:"changes_requested_count"`
	ApprovedCount          int64  `json:"approved_count"`
	RejectedCount          int64  `json:"rejected_count"`
	OverriddenCount        int64  `json:"overridden_count"`
	EscalatedCount         int64  `json:"escalated_count"`
	InReviewCount          int64  `json:"in_review_count"`
	NotificationCount      int64  `json:"notification_count"`
	PendingDeliveriesCount int64  `json:"pending_deliveries_count"`
}

// Inbox is the answer of List.
type Inbox struct {
	Filters Filter
	Items   []*Item
	Summary Summary
	Now     time.Time
}

// JSON is the inbox response data.
func (in *Inbox) JSON() map[string]any {
	items := make([]any, len(in.Items))
	for k, it := range in.Items {
		items[k] = it.JSON(in.Now)
	}
	return map[string]any{"filters": in.Filters.JSON(), "items": items, "summary": in.Summary}
}

// List refreshes the tenant and returns the inbox: overdue open items
// first, then priority urgent > high > normal > other, then requested_at
// and workflow_id ascending.
//
// The common case is one round trip: the refresh pre-check, the page and
// the summary go in one batch; only when the pre-check finds work does
// List refresh and read again.
func (s *Service) List(ctx context.Context, tenant string, f Filter) (*Inbox, error) {
	in, busy, err := s.list(ctx, tenant, f, true)
	if err != nil || !busy {
		return in, err
	}
	if _, err := s.Refresh(ctx, tenant); err != nil {
		return nil, err
	}
	in, _, err = s.list(ctx, tenant, f, false)
	return in, err
}

// list reads the inbox; with check it also runs the refresh pre-check in
// the same batch and reports busy (the page is then stale and discarded).
func (s *Service) list(ctx context.Context, tenant string, f Filter, check bool) (*Inbox, bool, error) {
	now := s.now()
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	where := []string{"tenant_id = $1"}
	args := []any{tenant, now}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Status != "" {
		add("status = $%d", f.Status)
	}
	if f.AssignedAccountID != "" {
		add("assigned_account_id = $%d", f.AssignedAccountID)
	}
	if f.AssignedRole != "" {
		add("assigned_role = $%d", f.AssignedRole)
	}
	if f.Priority != "" {
		add("priority = $%d", f.Priority)
	}
	if f.TraceID != "" {
		add("trace_id = $%d", f.TraceID)
	}
	open := "status IN ('requested', 'in_review', 'changes_requested', 'escalated')"
	overdue := open + " AND sla_due_at IS NOT NULL AND sla_due_at < $2"
	if f.OnlyOpen {
		where = append(where, open)
	}
	args = append(args, f.Limit)
	lim := "$" + strconv.Itoa(len(args))
	order := `prio_rank, requested_at, workflow_id COLLATE "C"`
	// Overdue items first: two ordered walks (overdue, then the rest), each
	// stopping after the limit, so a page costs about the same with 100 or
	// 100,000 open items (the inbox index follows this order).
	w := strings.Join(where, " AND ")
	sql := `SELECT ` + itemSelect + ` FROM (
		(SELECT *, true AS od FROM dg_workflow_items WHERE ` + w + ` AND ` + overdue + ` ORDER BY ` + order + ` LIMIT ` + lim + `)
		UNION ALL`
	if f.OnlyOverdue {
		sql += `
		(SELECT *, false AS od FROM dg_workflow_items WHERE false)`
	} else {
		sql += `
		(SELECT *, false AS od FROM dg_workflow_items WHERE ` + w + ` AND NOT (` + overdue + `)
			ORDER BY ` + order + ` LIMIT ` + lim + `)`
	}
	sql += `) AS u ORDER BY od DESC, ` + order + ` LIMIT ` + lim
	b := &pgx.Batch{}
	if check {
		b.Queue(pendingSQL, s.pendingArgs(tenant, now)...)
	}
	b.Queue(sql, args...)
	b.Queue(summarySQL, tenant, now)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if check {
		var busy bool
		if err := br.QueryRow().Scan(&busy); err != nil {
			return nil, false, fmt.Errorf("check workflow runtime of tenant %s: %w", tenant, err)
		}
		if busy {
			return nil, true, nil
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, false, fmt.Errorf("list workflows of tenant %s: %w", tenant, err)
	}
	items, err := collectItems(rows)
	if err != nil {
		return nil, false, fmt.Errorf("list workflows of tenant %s: %w", tenant, err)
	}
	sum, err := scanSummary(br.QueryRow(), tenant)
	if err != nil {
		return nil, false, err
	}
	if items == nil {
		items = []*Item{}
	}
	return &Inbox{Filters: f, Items: items, Summary: *sum, Now: now}, false, nil
}

const summarySQL = `SELECT
		(SELECT coalesce(json_object_agg(status, n), '{}') FROM dg_workflow_status_counts WHERE tenant_id = $1 AND n <> 0),
		(SELECT count(*) FROM dg_workflow_items WHERE tenant_id = $1
			AND status IN ('requested', 'in_review', 'changes_requested', 'escalated') AND sla_due_at IS NOT NULL AND sla_due_at < $2),
		(SELECT count(*) FROM dg_workflow_notifications WHERE tenant_id = $1),
		(SELECT count(*) FROM dg_workflow_deliveries WHERE tenant_id = $1 AND status = 'pending')`

func (s *Service) summary(ctx context.Context, tenant string, now time.Time) (*Summary, error) {
	return scanSummary(s.pool.QueryRow(ctx, summarySQL, tenant, now), tenant)
}

func scanSummary(row pgx.Row, tenant string) (*Summary, error) {
	sm := &Summary{TenantID: tenant}
	var byStatus map[string]int64
	err := row.Scan(&byStatus, &sm.OverdueCount, &sm.NotificationCount, &sm.PendingDeliveriesCount)
	if err != nil {
		return nil, fmt.Errorf("summarise workflows of tenant %s: %w", tenant, err)
	}
	for st, n := range byStatus {
		sm.TotalCount += n
		if IsOpen(st) {
			sm.OpenCount += n
		}
	}
	sm.RequestedCount, sm.ChangesRequestedCount, sm.InReviewCount = byStatus[StatusRequested], byStatus[StatusChangesRequested], byStatus[StatusInReview]
	sm.ApprovedCount, sm.RejectedCount, sm.OverriddenCount, sm.EscalatedCount = byStatus[StatusApproved], byStatus[StatusRejected], byStatus[StatusOverridden], byStatus[StatusEscalated]
	return sm, nil
}

// Summary refreshes the tenant and returns its counts.
func (s *Service) Summary(ctx context.Context, tenant string) (*Summary, error) {
	if _, err := s.Refresh(ctx, tenant); err != nil {
		return nil, err
	}
	return s.summary(ctx, tenant, s.now())
}

// Detail is one item with its history.
type Detail struct {
	Item          *Item
	Actions       []*Action
	Notifications []*Notification // newest first, at most DetailNotifications
	Now           time.Time
	// ReviewContext is the studio view of the item's trace (nil when the
	// trace cannot be read).
	ReviewContext map[string]any
}

// DetailNotifications is how many notifications an item detail shows.
const DetailNotifications = 12

// TraceReference names the item's subject and trace.
func (it *Item) TraceReference() map[string]any {
	return map[string]any{"subject_id": it.SubjectID, "subject_type": it.SubjectType, "tenant_id": it.TenantID,
		"trace_id": it.TraceID, "workflow_name": it.Name}
}

// JSON is the detail response data.
func (d *Detail) JSON() map[string]any {
	acts := make([]any, len(d.Actions))
	for k, a := range d.Actions {
		acts[k] = a.JSON()
	}
	notes := make([]any, len(d.Notifications))
	for k, n := range d.Notifications {
		notes[k] = n.JSON()
	}
	var rc any
	if d.ReviewContext != nil {
		rc = d.ReviewContext
	}
	return map[string]any{"workflow": d.Item.JSON(d.Now), "actions": acts, "notifications": notes,
		"trace_reference": d.Item.TraceReference(), "review_context": rc}
}

// Get refreshes the tenant and returns one item with all its actions
// (oldest first) and its newest notifications.
func (s *Service) Get(ctx context.Context, tenant, wid string) (*Detail, error) {
	if _, err := s.Refresh(ctx, tenant); err != nil {
		return nil, err
	}
	return s.detail(ctx, tenant, wid, DetailNotifications)
}

func (s *Service) detail(ctx context.Context, tenant, wid string, maxNotes int) (*Detail, error) {
	it, err := loadItem(ctx, s.pool, tenant, wid, false)
	if err != nil {
		return nil, err
	}
	acts, err := s.actions(ctx, tenant, wid)
	if err != nil {
		return nil, err
	}
	notes, err := s.Notifications(ctx, tenant, wid, maxNotes, 0)
	if err != nil {
		return nil, err
	}
	d := &Detail{Item: it, Actions: acts, Notifications: notes, Now: s.now()}
	if rc, err := s.reviewContext(ctx, tenant, it); err == nil {
		d.ReviewContext = rc
	}
	return d, nil
}

func (s *Service) actions(ctx context.Context, tenant, wid string) ([]*Action, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+actionSelect+` FROM dg_workflow_actions WHERE tenant_id = $1 AND workflow_id = $2
		ORDER BY created_at, action_id COLLATE "C"`, tenant, wid)
	if err != nil {
		return nil, fmt.Errorf("read actions of %s: %w", wid, err)
	}
	acts, err := collectActions(rows)
	if err != nil {
		return nil, fmt.Errorf("read actions of %s: %w", wid, err)
	}
	if acts == nil {
		acts = []*Action{}
	}
	return acts, nil
}

// Notifications returns an item's notifications newest first (created_at
// desc, notification_id desc), limit at most (0: all) after skipping offset.
func (s *Service) Notifications(ctx context.Context, tenant, wid string, limit, offset int) ([]*Notification, error) {
	sql := `SELECT ` + notificationSelect + ` FROM dg_workflow_notifications WHERE tenant_id = $1 AND workflow_id = $2
		ORDER BY created_at DESC, notification_id COLLATE "C" DESC OFFSET $3`
	args := []any{tenant, wid, offset}
	if limit > 0 {
		sql += ` LIMIT $4`
		args = append(args, limit)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read notifications of %s: %w", wid, err)
	}
	ns, err := collectNotifications(rows)
	if err != nil {
		return nil, fmt.Errorf("read notifications of %s: %w", wid, err)
	}
	if ns == nil {
		ns = []*Notification{}
	}
	return ns, nil
}

// ExportPage bounds the notifications of one export page.
const ExportPage = 500

// Export is the audit export of one item (A.11) with every notification,
// paginated: page 1 is the first ExportPage notifications, newest first.
func (s *Service) Export(ctx context.Context, tenant, wid string, page int) (map[string]any, error) {
	if _, err := s.Refresh(ctx, tenant); err != nil {
		return nil, err
	}
	if page < 1 {
		page = 1
	}
	it, err := loadItem(ctx, s.pool, tenant, wid, false)
	if err != nil {
		return nil, err
	}
	acts, err := s.actions(ctx, tenant, wid)
	if err != nil {
		return nil, err
	}
	notes, err := s.Notifications(ctx, tenant, wid, ExportPage+1, (page-1)*ExportPage)
	if err != nil {
		return nil, err
	}
	var total int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM dg_workflow_notifications WHERE tenant_id = $1 AND workflow_id = $2`, tenant, wid).Scan(&total); err != nil {
		return nil, fmt.Errorf("count notifications of %s: %w", wid, err)
	}
	var next any
	if len(notes) > ExportPage {
		notes = notes[:ExportPage]
		next = page + 1
	}
	now := s.now()
	actJSON := make([]any, len(acts))
	for k, a := range acts {
		actJSON[k] = a.JSON()
	}
	noteJSON := make([]any, len(notes))
	for k, n := range notes {
		noteJSON[k] = n.JSON()
	}
	return map[string]any{
		"export_version":         1,
		"exported_at":            FormatTime(now),
		"workflow":               it.JSON(now),
		"workflow_actions":       actJSON,
		"workflow_notifications": noteJSON,
		"notifications_page":     map[string]any{"page": page, "page_size": ExportPage, "next_page": next, "total": total},
		"trace_reference":        it.TraceReference(),
		"audit_summary": map[string]any{
			"action_count": len(acts), "closed?": IsTerminal(it.Status), "current_decision": strJSON(it.CurrentDecision),
			"notification_count": total, "overdue": it.Overdue(now), "workflow_kind": it.Kind,
		},
	}, nil
}
