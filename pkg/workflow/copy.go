package workflow

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// copyIn is a binary COPY stream into one table, built row by row with
// the field encoders of pgArray (a COPY field and an array element have
// the same binary layout). Imports write the rows of a batch that cannot
// conflict with stored ones this way: COPY skips the unnest arrays and
// their per-value materialisation and inserts the heap rows in bulk.
type copyIn struct {
	pgArray
	sql  string
	what string
}

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func newCopyIn(table string, cols []string, rows, avg int, what string) *copyIn {
	c := &copyIn{sql: "COPY " + table + " (" + strings.Join(cols, ", ") + ") FROM STDIN WITH (FORMAT binary)", what: what}
	c.buf = make([]byte, 0, len(copyHeader)+rows*(2+len(cols)*4+avg)+2)
	c.buf = append(c.buf, copyHeader...)
	c.jsonb = true
	return c
}

// row starts a row of n fields.
func (c *copyIn) row(n int) { c.buf = binary.BigEndian.AppendUint16(c.buf, uint16(n)) }

// exec streams the rows into the table on q's connection (a transaction).
func (c *copyIn) exec(ctx context.Context, q dbtx) error {
	if c == nil {
		return nil
	}
	cn, ok := q.(interface{ Conn() *pgx.Conn })
	if !ok {
		return fmt.Errorf("copy %s: unsupported connection type %T", c.what, q)
	}
	data := binary.BigEndian.AppendUint16(c.buf, 0xffff) // trailer
	if _, err := cn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), c.sql); err != nil {
		return fmt.Errorf("copy %s: %w", c.what, err)
	}
	return nil
}

// isUniqueViolation reports a unique_violation from PostgreSQL.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// itemsCopy copies items the table does not hold yet; nil when none.
func itemsCopy(items []*Item) *copyIn {
	if len(items) == 0 {
		return nil
	}
	names := make([]string, len(itemColumns))
	for n, col := range itemColumns {
		names[n] = col.name
	}
	c := newCopyIn("dg_workflow_items", names, len(items), 700, fmt.Sprintf("%d workflow items", len(items)))
	for _, it := range items {
		c.row(len(itemColumns))
		for _, col := range itemColumns {
			col.put(&c.pgArray, it)
		}
	}
	return c
}

var actionCopyColumns = []string{"tenant_id", "action_id", "workflow_id", "trace_id", "action_type", "actor_id", "actor_type",
	"actor_account_id", "note", "payload", "source_event_id", "resulting_status", "created_at"}

// actionsCopy copies action rows; nil when none.
func actionsCopy(acts []*Action) *copyIn {
	if len(acts) == 0 {
		return nil
	}
	c := newCopyIn("dg_workflow_actions", actionCopyColumns, len(acts), 300, fmt.Sprintf("%d workflow actions", len(acts)))
	for _, a := range acts {
		c.row(len(actionCopyColumns))
		c.text(a.TenantID)
		c.text(a.ActionID)
		c.text(a.WorkflowID)
		c.text(a.TraceID)
		c.text(a.Type)
		c.textOrNull(a.ActorID)
		c.textOrNull(a.ActorType)
		c.textOrNull(a.ActorAccountID)
		c.textOrNull(a.Note)
		c.json(a.Payload)
		c.textOrNull(a.SourceEventID)
		c.text(a.ResultingStatus)
		c.time(a.CreatedAt.UTC())
	}
	return c
}

var noteCopyColumns = []string{"tenant_id", "notification_id", "workflow_id", "trace_id", "category", "message",
	"recipient_account_id", "recipient_role", "payload", "dedupe_key", "created_at", "delivered_at"}

// notesCopy copies notifications (ids, channel and status set as in
// notesStmt); nil when none.
func notesCopy(ns []*Notification) *copyIn {
	if len(ns) == 0 {
		return nil
	}
	c := newCopyIn("dg_workflow_notifications", noteCopyColumns, len(ns), 400, fmt.Sprintf("%d workflow notifications", len(ns)))
	for _, x := range ns {
		x.NotificationID = notificationID(x.TenantID, x.DedupeKey)
		x.Channel, x.Status = "operator_console", "delivered"
		if x.DeliveredAt.IsZero() {
			x.DeliveredAt = x.CreatedAt
		}
		c.row(len(noteCopyColumns))
		c.text(x.TenantID)
		c.text(x.NotificationID)
		c.text(x.WorkflowID)
		c.text(x.TraceID)
		c.text(x.Category)
		c.text(x.Message)
		c.textOrNull(x.RecipientAccountID)
		c.textOrNull(x.RecipientRole)
		c.json(x.Payload)
		c.text(x.DedupeKey)
		c.time(x.CreatedAt.UTC())
		c.time(x.CreatedAt.UTC())
	}
	return c
}
