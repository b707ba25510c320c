package seed

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/pkg/store"
)

// appendLockKey is the transaction advisory lock every append transaction
// of pkg/store holds (its appendLockKey, "dg_appen"). Reset takes it so
// that no append of any process is between reading a chain head and
// writing after it while the tenant's chain is removed.
const appendLockKey int64 = 0x64675f617070656e

// keptTables are never touched by Reset: the audit log is append-only
// and keeps its record of what happened, reset included.
var keptTables = map[string]bool{"dg_audit_log": true, "dg_schema_migrations": true}

// Reset removes every row of one tenant: its events and hash-chain head,
// its projection rows, cursors, digests, failures and runs, and its
// workflow state. Other tenants are untouched.
//
// The event log refuses DELETE through its dg_event_log_append_only
// trigger. Reset is the one deliberate way past it: inside a single
// transaction it takes the appenders' lock, disables that trigger with
// ALTER TABLE (which needs the table owner, i.e. dg's own role, and holds
// a lock that keeps every other writer out until commit), deletes the
// tenant's events and enables the trigger again before committing. Other
// sessions never see the trigger disabled; a failure rolls everything
// back. The tables come from the catalog (every dg_ table with a
// tenant_id column), so tables added later are covered.
//
// It returns the rows deleted per table.
func Reset(ctx context.Context, st *store.Store, tenant string) (map[string]int64, error) {
	if tenant == "" {
		return nil, fmt.Errorf("reset: a tenant is required")
	}
	deleted := map[string]int64{}
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, appendLockKey); err != nil {
			return fmt.Errorf("take the append lock: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT c.table_name FROM information_schema.columns c
			JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
			WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id'
			  AND t.table_type = 'BASE TABLE' AND c.table_name LIKE 'dg\_%'`)
		if err != nil {
			return fmt.Errorf("list the tenant tables: %w", err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list the tenant tables: %w", err)
		}
		sort.Strings(tables)
		if _, err := tx.Exec(ctx, `ALTER TABLE dg_event_log DISABLE TRIGGER dg_event_log_append_only`); err != nil {
			return fmt.Errorf("lift the append-only guard for the reset (dg must own dg_event_log): %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM dg_event_log WHERE tenant_id = $1`, tenant)
		if err != nil {
			return fmt.Errorf("delete the events of tenant %s: %w", tenant, err)
		}
		deleted["dg_event_log"] = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `ALTER TABLE dg_event_log ENABLE TRIGGER dg_event_log_append_only`); err != nil {
			return fmt.Errorf("restore the append-only guard: %w", err)
		}
		for _, t := range tables {
			if t == "dg_event_log" || keptTables[t] {
				continue
			}
			tag, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{t}.Sanitize()+` WHERE tenant_id = $1`, tenant)
			if err != nil {
				return fmt.Errorf("delete the rows of tenant %s from %s: %w", tenant, t, err)
			}
			deleted[t] = tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reset tenant %s: %w", tenant, err)
	}
	return deleted, nil
}
