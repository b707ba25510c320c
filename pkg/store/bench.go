package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchTraceTypes is the event mix of one benchmark trace (eight events).
var BenchTraceTypes = []string{
	event.TypeTraceStarted, event.TypeInputObserved, event.TypeEntityObserved, event.TypePolicyEvaluated,
	event.TypeExceptionRequested, event.TypeApprovalRecorded, event.TypeActionCommitted, event.TypeTraceFinished,
}

// BenchEnvelope builds event seq of a benchmark trace: realistic payloads
// of a few hundred bytes, valid under the default rules.
func BenchEnvelope(traceID string, seq int) *event.Envelope {
	typ := BenchTraceTypes[seq%len(BenchTraceTypes)]
	policy := map[string]any{"policy_id": "discount_limit", "policy_version": "2025-10"}
	entity := map[string]any{"entity_type": "opportunity", "entity_id": "sf:opp:" + traceID[:8], "system": "salesforce"}
	fact := func(k, v string) any {
		return map[string]any{"key": k, "value": map[string]any{"type": "decimal", "value": v}, "as_of": nil}
	}
	var p map[string]any
	switch typ {
	case event.TypeTraceStarted:
		p = map[string]any{"workflow": "deal_approval", "title": "Discount approval for " + traceID[:8], "primary_entity": entity}
	case event.TypeInputObserved:
		p = map[string]any{"input_id": "input:deal_size", "source": map[string]any{"system": "salesforce", "object_type": "opportunity", "object_id": traceID[:8], "locator": nil},
			"facts": []any{fact("deal_size", "250000"), fact("discount_pct", "20")}}
	case event.TypeEntityObserved:
		p = map[string]any{"entity": entity, "role": "primary", "facts": []any{fact("arr", "1200000"), fact("seats", "350")}}
	case event.TypePolicyEvaluated:
		p = map[string]any{"policy": policy, "inputs": []any{"input:deal_size"}, "decision": "require_exception",
			"violations": []any{map[string]any{"code": "DISCOUNT_OVER_LIMIT", "details": map[string]any{"limit": "15"}}}}
	case event.TypeExceptionRequested:
		p = map[string]any{"exception_id": "exc:" + traceID[:8], "policy": policy, "reason": "Strategic healthcare account, competitive pressure"}
	case event.TypeApprovalRecorded:
		p = map[string]any{"approval_id": "appr:" + traceID[:8], "subject": map[string]any{"subject_type": "exception", "subject_id": "exc:" + traceID[:8]},
			"approver": map[string]any{"actor_type": "person", "actor_id": "finance_lead"}, "decision": "approved", "reason": "within quarterly budget"}
	case event.TypeActionCommitted:
		p = map[string]any{"action_id": "act:" + traceID[:8], "status": "success", "external_reference": "quote:Q-" + traceID[:8]}
	default:
		p = map[string]any{"outcome": "success", "summary": "Discount 20% applied with Finance exception approval."}
	}
	return &event.Envelope{
		EventID:        fmt.Sprintf("%s-%d", traceID, seq),
		TraceID:        traceID,
		TraceSeq:       int64(seq),
		EventType:      typ,
		OccurredAt:     "2025-12-31T10:00:00Z",
		Source:         event.Source{ProducerID: "bench_agent_service", System: "deal-orchestrator"},
		Actor:          event.Actor{ActorType: "agent", ActorID: "bench_agent_v1"},
		IdempotencyKey: fmt.Sprintf("%s:%s:%d", typ, traceID, seq),
		SchemaVersion:  1,
		Payload:        p,
		Tags:           []string{"bench"},
	}
}

// BenchOptions configure RunAppendBench.
type BenchOptions struct {
	Events  int   // events per run (rounded up to whole traces of 8)
	Clients []int // concurrent clients per run
	Tenants int   // tenants the traces are spread over (default 4)
	Raw     bool  // also run the raw pgx baselines
	// Progress, if set, is called before each run.
	Progress func(mode string, clients int)
}

// The benchmark's modes. What differs between them is how many events each
// client has in flight: dg and raw_single one, dg_trace and raw one trace
// of eight.
const (
	// BenchModeDG is Store.Append, one event per call (one in flight per
	// client): what a lone caller's latency is measured with.
	BenchModeDG = "dg"
	// BenchModeDGTrace is Store.AppendMany with one eight-event trace per
	// call (eight in flight per client), as the raw baseline sends them.
	BenchModeDGTrace = "dg_trace"
	// BenchModeRaw is plain pgx INSERTs, one trace (eight rows) per pgx
	// batch and commit.
	BenchModeRaw = "raw"
	// BenchModeRawSingle is plain pgx INSERTs, one row per commit.
	BenchModeRawSingle = "raw_single"
)

// BenchRun is one measured run.
type BenchRun struct {
	Mode    string `json:"mode"` // one of the BenchMode constants
	Clients int    `json:"clients"`
	// PerCall is how many events each client has in flight: events per
	// store call (dg modes) or rows per commit (raw modes).
	PerCall      int     `json:"events_per_call"`
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	// P50Ms and P99Ms are over events, each taking the latency of the call
	// (dg) or commit (raw) that carried it: per event for dg, per trace of
	// eight for dg_trace and raw.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Commits is the number of transactions (dg: group-commit batches).
	Commits int64 `json:"commits"`
	// FastCommits (dg) went in one round trip on the appender's memory.
	FastCommits int64 `json:"fast_commits,omitempty"`
}

// BenchRow is every mode at one client count.
type BenchRow struct {
	Clients int `json:"clients"`
	// DG is one event per Store.Append call (BenchModeDG).
	DG BenchRun `json:"dg"`
	// DGTrace is one trace of eight events per Store.AppendMany call
	// (BenchModeDGTrace).
	DGTrace *BenchRun `json:"dg_trace,omitempty"`
	// Raw is eight rows per commit per client (BenchModeRaw).
	Raw *BenchRun `json:"raw,omitempty"`
	// Ratio is DG (one event in flight per client) events/s over Raw's
	// (eight in flight per client).
	Ratio float64 `json:"ratio_dg_to_raw,omitempty"`
	// RatioTrace is DGTrace events/s over Raw's: eight in flight per
	// client on both sides.
	RatioTrace float64 `json:"ratio_dg_trace_to_raw,omitempty"`
	// RawSingle is one row per commit per client (BenchModeRawSingle), the
	// same events in flight as DG's clients (one each).
	RawSingle   *BenchRun `json:"raw_single,omitempty"`
	RatioSingle float64   `json:"ratio_dg_to_raw_single,omitempty"`
}

// BenchReport is RunAppendBench's result with the server settings that
// decide durability (and so the figures).
type BenchReport struct {
	Settings map[string]string `json:"settings"`
	Rows     []BenchRow        `json:"rows"`
}

// RunAppendBench measures appends through the Store (validation, rules,
// hash chain, group commit) from each client count in two modes: one event
// per Store.Append call, and one trace of eight per Store.AppendMany call.
// With Raw it also writes the same rows by plain pgx INSERTs into a copy of
// the log table without triggers, rules or hashing, once with each client
// sending one trace of eight single-row INSERTs as one pgx batch committed
// together, once with one row per commit. Every run appends fresh traces.
// pool must reach a migrated scratch database: the benchmark appends real
// events to its log.
func RunAppendBench(ctx context.Context, pool *pgxpool.Pool, opts BenchOptions) (*BenchReport, error) {
	if opts.Events <= 0 {
		opts.Events = 20000
	}
	if len(opts.Clients) == 0 {
		opts.Clients = []int{1, 16, 64}
	}
	if opts.Tenants <= 0 {
		opts.Tenants = 4
	}
	rep := &BenchReport{Settings: map[string]string{}}
	for _, name := range []string{"server_version", "fsync", "synchronous_commit", "wal_sync_method", "full_page_writes", "shared_buffers"} {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return nil, fmt.Errorf("bench: read setting %s: %w", name, err)
		}
		rep.Settings[name] = v
	}
	s, err := New(ctx, pool, Options{})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if opts.Raw {
		if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS dg_bench_raw (LIKE dg_event_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`); err != nil {
			return nil, fmt.Errorf("bench: create raw table: %w", err)
		}
		defer func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS dg_bench_raw`) }()
	}
	per := len(BenchTraceTypes)
	for run, clients := range opts.Clients {
		if clients <= 0 {
			return nil, fmt.Errorf("bench: client count must be positive, got %d", clients)
		}
		prefix := fmt.Sprintf("%08x", time.Now().UnixNano()&0xffffffff) + fmt.Sprintf("%02d", run)
		progress := func(mode string) {
			if opts.Progress != nil {
				opts.Progress(mode, clients)
			}
		}
		progress(BenchModeDG)
		dg, err := benchDG(ctx, s, benchWork(prefix+"a", opts.Events, clients, opts.Tenants), 1)
		if err != nil {
			return nil, err
		}
		row := BenchRow{Clients: clients, DG: *dg}
		progress(BenchModeDGTrace)
		if row.DGTrace, err = benchDG(ctx, s, benchWork(prefix+"m", opts.Events, clients, opts.Tenants), per); err != nil {
			return nil, err
		}
		if opts.Raw {
			progress(BenchModeRaw)
			if row.Raw, err = benchRaw(ctx, pool, benchWork(prefix+"r", opts.Events, clients, opts.Tenants), per); err != nil {
				return nil, err
			}
			progress(BenchModeRawSingle)
			if row.RawSingle, err = benchRaw(ctx, pool, benchWork(prefix+"s", opts.Events, clients, opts.Tenants), 1); err != nil {
				return nil, err
			}
			if row.Raw.EventsPerSec > 0 {
				row.Ratio = row.DG.EventsPerSec / row.Raw.EventsPerSec
				row.RatioTrace = row.DGTrace.EventsPerSec / row.Raw.EventsPerSec
			}
			if row.RawSingle.EventsPerSec > 0 {
				row.RatioSingle = row.DG.EventsPerSec / row.RawSingle.EventsPerSec
			}
		}
		rep.Rows = append(rep.Rows, row)
	}
	return rep, nil
}

type benchItem struct {
	tenant string
	env    *event.Envelope
}

// benchWork splits whole traces over clients; each client's items are in
// trace order.
func benchWork(prefix string, events, clients, tenants int) [][]benchItem {
	traces := (events + len(BenchTraceTypes) - 1) / len(BenchTraceTypes)
	work := make([][]benchItem, clients)
	for t := range traces {
		c := t % clients
		tr := fmt.Sprintf("%s-%06d-%04d", prefix, t, c)
		tenant := fmt.Sprintf("bench%d", t%tenants)
		for seq := range BenchTraceTypes {
			work[c] = append(work[c], benchItem{tenant, BenchEnvelope(tr, seq)})
		}
	}
	return work
}

func summarize(mode string, clients, per int, lat [][]time.Duration, elapsed time.Duration, commits int64) *BenchRun {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := min(int(float64(len(all))*p), len(all)-1)
		return float64(all[i].Microseconds()) / 1000
	}
	return &BenchRun{Mode: mode, Clients: clients, PerCall: per, Events: len(all), Seconds: elapsed.Seconds(),
		EventsPerSec: float64(len(all)) / elapsed.Seconds(), P50Ms: pct(0.50), P99Ms: pct(0.99), Commits: commits}
}

// benchDG appends each client's items through s: one per Store.Append call
// when per is 1, else per items (one trace: work holds whole traces of one
// tenant each) per Store.AppendMany call.
func benchDG(ctx context.Context, s *Store, work [][]benchItem, per int) (*BenchRun, error) {
	lat := make([][]time.Duration, len(work))
	errs := make([]error, len(work))
	before := s.Stats()
	var wg sync.WaitGroup
	start := time.Now()
	for c := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, len(work[c]))
			envs := make([]*event.Envelope, 0, per)
			for i := 0; i < len(work[c]); i += per {
				chunk := work[c][i:min(i+per, len(work[c]))]
				t0 := time.Now()
				var res []*AppendResult
				var errs1 []error
				if per == 1 {
					r, err := s.Append(ctx, chunk[0].tenant, chunk[0].env)
					res, errs1 = []*AppendResult{r}, []error{err}
				} else {
					envs = envs[:0]
					for _, it := range chunk {
						envs = append(envs, it.env)
					}
					res, errs1 = s.AppendMany(ctx, chunk[0].tenant, envs)
				}
				d := time.Since(t0)
				for j, err := range errs1 {
					if err == nil && res[j].Replayed {
						err = fmt.Errorf("event %s was already in the log", chunk[j].env.EventID)
					}
					if err != nil {
						errs[c] = fmt.Errorf("bench append: %w", err)
						return
					}
					l = append(l, d)
				}
			}
			lat[c] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	after := s.Stats()
	mode := BenchModeDG
	if per > 1 {
		mode = BenchModeDGTrace
	}
	run := summarize(mode, len(work), per, lat, elapsed, after.Commits-before.Commits)
	run.FastCommits = after.FastCommits - before.FastCommits
	return run, nil
}

// benchRaw writes the same rows with no validation, rules or hashing, per
// rows to a pgx batch and commit per client.
func benchRaw(ctx context.Context, pool *pgxpool.Pool, work [][]benchItem, per int) (*BenchRun, error) {
	type row struct {
		args []any
	}
	var seq atomic.Int64
	var base int64
	if err := pool.QueryRow(ctx, `SELECT COALESCE(max(log_seq), 0) FROM dg_bench_raw`).Scan(&base); err != nil {
		return nil, fmt.Errorf("bench raw: %w", err)
	}
	seq.Store(base)
	// Pre-render rows so the raw side does no JSON work while timed.
	rows := make([][]row, len(work))
	for c, items := range work {
		for _, it := range items {
			e := it.env
			pj, err := event.CanonicalJSON(e.Payload)
			if err != nil {
				return nil, err
			}
			tj, _ := json.Marshal(e.Tags)
			rows[c] = append(rows[c], row{args: []any{it.tenant, e.EventID, e.TraceID, e.TraceSeq, e.EventType, e.OccurredAt,
				time.Now().UTC(), e.Source.ProducerID, e.Source.System, e.Source.Subsystem, e.Actor.ActorType, e.Actor.ActorID,
				e.CorrelationID, e.CausationEventID, e.IdempotencyKey, e.SchemaVersion, string(tj), string(pj), "sha256:x", "sha256:x", "sha256:x"}})
		}
	}
	const insert = `INSERT INTO dg_bench_raw (log_seq, tenant_id, event_id, trace_id, trace_seq, event_type, occurred_at,
		recorded_at, producer_id, source_system, source_subsystem, actor_type, actor_id, correlation_id,
		causation_event_id, idempotency_key, schema_version, tags, payload, payload_hash, event_hash, chain_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::json, $19::json, $20, $21, $22)`
	lat := make([][]time.Duration, len(work))
	errs := make([]error, len(work))
	var commits atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, len(rows[c]))
			for i := 0; i < len(rows[c]); i += per {
				chunk := rows[c][i:min(i+per, len(rows[c]))]
				t0 := time.Now()
				b := &pgx.Batch{}
				for _, r := range chunk {
					b.Queue(insert, append([]any{seq.Add(1)}, r.args...)...)
				}
				if err := pool.SendBatch(ctx, b).Close(); err != nil {
					errs[c] = fmt.Errorf("bench raw insert: %w", err)
					return
				}
				commits.Add(1)
				d := time.Since(t0)
				for range chunk {
					l = append(l, d)
				}
			}
			lat[c] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	mode := BenchModeRaw
	if per == 1 {
		mode = BenchModeRawSingle
	}
	return summarize(mode, len(work), per, lat, elapsed, commits.Load()), nil
}
