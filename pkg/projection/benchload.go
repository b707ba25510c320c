package projection

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// appendLockKey is the store appender's transaction lock (pkg/store); the
// bulk loader takes it too so it never interleaves with real appends.
const appendLockKey int64 = 0x64675f617070656e

// BulkLoader writes generated, valid logs straight into dg_event_log with
// COPY, computing payload hashes and the hash chain exactly as the
// appender does. It exists for benchmarks, which need logs of a million
// events in seconds; it does not check idempotency or sequencing, so it
// must only be fed logs that are valid by construction (Synthetic without
// retries).
type BulkLoader struct {
	pool     *pgxpool.Pool
	tenant   string
	chain    string
	count    int64
	recorded time.Time
}

// NewBulkLoader prepares loading into tenant, continuing its chain.
func NewBulkLoader(ctx context.Context, pool *pgxpool.Pool, tenant string) (*BulkLoader, error) {
	l := &BulkLoader{pool: pool, tenant: tenant, chain: event.ChainGenesis(tenant), recorded: time.Now().UTC().Truncate(time.Microsecond)}
	err := pool.QueryRow(ctx, `SELECT chain_hash, event_count FROM dg_chain_heads WHERE tenant_id = $1`, tenant).Scan(&l.chain, &l.count)
	if err != nil && err != pgx.ErrNoRows {
		return nil, fmt.Errorf("read chain head: %w", err)
	}
	return l, nil
}

// Load appends envs (in order) in one transaction and returns the last log_seq.
func (l *BulkLoader) Load(ctx context.Context, envs []event.Envelope) (int64, error) {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, appendLockKey); err != nil {
		return 0, err
	}
	var head int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(log_seq), 0) FROM dg_event_log`).Scan(&head); err != nil {
		return 0, err
	}
	chain := l.chain
	rows := make([][]any, 0, len(envs))
	for i := range envs {
		env := &envs[i]
		canon, err := event.CanonicalJSON(env.Payload)
		if err != nil {
			return 0, fmt.Errorf("event %s: %w", env.EventID, err)
		}
		ph, err := event.PayloadHash(env.Payload)
		if err != nil {
			return 0, err
		}
		head++
		ev := &event.StoredEvent{Envelope: *env, TenantID: l.tenant, LogSeq: head, RecordedAt: l.recorded, PayloadHash: ph}
		eh, err := event.EventHash(ev)
		if err != nil {
			return 0, err
		}
		chain = event.NextChainHash(chain, eh)
		rows = append(rows, []any{head, l.tenant, env.EventID, env.TraceID, env.TraceSeq, env.EventType, env.OccurredAt, l.recorded,
			env.Source.ProducerID, env.Source.System, env.Source.Subsystem, env.Actor.ActorType, env.Actor.ActorID,
			env.CorrelationID, env.CausationEventID, env.IdempotencyKey, env.SchemaVersion, "[]", string(canon), ph, eh, chain})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"dg_event_log"}, []string{"log_seq", "tenant_id", "event_id", "trace_id", "trace_seq",
		"event_type", "occurred_at", "recorded_at", "producer_id", "source_system", "source_subsystem", "actor_type", "actor_id",
		"correlation_id", "causation_event_id", "idempotency_key", "schema_version", "tags", "payload", "payload_hash", "event_hash", "chain_hash"},
		pgx.CopyFromRows(rows)); err != nil {
		return 0, fmt.Errorf("copy events: %w", err)
	}
	count := l.count + int64(len(envs))
	if _, err := tx.Exec(ctx, `INSERT INTO dg_chain_heads (tenant_id, log_seq, chain_hash, event_count) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id) DO UPDATE SET log_seq = EXCLUDED.log_seq, chain_hash = EXCLUDED.chain_hash, event_count = EXCLUDED.event_count`,
		l.tenant, head, chain, count); err != nil {
		return 0, fmt.Errorf("update chain head: %w", err)
	}
	// Wake followers (projection runtimes) on commit, as the appender does.
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, store.NotifyChannel, strconv.FormatInt(head, 10)); err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	l.chain, l.count = chain, count
	return head, nil
}
