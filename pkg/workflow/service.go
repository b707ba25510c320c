package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/pkg/audit"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// Appender appends events through the normal append path (*store.Store).
type Appender interface {
	Append(ctx context.Context, tenant string, env *event.Envelope) (*store.AppendResult, error)
}

// Service is the workflow runtime of one database: refresh (import and
// SLA sweep), reads, actions, studio and export.
type Service struct {
	pool  *pgxpool.Pool
	log   Appender
	cfg   Config
	lg    *slog.Logger
	audit *audit.Log
	// slots bounds concurrent actions: a keyed decision holds up to two
	// pool connections while the store's appender (same pool) needs one
	// more, so without a bound a burst of actions could take every
	// connection and wait forever for the appender.
	slots chan struct{}
	// copyOff: imports stop using COPY (see importWrite) after one met a
	// unique violation.
	copyOff atomic.Bool
}

// Options are the optional collaborators of a Service.
type Options struct {
	Logger *slog.Logger
	// Audit records workflow actions (nil: log lines only).
	Audit *audit.Log
}

// New returns the workflow service on pool, appending decisions through log.
func New(pool *pgxpool.Pool, log Appender, cfg Config, opts Options) *Service {
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	au := opts.Audit
	if au == nil {
		au = audit.New(nil, lg)
	}
	n := 1
	if pool != nil {
		// Keep room for the appender, the runtime's lock connection, the
		// deliverer and reads.
		n = max(1, (int(pool.Config().MaxConns)-4)/2)
	}
	return &Service{pool: pool, log: log, cfg: cfg.withDefaults(), lg: lg, audit: au, slots: make(chan struct{}, n)}
}

// acquire takes an action slot (see Service.slots).
func (s *Service) acquire(ctx context.Context) (func(), error) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a free action slot: %w", ctx.Err())
	}
}

// Config returns the effective configuration (defaults applied).
func (s *Service) Config() Config { return s.cfg }

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// RefreshResult says what one refresh did.
type RefreshResult struct {
	Imported     int   `json:"imported"`
	Failed       int   `json:"failed"`
	Cursor       int64 `json:"cursor"`
	DeadlineRisk int   `json:"deadline_risk"`
	Escalated    int   `json:"escalated"`
	Skipped      bool  `json:"skipped"` // nothing to do: no transaction was opened
}

// Refresh brings a tenant's workflow state up to date (A.5): it imports the
// managed events after the tenant's cursor and runs the SLA sweep, in one
// transaction that holds the tenant's runtime row lock (so concurrent
// refreshes of a tenant, in any process, serialise). When a cheap unlocked
// check finds nothing to import and nothing to sweep it returns at once.
func (s *Service) Refresh(ctx context.Context, tenant string) (*RefreshResult, error) {
	now := s.now()
	busy, err := s.pending(ctx, tenant, now)
	if err != nil {
		return nil, err
	}
	if !busy {
		return &RefreshResult{Skipped: true}, nil
	}
	var res *RefreshResult
	err = s.inTenantTx(ctx, tenant, func(tx pgx.Tx, cursor int64) (int64, error) {
		var err error
		res, err = s.refreshTx(ctx, tx, tenant, cursor, now)
		if err != nil {
			return cursor, err
		}
		return res.Cursor, nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// pendingSQL is the unlocked pre-check of Refresh: is there a managed
// event after the cursor, an item to escalate, or one entering its
// deadline-risk window? Arguments: tenant, managed types, now, now+warning.
const pendingSQL = `SELECT
		EXISTS (SELECT 1 FROM dg_event_log e WHERE e.tenant_id = $1 AND e.event_type = ANY($2)
			AND e.log_seq > coalesce((SELECT last_log_seq FROM dg_workflow_runtime WHERE tenant_id = $1), 0))
		OR EXISTS (SELECT 1 FROM dg_workflow_items WHERE tenant_id = $1
			AND status IN ('requested', 'in_review', 'changes_requested') AND sla_due_at IS NOT NULL AND sla_due_at < $3
			AND (status <> 'in_review' OR coalesce((metadata->>'escalation_count')::int, 0) = 0))
		OR EXISTS (SELECT 1 FROM dg_workflow_items WHERE tenant_id = $1
			AND status IN ('requested', 'in_review', 'changes_requested', 'escalated') AND sla_due_at IS NOT NULL
			AND sla_due_at > $3 AND sla_due_at <= $4 AND deadline_risk_for IS DISTINCT FROM sla_due_at)`

func (s *Service) pendingArgs(tenant string, now time.Time) []any {
	return []any{tenant, ManagedTypes, now, now.Add(s.cfg.DeadlineRiskWarning)}
}

// pending runs the pre-check of Refresh.
func (s *Service) pending(ctx context.Context, tenant string, now time.Time) (bool, error) {
	var busy bool
	if err := s.pool.QueryRow(ctx, pendingSQL, s.pendingArgs(tenant, now)...).Scan(&busy); err != nil {
		return false, fmt.Errorf("check workflow runtime of tenant %s: %w", tenant, err)
	}
	return busy, nil
}

// inTenantTx runs fn in a transaction holding the tenant's runtime row
// (created if missing) FOR UPDATE; fn returns the new cursor.
func (s *Service) inTenantTx(ctx context.Context, tenant string, fn func(tx pgx.Tx, cursor int64) (int64, error)) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO dg_workflow_runtime (tenant_id, last_log_seq, updated_at) VALUES ($1, 0, $2)
			ON CONFLICT (tenant_id) DO NOTHING`, tenant, s.now()); err != nil {
			return fmt.Errorf("workflow runtime of tenant %s: %w", tenant, err)
		}
		var cursor int64
		if err := tx.QueryRow(ctx, `SELECT last_log_seq FROM dg_workflow_runtime WHERE tenant_id = $1 FOR UPDATE`, tenant).Scan(&cursor); err != nil {
			return fmt.Errorf("lock workflow runtime of tenant %s: %w", tenant, err)
		}
		next, err := fn(tx, cursor)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE dg_workflow_runtime SET last_log_seq = $2, updated_at = $3 WHERE tenant_id = $1`,
			tenant, next, s.now()); err != nil {
			return fmt.Errorf("store workflow cursor of tenant %s: %w", tenant, err)
		}
		return nil
	})
}

func (s *Service) refreshTx(ctx context.Context, tx pgx.Tx, tenant string, cursor int64, now time.Time) (*RefreshResult, error) {
	res := &RefreshResult{Cursor: cursor}
	if err := s.importTx(ctx, tx, tenant, res, now); err != nil {
		return nil, err
	}
	risk, esc, err := s.sweepTx(ctx, tx, tenant, now)
	if err != nil {
		return nil, err
	}
	res.DeadlineRisk, res.Escalated = risk, esc
	return res, nil
}

// importTx imports the managed events after res.Cursor in batches of
// ImportBatchSize, advancing res. Batches are pipelined so that the
// connection, the bottleneck, does little but database work: while a
// goroutine writes batch k-1 on the transaction's connection, this
// goroutine decodes the payloads of batch k+1 and applies and builds
// batch k in memory. Before handing the connection over it reads what
// that needs: the stored items batch k addresses and the rows of batch
// k+1. Items touched by earlier batches of this refresh are taken from
// memory, not from the table, so batch k never depends on a write still in
// flight; every write still happens in the caller's transaction, in batch
// order, before it returns.
func (s *Service) importTx(ctx context.Context, tx pgx.Tx, tenant string, res *RefreshResult, now time.Time) error {
	// The first batches are small and double up to ImportBatchSize, so the
	// writer starts early instead of waiting for a whole batch to be read
	// and applied.
	n := min(s.cfg.ImportBatchSize, firstImportBatch)
	touched := map[string]*Item{} // items this refresh has written or is writing
	var pending *importWrite      // applied and built, not yet written
	evs, err := readManaged(ctx, tx, tenant, res.Cursor, n)
	if err != nil {
		return err
	}
	decodePayloads(evs)
	more := len(evs) == n
	unanalyzed, err := unanalyzedTables(ctx, tx, len(evs))
	if err != nil {
		return err
	}
	for batch := 0; len(evs) > 0 || pending != nil; batch++ {
		if batch == 2 && len(unanalyzed) > 0 {
			// The first batch is written: give tables that were never
			// analyzed statistics (they include this transaction's rows), or
			// the planner, taking them for nearly empty, scans every row of
			// the tenant for each key it looks up in the next batches.
			if _, err := tx.Exec(ctx, "ANALYZE "+strings.Join(unanalyzed, ", ")); err != nil {
				return fmt.Errorf("analyze %s: %w", strings.Join(unanalyzed, ", "), err)
			}
		}
		var ap *applier
		var next []*srcEvent
		if len(evs) > 0 {
			if ap, err = s.prepareImport(ctx, tx, tenant, evs, now, touched); err != nil {
				return err
			}
			if more {
				n = min(2*n, s.cfg.ImportBatchSize)
				if next, err = readManaged(ctx, tx, tenant, evs[len(evs)-1].LogSeq, n); err != nil {
					return err
				}
				more = len(next) == n
			}
		}
		var done chan error
		if pending != nil {
			done = make(chan error, 1)
			go func(w *importWrite) { done <- s.execImport(ctx, tx, w) }(pending)
			pending = nil
		}
		// Pure computation: the connection belongs to the writer.
		decodePayloads(next)
		if ap != nil {
			ok, failed := s.applyBatch(ap, evs)
			for id, it := range ap.ch.items {
				touched[id] = it
			}
			pending = s.buildImportWrite(tenant, ap.ch)
			res.Imported += ok
			res.Failed += failed
			res.Cursor = evs[len(evs)-1].LogSeq
		}
		if done != nil {
			if err := <-done; err != nil {
				return err
			}
		}
		evs = next
	}
	return nil
}

// unanalyzedTables lists the workflow tables an import looks keys up in
// that have never been analyzed (autovacuum analyzes a table only once
// enough committed rows changed, so a first import into empty tables runs
// without statistics); none when the import is a single batch.
func unanalyzedTables(ctx context.Context, tx dbtx, first int) ([]string, error) {
	if first < firstImportBatch {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT relname::text FROM pg_class WHERE oid IN
		('dg_workflow_items'::regclass, 'dg_workflow_actions'::regclass, 'dg_workflow_notifications'::regclass)
		AND reltuples < 0 ORDER BY relname`)
	if err != nil {
		return nil, fmt.Errorf("read workflow table statistics: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read workflow table statistics: %w", err)
	}
	return names, nil
}

// firstImportBatch is the size of the first batch of an import.
const firstImportBatch = 250

// prepareImport reads what applying evs needs: the stored items they
// address that this refresh has not touched yet, and the trace contexts.
func (s *Service) prepareImport(ctx context.Context, tx pgx.Tx, tenant string, evs []*srcEvent, now time.Time, touched map[string]*Item) (*applier, error) {
	var ids, traces []string
	seenID, seenTrace := map[string]bool{}, map[string]bool{}
	for _, ev := range evs {
		if wid, bad := targetID(ev); bad == "" && !seenID[wid] {
			seenID[wid] = true
			if touched[wid] == nil {
				ids = append(ids, wid)
			}
		}
		if !seenTrace[ev.TraceID] {
			seenTrace[ev.TraceID] = true
			traces = append(traces, ev.TraceID)
		}
	}
	base, err := loadItemsByID(ctx, tx, tenant, ids)
	if err != nil {
		return nil, err
	}
	for id, it := range touched {
		if seenID[id] {
			base[id] = it
		}
	}
	tcs, err := loadTraceContexts(ctx, tx, tenant, traces)
	if err != nil {
		return nil, err
	}
	return &applier{cfg: s.cfg, tenant: tenant, now: now, ch: newChanges(), base: base, tcs: tcs}, nil
}

// applyBatch applies evs in memory and records the failures; it returns
// how many events were imported and how many skipped as malformed. Items
// the table does not hold yet are marked fresh (plain inserts).
func (s *Service) applyBatch(ap *applier, evs []*srcEvent) (int, int) {
	for _, ev := range evs {
		ap.apply(ev)
	}
	for _, f := range ap.fails {
		s.lg.Warn("workflow import skipped a malformed managed event; the cursor moves past it",
			"tenant_id", ap.tenant, "event_id", f.ev.EventID, "log_seq", f.ev.LogSeq, "event_type", f.ev.Type, "error", f.msg)
		ap.ch.notes = append(ap.ch.notes, failureNote(ap.tenant, f, ap.now))
	}
	for id := range ap.ch.items {
		if ap.base[id] == nil {
			if ap.ch.fresh == nil {
				ap.ch.fresh = map[string]bool{}
			}
			ap.ch.fresh[id] = true
		}
	}
	return len(evs) - len(ap.fails), len(ap.fails)
}

// importWrite is what one import batch writes, built ahead of time.
//
// Rows that cannot conflict with stored ones go in by COPY: items the
// table does not hold yet, the batch's actions (their ids name events
// above the cursor) and its notifications when none of their keys that do
// not name an event is stored yet (checked by the writer right before,
// under the tenant's runtime row lock). Otherwise, and for good once a
// COPY met a unique violation (Service.copyOff), the multi-row statements
// with ON CONFLICT run.
type importWrite struct {
	tenant    string
	freshCopy *copyIn   // items the table does not hold yet (COPY)
	fresh     *bulkStmt // the same by INSERT when COPY is off
	stored    *bulkStmt // upsert of items the table holds
	acts      []*Action
	actsCopy  *copyIn
	notes     []*Notification
	notesCopy *copyIn // nil: notes go through notesStmt
}

// buildImportWrite builds the writes of ch. Every writer of a tenant's
// items holds its runtime row lock, so "not held yet" stays true until
// the write.
func (s *Service) buildImportWrite(tenant string, ch *changes) *importWrite {
	var fresh, stored []*Item
	for _, it := range ch.itemList() {
		if ch.fresh[it.WorkflowID] {
			fresh = append(fresh, it)
		} else {
			stored = append(stored, it)
		}
	}
	w := &importWrite{tenant: tenant, stored: itemsStmt(itemUpsertSQL, stored), acts: ch.actions, notes: ch.notes}
	if s.copyOff.Load() {
		w.fresh = itemsStmt(itemInsertSQL, fresh)
		return w
	}
	w.freshCopy = itemsCopy(fresh)
	w.actsCopy = actionsCopy(ch.actions)
	seen := make(map[string]bool, len(ch.notes))
	for _, x := range ch.notes {
		if seen[x.DedupeKey] {
			return w // duplicate keys in the batch: ON CONFLICT keeps the first
		}
		seen[x.DedupeKey] = true
	}
	w.notesCopy = notesCopy(ch.notes)
	return w
}

// execImport runs w on the transaction.
func (s *Service) execImport(ctx context.Context, tx dbtx, w *importWrite) error {
	copied := func(c *copyIn) error {
		err := c.exec(ctx, tx)
		if err != nil && isUniqueViolation(err) {
			// Not expected (the keys were checked under the tenant lock);
			// never risk it twice: later imports use ON CONFLICT.
			s.copyOff.Store(true)
			s.lg.Warn("workflow import: COPY met a unique violation; using ON CONFLICT inserts from now on", "tenant_id", w.tenant, "err", err)
		}
		return err
	}
	if err := copied(w.freshCopy); err != nil {
		return err
	}
	if err := w.fresh.exec(ctx, tx); err != nil {
		return err
	}
	if err := w.stored.exec(ctx, tx); err != nil {
		return err
	}
	// Imported action ids and event-keyed dedupe keys name their source
	// event, above the cursor, so they cannot be stored yet (a COPY that
	// ever meets one anyway fails that refresh once and turns COPY off).
	// Other dedupe keys (assignments) may be: one round trip checks them,
	// one primary-key probe each whatever the statistics say (see
	// loadItemsByID); if any is stored the notifications take ON CONFLICT.
	var keys []string
	if w.notesCopy != nil {
		for _, x := range w.notes {
			if !x.eventKeyed {
				keys = append(keys, x.DedupeKey)
			}
		}
	}
	notesStored := false
	if len(keys) > 0 {
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM unnest($2::text[]) AS k(key) CROSS JOIN LATERAL
				(SELECT 1 FROM dg_workflow_notifications WHERE tenant_id = $1 AND dedupe_key = k.key LIMIT 1) n)`,
			w.tenant, keys).Scan(&notesStored); err != nil {
			return fmt.Errorf("check stored workflow notification keys: %w", err)
		}
	}
	if w.actsCopy != nil {
		if err := copied(w.actsCopy); err != nil {
			return err
		}
		w.acts = nil
	}
	if err := actionsStmt(w.acts).exec(ctx, tx); err != nil {
		return err
	}
	if w.notesCopy != nil && !notesStored {
		if err := copied(w.notesCopy); err != nil {
			return err
		}
		return queueDeliveries(ctx, tx, s.cfg.Webhooks, w.notes)
	}
	_, err := notesStmt(w.notes).exec(ctx, tx, s.cfg.Webhooks)
	return err
}

// write stores the items, actions and notifications of ch; existing
// means every item is already stored (an UPDATE instead of an upsert).
func (s *Service) write(ctx context.Context, tx dbtx, ch *changes, existing bool) error {
	write := upsertItems
	if existing {
		write = updateItems
	}
	if err := write(ctx, tx, ch.itemList()); err != nil {
		return err
	}
	if err := insertActions(ctx, tx, ch.actions); err != nil {
		return err
	}
	if _, err := insertNotifications(ctx, tx, s.cfg.Webhooks, ch.notes); err != nil {
		return err
	}
	return nil
}

// sweepTx is the SLA sweep (A.8): deadline-risk notifications for open
// items due within the warning window, then automatic escalation of
// overdue items, ordered by (requested_at, workflow_id). No row locks are
// taken on items: every writer of a tenant's items (import, sweep, manual
// actions) holds the tenant's runtime row lock.
func (s *Service) sweepTx(ctx context.Context, tx pgx.Tx, tenant string, now time.Time) (int, int, error) {
	rows, err := tx.Query(ctx, `SELECT `+itemSelect+` FROM dg_workflow_items WHERE tenant_id = $1
		AND status IN ('requested', 'in_review', 'changes_requested', 'escalated') AND sla_due_at IS NOT NULL
		AND sla_due_at > $2 AND sla_due_at <= $3 AND deadline_risk_for IS DISTINCT FROM sla_due_at
		ORDER BY requested_at, workflow_id`, tenant, now, now.Add(s.cfg.DeadlineRiskWarning))
	if err != nil {
		return 0, 0, fmt.Errorf("sweep deadline risk: %w", err)
	}
	risky, err := collectItems(rows)
	if err != nil {
		return 0, 0, fmt.Errorf("sweep deadline risk: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT `+itemSelect+` FROM dg_workflow_items WHERE tenant_id = $1
		AND status IN ('requested', 'in_review', 'changes_requested') AND sla_due_at IS NOT NULL AND sla_due_at < $2
		AND (status <> 'in_review' OR coalesce((metadata->>'escalation_count')::int, 0) = 0)
		ORDER BY requested_at, workflow_id`, tenant, now)
	if err != nil {
		return 0, 0, fmt.Errorf("sweep overdue items: %w", err)
	}
	overdue, err := collectItems(rows)
	if err != nil {
		return 0, 0, fmt.Errorf("sweep overdue items: %w", err)
	}
	if len(risky) == 0 && len(overdue) == 0 {
		return 0, 0, nil
	}
	ch := newChanges()
	warn := int(s.cfg.DeadlineRiskWarning / time.Minute)
	for _, it := range risky {
		due := FormatTime(it.SLADueAt)
		ch.notes = append(ch.notes, &Notification{
			TenantID: tenant, WorkflowID: it.WorkflowID, TraceID: it.TraceID, Category: CategoryDeadlineRisk,
			Message:            "Workflow " + it.WorkflowID + " is nearing its SLA deadline (" + due + ")",
			RecipientAccountID: it.AssignedAccountID, RecipientRole: it.AssignedRole,
			Payload:   map[string]any{"sla_due_at": due, "warning_minutes": warn},
			DedupeKey: "deadline_risk:" + it.WorkflowID + ":" + due, CreatedAt: now,
		})
		it.deadlineRiskFor = it.SLADueAt
		ch.put(it)
	}
	var auditIDs []string
	for _, it := range overdue {
		act, note := escalate(it, s.cfg, now, "", "SLA deadline passed", "automatic_sla_escalation")
		ch.put(it)
		ch.actions = append(ch.actions, act)
		ch.notes = append(ch.notes, note)
		auditIDs = append(auditIDs, it.WorkflowID)
	}
	if err := s.write(ctx, tx, ch, true); err != nil {
		return 0, 0, err
	}
	if len(auditIDs) > 0 {
		// Automatic escalations are audited with no account, in the same
		// transaction (one statement for the whole sweep).
		if _, err := tx.Exec(ctx, `INSERT INTO dg_audit_log (recorded_at, tenant_id, actor_id, actor_type, action, outcome,
			target_type, target_id, reason, details)
			SELECT $1, $2, NULL, 'system', 'workflow_escalate', 'accepted', 'workflow', w, 'SLA deadline passed',
				'{"source": "automatic_sla_escalation"}'::jsonb FROM unnest($3::text[]) AS u(w)`, now, tenant, auditIDs); err != nil {
			return 0, 0, fmt.Errorf("audit %d automatic escalations: %w", len(auditIDs), err)
		}
		s.lg.Info("workflow_escalate_accepted", "tenant_id", tenant, "source", "automatic_sla_escalation", "count", len(auditIDs))
	}
	return len(risky), len(overdue), nil
}

// escalate applies the escalation routine (A.8.3) to it and returns the
// action row and the notification. account is "" for the automatic one.
func escalate(it *Item, cfg Config, now time.Time, account, reason, source string) (*Action, *Notification) {
	count := it.EscalationCount() + 1
	prev := map[string]any{"assigned_account_id": strJSON(it.AssignedAccountID), "assigned_role": strJSON(it.AssignedRole)}
	it.AssignedAccountID, it.AssignedRole = cfg.EscalationAccountID, cfg.EscalationRole
	it.CurrentReason = reason
	it.Status = StatusEscalated
	it.LastActionType, it.LastActionAt, it.UpdatedAt = "escalate", now, now
	md := copyMap(it.Metadata)
	md["escalated_at"] = FormatTime(now)
	md["escalation_count"] = count
	md["escalation_reason"] = reason
	md["previous_assignment"] = prev
	it.Metadata = md
	actorID, actorType := account, "role"
	if account == "" {
		actorID, actorType = "workflow-sla", "system"
	}
	target := assigneeLabel(it.AssignedAccountID, it.AssignedRole)
	act := &Action{
		TenantID: it.TenantID, ActionID: "wfa:" + newUUID(), WorkflowID: it.WorkflowID, TraceID: it.TraceID, Type: "escalate",
		ActorID: actorID, ActorType: actorType, ActorAccountID: account, Note: reason,
		Payload:         map[string]any{"escalation_count": count, "previous_assignment": prev, "source": source},
		ResultingStatus: StatusEscalated, CreatedAt: now,
	}
	note := &Notification{
		TenantID: it.TenantID, WorkflowID: it.WorkflowID, TraceID: it.TraceID, Category: CategoryEscalation,
		Message:            "Workflow " + it.WorkflowID + " escalated to " + target,
		RecipientAccountID: it.AssignedAccountID, RecipientRole: it.AssignedRole,
		Payload:   map[string]any{"escalation_count": count, "reason": reason, "source": source},
		DedupeKey: fmt.Sprintf("escalation:%s:%d", it.WorkflowID, count), CreatedAt: now,
	}
	return act, note
}

// isNotFound reports a *Error with CodeNotFound.
func isNotFound(err error) bool {
	var we *Error
	return errors.As(err, &we) && we.Code == CodeNotFound
}
