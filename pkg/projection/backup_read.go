package projection

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Reader is what DigestsIn reads through: a pool, a connection or a
// transaction. Backups pass the REPEATABLE READ transaction whose snapshot
// pg_dump dumps, so the digests describe exactly the dumped rows.
type Reader interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DigestsIn computes one tenant's digests of the live projection tables
// as q sees them (the same rows and digests as LiveDigests, read through
// q instead of the engine's pool).
func DigestsIn(ctx context.Context, q Reader, tenant string) (Digests, error) {
	t, err := readTables(ctx, q, tenant, liveTables, SetAll)
	if err != nil {
		return Digests{}, err
	}
	return t.Digest(), nil
}
