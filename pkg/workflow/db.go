package workflow

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// dbtx is a pool, a connection or a transaction.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// column of a bulk write: name, Postgres array type, and how to add the
// Go value to the column's array parameter.
type itemColumn struct {
	name string
	typ  string
	put  func(*pgArray, *Item)
}

func sp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// jsonText is m as JSON text for a jsonb column ("{}" for nil, or when a
// value cannot be encoded, as before with json.Marshal).
func jsonText(m map[string]any) string {
	if m == nil {
		return "{}"
	}
	b, ok := appendJSON(make([]byte, 0, 256), m)
	if !ok {
		return "{}"
	}
	return string(b)
}

var itemColumns = []itemColumn{
	{"tenant_id", "text", func(a *pgArray, i *Item) { a.text(i.TenantID) }},
	{"workflow_id", "text", func(a *pgArray, i *Item) { a.text(i.WorkflowID) }},
	{"trace_id", "text", func(a *pgArray, i *Item) { a.text(i.TraceID) }},
	{"workflow_kind", "text", func(a *pgArray, i *Item) { a.text(i.Kind) }},
	{"workflow_name", "text", func(a *pgArray, i *Item) { a.text(i.Name) }},
	{"subject_type", "text", func(a *pgArray, i *Item) { a.text(i.SubjectType) }},
	{"subject_id", "text", func(a *pgArray, i *Item) { a.text(i.SubjectID) }},
	{"status", "text", func(a *pgArray, i *Item) { a.text(i.Status) }},
	{"priority", "text", func(a *pgArray, i *Item) { a.text(i.Priority) }},
	{"title", "text", func(a *pgArray, i *Item) { a.text(i.Title) }},
	{"policy_id", "text", func(a *pgArray, i *Item) { a.textOrNull(i.PolicyID) }},
	{"policy_version", "text", func(a *pgArray, i *Item) { a.textOrNull(i.PolicyVersion) }},
	{"requested_by_actor_id", "text", func(a *pgArray, i *Item) { a.textOrNull(i.RequestedBy.ActorID) }},
	{"requested_by_actor_type", "text", func(a *pgArray, i *Item) { a.textOrNull(i.RequestedBy.ActorType) }},
	{"assigned_account_id", "text", func(a *pgArray, i *Item) { a.textOrNull(i.AssignedAccountID) }},
	{"assigned_role", "text", func(a *pgArray, i *Item) { a.textOrNull(i.AssignedRole) }},
	{"requested_at", "timestamptz", func(a *pgArray, i *Item) { a.time(i.RequestedAt) }},
	{"sla_due_at", "timestamptz", func(a *pgArray, i *Item) { a.time(i.SLADueAt) }},
	{"updated_at", "timestamptz", func(a *pgArray, i *Item) { a.time(i.UpdatedAt) }},
	{"resolved_at", "timestamptz", func(a *pgArray, i *Item) { a.time(i.ResolvedAt) }},
	{"last_action_type", "text", func(a *pgArray, i *Item) { a.textOrNull(i.LastActionType) }},
	{"last_action_at", "timestamptz", func(a *pgArray, i *Item) { a.time(i.LastActionAt) }},
	{"current_decision", "text", func(a *pgArray, i *Item) { a.textOrNull(i.CurrentDecision) }},
	{"current_reason", "text", func(a *pgArray, i *Item) { a.textOrNull(i.CurrentReason) }},
	{"approval_event_id", "text", func(a *pgArray, i *Item) { a.textOrNull(i.ApprovalEventID) }},
	{"created_from_event_id", "text", func(a *pgArray, i *Item) { a.text(i.CreatedFromEventID) }},
	{"last_source_log_seq", "bigint", func(a *pgArray, i *Item) { a.int8OrNull(i.LastSourceLogSeq) }},
	{"metadata", "jsonb", func(a *pgArray, i *Item) { a.json(i.Metadata) }},
	{"deadline_risk_for", "timestamptz", func(a *pgArray, i *Item) { a.time(i.deadlineRiskFor) }},
}

// mutableColumns are the columns sweeps and manual actions change; the
// other columns of an item are set by imports only.
var mutableColumns = map[string]bool{
	"status": true, "assigned_account_id": true, "assigned_role": true, "resolved_at": true,
	"last_action_type": true, "last_action_at": true, "current_reason": true, "updated_at": true,
	"metadata": true, "deadline_risk_for": true,
}

var itemSelect, itemUpsertSQL, itemUpdateSQL = buildItemSQL()

// itemInsertSQL inserts items known not to exist yet.
var itemInsertSQL = itemUpsertSQL[:strings.Index(itemUpsertSQL, "\n ON CONFLICT")]

func buildItemSQL() (sel, upsert, update string) {
	// arrays of cols as unnest parameters, aliased c0..cN.
	unnest := func(cols []itemColumn) (params, aliases, casts []string) {
		for n, c := range cols {
			typ := c.typ
			if typ == "jsonb" {
				typ = "text"
			}
			params = append(params, fmt.Sprintf("$%d::%s[]", n+1, typ))
			aliases = append(aliases, fmt.Sprintf("c%d", n))
			cast := fmt.Sprintf("u.c%d", n)
			if c.typ == "jsonb" {
				cast += "::jsonb"
			}
			casts = append(casts, cast)
		}
		return params, aliases, casts
	}
	var sels, names, sets []string
	for _, c := range itemColumns {
		names = append(names, c.name)
		if c.typ == "jsonb" {
			sels = append(sels, c.name+"::text")
		} else {
			sels = append(sels, c.name)
		}
		if c.name != "tenant_id" && c.name != "workflow_id" {
			sets = append(sets, c.name+" = EXCLUDED."+c.name)
		}
	}
	params, aliases, casts := unnest(itemColumns)
	upsert = "INSERT INTO dg_workflow_items (" + strings.Join(names, ", ") + ")\n SELECT " + strings.Join(casts, ", ") +
		"\n FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(aliases, ", ") + ")" +
		"\n ON CONFLICT (tenant_id, workflow_id) DO UPDATE SET " + strings.Join(sets, ", ")
	cols := updateColumns()
	params, aliases, casts = unnest(cols)
	var usets []string
	for n, c := range cols[2:] {
		usets = append(usets, c.name+" = "+casts[n+2])
	}
	update = "UPDATE dg_workflow_items i SET " + strings.Join(usets, ", ") +
		"\n FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(aliases, ", ") + ")" +
		"\n WHERE i.tenant_id = u.c0 AND i.workflow_id = u.c1"
	return strings.Join(sels, ", "), upsert, update
}

// updateColumns are the key columns then the mutable ones, in itemColumns order.
func updateColumns() []itemColumn {
	var out []itemColumn
	for _, c := range itemColumns {
		if c.name == "tenant_id" || c.name == "workflow_id" || mutableColumns[c.name] {
			out = append(out, c)
		}
	}
	return out
}

func scanItem(row pgx.Row) (*Item, error) {
	var it Item
	var policyID, policyVersion, rbID, rbType, acct, role, lat, cd, cr, aeid *string
	var due, resolved, lastAt, riskFor *time.Time
	var seq *int64
	var md string
	if err := row.Scan(&it.TenantID, &it.WorkflowID, &it.TraceID, &it.Kind, &it.Name, &it.SubjectType, &it.SubjectID,
		&it.Status, &it.Priority, &it.Title, &policyID, &policyVersion, &rbID, &rbType, &acct, &role,
		&it.RequestedAt, &due, &it.UpdatedAt, &resolved, &lat, &lastAt, &cd, &cr, &aeid, &it.CreatedFromEventID,
		&seq, &md, &riskFor); err != nil {
		return nil, err
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	tm := func(p *time.Time) time.Time {
		if p == nil {
			return time.Time{}
		}
		return p.UTC()
	}
	it.PolicyID, it.PolicyVersion = str(policyID), str(policyVersion)
	it.RequestedBy = Actor{ActorID: str(rbID), ActorType: str(rbType)}
	it.AssignedAccountID, it.AssignedRole = str(acct), str(role)
	it.RequestedAt = it.RequestedAt.UTC()
	it.UpdatedAt = it.UpdatedAt.UTC()
	it.SLADueAt, it.ResolvedAt, it.LastActionAt, it.deadlineRiskFor = tm(due), tm(resolved), tm(lastAt), tm(riskFor)
	it.LastActionType, it.CurrentDecision, it.CurrentReason, it.ApprovalEventID = str(lat), str(cd), str(cr), str(aeid)
	if seq != nil {
		it.LastSourceLogSeq = *seq
	}
	it.Metadata = decodeObject([]byte(md))
	return &it, nil
}

func collectItems(rows pgx.Rows) ([]*Item, error) {
	defer rows.Close()
	var out []*Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// upsertItems writes items in one statement.
func upsertItems(ctx context.Context, q dbtx, items []*Item) error {
	return writeItems(ctx, q, itemUpsertSQL, items)
}

// updateItems rewrites existing items in one statement (cheaper than an
// upsert when every row is known to exist: sweeps and manual actions).
func updateItems(ctx context.Context, q dbtx, items []*Item) error {
	return writeItems(ctx, q, itemUpdateSQL, items)
}

func writeItems(ctx context.Context, q dbtx, sql string, items []*Item) error {
	return itemsStmt(sql, items).exec(ctx, q)
}

// bulkStmt is one multi-row statement with its array parameters, built
// ahead of running it (an import builds batch k's while batch k-1 is
// being written).
type bulkStmt struct {
	sql  string
	cols []*pgArray
	what string // for errors: "12 workflow items"
}

// exec runs the statement; a nil statement writes nothing.
func (b *bulkStmt) exec(ctx context.Context, q dbtx) error {
	_, err := b.query(ctx, q)
	return err
}

// query runs the statement and returns its RETURNING values.
func (b *bulkStmt) query(ctx context.Context, q dbtx) ([]string, error) {
	if b == nil {
		return nil, nil
	}
	out, err := execArrays(ctx, q, b.sql, b.cols)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", b.what, err)
	}
	return out, nil
}

// itemsStmt writes items with sql (insert, upsert or update); nil when
// there are none.
func itemsStmt(sql string, items []*Item) *bulkStmt {
	if len(items) == 0 {
		return nil
	}
	cols := itemColumns
	if sql == itemUpdateSQL {
		cols = updateColumns()
	}
	arrays := make([]*pgArray, len(cols))
	for n, c := range cols {
		switch c.typ {
		case "timestamptz":
			arrays[n] = newPGArray(oidTimestamptz, len(items), 8)
		case "bigint":
			arrays[n] = newPGArray(oidInt8, len(items), 8)
		case "jsonb":
			arrays[n] = newPGArray(oidText, len(items), 256)
		default:
			arrays[n] = newPGArray(oidText, len(items), 24)
		}
		for _, it := range items {
			c.put(arrays[n], it)
		}
	}
	return &bulkStmt{sql: sql, cols: arrays, what: fmt.Sprintf("%d workflow items", len(items))}
}

// loadItem reads one item, optionally locking it.
func loadItem(ctx context.Context, q dbtx, tenant, wid string, lock bool) (*Item, error) {
	sql := `SELECT ` + itemSelect + ` FROM dg_workflow_items WHERE tenant_id = $1 AND workflow_id = $2`
	if lock {
		sql += ` FOR UPDATE`
	}
	it, err := scanItem(q.QueryRow(ctx, sql, tenant, wid))
	if err == pgx.ErrNoRows {
		return nil, errf(CodeNotFound, "Workflow not found: %s", wid)
	}
	if err != nil {
		return nil, fmt.Errorf("read workflow %s: %w", wid, err)
	}
	return it, nil
}

func loadItemsByID(ctx context.Context, q dbtx, tenant string, ids []string) (map[string]*Item, error) {
	out := make(map[string]*Item, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	// One primary-key probe per id (a LATERAL subquery with LIMIT is never
	// flattened into a join the planner could reorder), not "workflow_id =
	// ANY($2)": without statistics (a new or fast-growing table) the
	// planner's generic plan filters every row of the tenant against the
	// whole list, which grows with the table times the list.
	rows, err := q.Query(ctx, `SELECT `+itemSelect+` FROM unnest($2::text[]) AS k(wid)
		CROSS JOIN LATERAL (SELECT * FROM dg_workflow_items i WHERE i.tenant_id = $1 AND i.workflow_id = k.wid LIMIT 1) i`, tenant, ids)
	if err != nil {
		return nil, fmt.Errorf("read workflow items: %w", err)
	}
	items, err := collectItems(rows)
	if err != nil {
		return nil, fmt.Errorf("read workflow items: %w", err)
	}
	for _, it := range items {
		out[it.WorkflowID] = it
	}
	return out, nil
}

// insertActions writes action rows; an imported event's row is written
// at most once (its action_id is derived from the event id).
func insertActions(ctx context.Context, q dbtx, acts []*Action) error {
	return actionsStmt(acts).exec(ctx, q)
}

// actionsStmt inserts action rows (ON CONFLICT DO NOTHING); nil when
// there are none.
func actionsStmt(acts []*Action) *bulkStmt {
	if len(acts) == 0 {
		return nil
	}
	n := len(acts)
	cols := make([]*pgArray, 13)
	for k := range cols {
		switch k {
		case 9:
			cols[k] = newPGArray(oidText, n, 160)
		case 12:
			cols[k] = newPGArray(oidTimestamptz, n, 8)
		default:
			cols[k] = newPGArray(oidText, n, 24)
		}
	}
	for _, a := range acts {
		cols[0].text(a.TenantID)
		cols[1].text(a.ActionID)
		cols[2].text(a.WorkflowID)
		cols[3].text(a.TraceID)
		cols[4].text(a.Type)
		cols[5].textOrNull(a.ActorID)
		cols[6].textOrNull(a.ActorType)
		cols[7].textOrNull(a.ActorAccountID)
		cols[8].textOrNull(a.Note)
		cols[9].json(a.Payload)
		cols[10].textOrNull(a.SourceEventID)
		cols[11].text(a.ResultingStatus)
		cols[12].time(a.CreatedAt.UTC())
	}
	return &bulkStmt{sql: `INSERT INTO dg_workflow_actions (tenant_id, action_id, workflow_id, trace_id, action_type,
		actor_id, actor_type, actor_account_id, note, payload, source_event_id, resulting_status, created_at)
		SELECT a, b, c, d, e, f, g, h, i, j::jsonb, k, l, m FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
			$6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[])
			AS u(a, b, c, d, e, f, g, h, i, j, k, l, m)
		ON CONFLICT DO NOTHING`, cols: cols, what: fmt.Sprintf("%d workflow actions", n)}
}

// insertNotifications writes notifications with "on conflict do nothing"
// on (tenant, dedupe_key) and, for each one actually inserted, a delivery
// row per webhook that wants its category — in the same transaction, so
// the outbox never misses a notification. It returns the inserted ones.
func insertNotifications(ctx context.Context, q dbtx, hooks []Webhook, ns []*Notification) ([]*Notification, error) {
	return notesStmt(ns).exec(ctx, q, hooks)
}

// notesWrite is a built notification insert (see insertNotifications).
type notesWrite struct {
	stmt *bulkStmt
	byID map[string]*Notification
}

// notesStmt builds the insert of ns (their ids, channel and status are
// set here); nil when there are none.
func notesStmt(ns []*Notification) *notesWrite {
	if len(ns) == 0 {
		return nil
	}
	n := len(ns)
	cols := make([]*pgArray, 11)
	for k := range cols {
		switch k {
		case 5:
			cols[k] = newPGArray(oidText, n, 64)
		case 8:
			cols[k] = newPGArray(oidText, n, 96)
		case 10:
			cols[k] = newPGArray(oidTimestamptz, n, 8)
		default:
			cols[k] = newPGArray(oidText, n, 32)
		}
	}
	byID := make(map[string]*Notification, n)
	for _, x := range ns {
		x.NotificationID = notificationID(x.TenantID, x.DedupeKey)
		x.Channel, x.Status = "operator_console", "delivered"
		if x.DeliveredAt.IsZero() {
			x.DeliveredAt = x.CreatedAt
		}
		cols[0].text(x.TenantID)
		cols[1].text(x.NotificationID)
		cols[2].text(x.WorkflowID)
		cols[3].text(x.TraceID)
		cols[4].text(x.Category)
		cols[5].text(x.Message)
		cols[6].textOrNull(x.RecipientAccountID)
		cols[7].textOrNull(x.RecipientRole)
		cols[8].json(x.Payload)
		cols[9].text(x.DedupeKey)
		cols[10].time(x.CreatedAt.UTC())
		byID[x.NotificationID] = x
	}
	return &notesWrite{byID: byID, stmt: &bulkStmt{sql: `INSERT INTO dg_workflow_notifications (tenant_id, notification_id, workflow_id, trace_id,
		category, message, recipient_account_id, recipient_role, payload, dedupe_key, created_at, delivered_at)
		SELECT a, b, c, d, e, f, g, h, i::jsonb, j, k, k FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
			$6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[]) AS u(a, b, c, d, e, f, g, h, i, j, k)
		ON CONFLICT DO NOTHING
		RETURNING notification_id`, cols: cols, what: fmt.Sprintf("%d workflow notifications", n)}}
}

// exec inserts the notifications and queues the webhook deliveries of
// the ones actually inserted; it returns those.
func (w *notesWrite) exec(ctx context.Context, q dbtx, hooks []Webhook) ([]*Notification, error) {
	if w == nil {
		return nil, nil
	}
	ids, err := w.stmt.query(ctx, q)
	if err != nil {
		return nil, err
	}
	inserted := make([]*Notification, 0, len(ids))
	for _, nid := range ids {
		inserted = append(inserted, w.byID[nid])
	}
	if err := queueDeliveries(ctx, q, hooks, inserted); err != nil {
		return nil, err
	}
	return inserted, nil
}

// queueDeliveries writes a delivery row per inserted notification and
// webhook that wants its category.
func queueDeliveries(ctx context.Context, q dbtx, hooks []Webhook, inserted []*Notification) error {
	if len(hooks) == 0 {
		return nil
	}
	var dTenant, dID, dKey, dURL []string
	var dAt []time.Time
	for _, x := range inserted {
		nid := x.NotificationID
		for _, h := range hooks {
			if h.wants(x.Category) {
				dTenant, dID, dKey = append(dTenant, x.TenantID), append(dID, nid), append(dKey, x.DedupeKey)
				dURL, dAt = append(dURL, h.URL), append(dAt, x.CreatedAt.UTC())
			}
		}
	}
	if len(dID) > 0 {
		if _, err := q.Exec(ctx, `INSERT INTO dg_workflow_deliveries (tenant_id, notification_id, dedupe_key, target_url, next_attempt_at, created_at)
			SELECT a, b, k, c, d, d FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS u(a, b, k, c, d)
			ON CONFLICT DO NOTHING`, dTenant, dID, dKey, dURL, dAt); err != nil {
			return fmt.Errorf("queue %d webhook deliveries: %w", len(dID), err)
		}
	}
	return nil
}

const actionSelect = `tenant_id, action_id, workflow_id, trace_id, action_type, actor_id, actor_type, actor_account_id,
	note, payload::text, source_event_id, resulting_status, created_at`

func collectActions(rows pgx.Rows) ([]*Action, error) {
	defer rows.Close()
	var out []*Action
	for rows.Next() {
		var a Action
		var actorID, actorType, acct, note, src *string
		var payload string
		if err := rows.Scan(&a.TenantID, &a.ActionID, &a.WorkflowID, &a.TraceID, &a.Type, &actorID, &actorType, &acct,
			&note, &payload, &src, &a.ResultingStatus, &a.CreatedAt); err != nil {
			return nil, err
		}
		a.ActorID, a.ActorType, a.ActorAccountID, a.Note, a.SourceEventID = deref(actorID), deref(actorType), deref(acct), deref(note), deref(src)
		a.Payload = decodeObject([]byte(payload))
		a.CreatedAt = a.CreatedAt.UTC()
		out = append(out, &a)
	}
	return out, rows.Err()
}

const notificationSelect = `tenant_id, notification_id, workflow_id, trace_id, category, channel, status, message,
	recipient_account_id, recipient_role, payload::text, dedupe_key, created_at, delivered_at`

func collectNotifications(rows pgx.Rows) ([]*Notification, error) {
	defer rows.Close()
	var out []*Notification
	for rows.Next() {
		var x Notification
		var acct, role *string
		var payload string
		var delivered *time.Time
		if err := rows.Scan(&x.TenantID, &x.NotificationID, &x.WorkflowID, &x.TraceID, &x.Category, &x.Channel, &x.Status,
			&x.Message, &acct, &role, &payload, &x.DedupeKey, &x.CreatedAt, &delivered); err != nil {
			return nil, err
		}
		x.RecipientAccountID, x.RecipientRole = deref(acct), deref(role)
		x.Payload = decodeObject([]byte(payload))
		x.CreatedAt = x.CreatedAt.UTC()
		if delivered != nil {
			x.DeliveredAt = delivered.UTC()
		}
		out = append(out, &x)
	}
	return out, rows.Err()
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
