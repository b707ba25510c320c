package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/jackc/pgx/v5"
)

// Querier is what Verify reads through: a pool, a connection or a
// transaction (a backup drill passes its snapshot transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// VerifyOptions select what Verify checks.
type VerifyOptions struct {
	// Tenant limits hash, chain and trace checks to one tenant; the log_seq
	// gap check is always global because log_seq is.
	Tenant string
	// BatchSize is how many events are read per query (default 5000).
	BatchSize int
	// MaxProblems caps the problems listed (default 100); the first bad
	// event is always reported.
	MaxProblems int
}

// Problem kinds reported by Verify.
const (
	ProblemLogSeqGap     = "log_seq_gap"
	ProblemPayloadHash   = "payload_hash"
	ProblemEventHash     = "event_hash"
	ProblemChainHash     = "chain_hash"
	ProblemTraceSeq      = "trace_seq"
	ProblemAfterFinished = "after_trace_finished"
	ProblemChainHead     = "chain_head"
	ProblemUnreadable    = "unreadable"
)

// Problem is one defect Verify found. LogSeq is the first log_seq at which
// the log stops being what the appender wrote (for a gap, the missing
// log_seq).
type Problem struct {
	LogSeq   int64  `json:"log_seq"`
	TenantID string `json:"tenant_id,omitempty"`
	EventID  string `json:"event_id,omitempty"`
	TraceID  string `json:"trace_id,omitempty"`
	Kind     string `json:"kind"`
	Message  string `json:"message"`
}

// TenantChain is one tenant's recomputed chain.
type TenantChain struct {
	TenantID string `json:"tenant_id"`
	Events   int64  `json:"events"`
	// LastLogSeq and ChainHash are the recomputed head.
	LastLogSeq int64  `json:"last_log_seq"`
	ChainHash  string `json:"chain_hash"`
	// HeadMatches reports whether dg_chain_heads agrees with the recomputed head.
	HeadMatches bool `json:"head_matches"`
}

// VerifyReport is the result of Verify. OK is true when no problem was found.
type VerifyReport struct {
	OK         bool          `json:"ok"`
	Tenant     string        `json:"tenant,omitempty"`
	HeadLogSeq int64         `json:"head_log_seq"`
	Events     int64         `json:"events_checked"`
	Traces     int64         `json:"traces_checked"`
	Tenants    []TenantChain `json:"tenants"`
	FirstBad   *Problem      `json:"first_bad,omitempty"`
	Problems   []Problem     `json:"problems"`
	// Truncated is true when more problems existed than were listed.
	Truncated bool `json:"problems_truncated,omitempty"`
}

// Verify recomputes every payload hash, event hash and per-tenant chain
// hash in log_seq order, checks that log_seq has no gaps (globally), that
// each trace's trace_seq runs 0,1,2,... with nothing after TraceFinished,
// and that dg_chain_heads matches the recomputed chains. It reads only; an
// error means it could not read, problems go in the report.
//
// For a consistent answer on a live database pass a REPEATABLE READ
// transaction (Store.Verify does).
func Verify(ctx context.Context, q Querier, opts VerifyOptions) (*VerifyReport, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 100
	}
	rep := &VerifyReport{Tenant: opts.Tenant, Problems: []Problem{}, Tenants: []TenantChain{}}
	var probs []Problem
	add := func(p Problem) { probs = append(probs, p) }

	head, err := Head(ctx, q)
	if err != nil {
		return nil, err
	}
	rep.HeadLogSeq = head
	if err := findGaps(ctx, q, opts.MaxProblems, add); err != nil {
		return nil, err
	}

	type traceCheck struct {
		next     int64
		finished bool
	}
	chains := map[string]*TenantChain{}
	prevHash := map[string]string{}
	traces := map[traceKey]*traceCheck{}
	var after int64
	for {
		evs, last, err := readRaw(ctx, q, opts.Tenant, after, opts.BatchSize, add)
		if err != nil {
			return nil, err
		}
		if last == after {
			break
		}
		after = last
		for _, ev := range evs {
			rep.Events++
			tc := chains[ev.TenantID]
			if tc == nil {
				tc = &TenantChain{TenantID: ev.TenantID}
				chains[ev.TenantID] = tc
				prevHash[ev.TenantID] = event.ChainGenesis(ev.TenantID)
			}
			tc.Events++
			tc.LastLogSeq = ev.LogSeq
			next, verr := event.VerifyStored(prevHash[ev.TenantID], ev)
			if verr != nil {
				add(Problem{LogSeq: ev.LogSeq, TenantID: ev.TenantID, EventID: ev.EventID, TraceID: ev.TraceID,
					Kind: hashProblemKind(verr), Message: verr.Error()})
				// Continue the chain from what is stored, so one bad event
				// is reported once rather than poisoning every later one.
				next = ev.ChainHash
			}
			prevHash[ev.TenantID] = next
			tc.ChainHash = next

			tk := traceKey{ev.TenantID, ev.TraceID}
			tr := traces[tk]
			if tr == nil {
				tr = &traceCheck{}
				traces[tk] = tr
			}
			switch {
			case tr.finished:
				add(Problem{LogSeq: ev.LogSeq, TenantID: ev.TenantID, EventID: ev.EventID, TraceID: ev.TraceID, Kind: ProblemAfterFinished,
					Message: fmt.Sprintf("event %s (log_seq %d) follows the TraceFinished of trace %s", ev.EventID, ev.LogSeq, ev.TraceID)})
			case ev.TraceSeq != tr.next:
				add(Problem{LogSeq: ev.LogSeq, TenantID: ev.TenantID, EventID: ev.EventID, TraceID: ev.TraceID, Kind: ProblemTraceSeq,
					Message: fmt.Sprintf("event %s (log_seq %d) has trace_seq %d but trace %s expects %d", ev.EventID, ev.LogSeq, ev.TraceSeq, ev.TraceID, tr.next)})
			case (ev.TraceSeq == 0) != (ev.EventType == event.TypeTraceStarted):
				add(Problem{LogSeq: ev.LogSeq, TenantID: ev.TenantID, EventID: ev.EventID, TraceID: ev.TraceID, Kind: ProblemTraceSeq,
					Message: fmt.Sprintf("event %s (log_seq %d) is a %s at trace_seq %d; only TraceStarted may be, and must be, at 0", ev.EventID, ev.LogSeq, ev.EventType, ev.TraceSeq)})
			}
			tr.next = ev.TraceSeq + 1
			tr.finished = tr.finished || ev.EventType == event.TypeTraceFinished
		}
	}
	rep.Traces = int64(len(traces))

	if err := checkChainHeads(ctx, q, opts.Tenant, chains, add); err != nil {
		return nil, err
	}
	for _, tc := range chains {
		rep.Tenants = append(rep.Tenants, *tc)
	}
	sort.Slice(rep.Tenants, func(i, j int) bool { return rep.Tenants[i].TenantID < rep.Tenants[j].TenantID })

	sort.SliceStable(probs, func(i, j int) bool { return probs[i].LogSeq < probs[j].LogSeq })
	if len(probs) > 0 {
		first := probs[0]
		rep.FirstBad = &first
	}
	if len(probs) > opts.MaxProblems {
		probs, rep.Truncated = probs[:opts.MaxProblems], true
	}
	rep.Problems = append(rep.Problems, probs...)
	rep.OK = len(probs) == 0
	return rep, nil
}

func hashProblemKind(err error) string {
	var ee *event.Error
	if errors.As(err, &ee) {
		switch ee.Path {
		case "$.payload_hash":
			return ProblemPayloadHash
		case "$.event_hash":
			return ProblemEventHash
		case "$.chain_hash":
			return ProblemChainHash
		}
	}
	return ProblemPayloadHash
}

// findGaps reports every log_seq missing below the head (global: log_seq is
// one sequence for all tenants).
func findGaps(ctx context.Context, q Querier, limit int, add func(Problem)) error {
	rows, err := q.Query(ctx, `SELECT prev, log_seq FROM (
			SELECT log_seq, lag(log_seq, 1, 0::bigint) OVER (ORDER BY log_seq) AS prev FROM dg_event_log) g
		WHERE log_seq <> prev + 1 ORDER BY log_seq LIMIT $1`, limit)
	if err != nil {
		return fmt.Errorf("check log_seq gaps: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var prev, seq int64
		if err := rows.Scan(&prev, &seq); err != nil {
			return fmt.Errorf("check log_seq gaps: %w", err)
		}
		msg := fmt.Sprintf("log_seq %d is missing: log_seq %d follows %d", prev+1, seq, prev)
		if seq-prev > 2 {
			msg = fmt.Sprintf("log_seq %d to %d are missing: log_seq %d follows %d", prev+1, seq-1, seq, prev)
		}
		add(Problem{LogSeq: prev + 1, Kind: ProblemLogSeqGap, Message: msg})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check log_seq gaps: %w", err)
	}
	return nil
}

// readRaw reads a batch of events. A row whose payload or tags do not
// decode becomes a problem (with its log_seq) instead of an error. It
// returns the events and the last log_seq read.
func readRaw(ctx context.Context, q Querier, tenant string, after int64, n int, add func(Problem)) ([]*event.StoredEvent, int64, error) {
	rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM dg_event_log e
		WHERE ($1 = '' OR e.tenant_id = $1) AND e.log_seq > $2::bigint ORDER BY e.log_seq LIMIT $3`, tenant, after, n)
	if err != nil {
		return nil, after, fmt.Errorf("read events after log_seq %d: %w", after, err)
	}
	defer rows.Close()
	var out []*event.StoredEvent
	last := after
	for rows.Next() {
		ev, err := scanEvent(rows)
		var ee *event.Error
		switch {
		case err == nil:
			out = append(out, ev)
			last = ev.LogSeq
		case ev != nil && errors.As(err, &ee):
			add(Problem{LogSeq: ev.LogSeq, TenantID: ev.TenantID, EventID: ev.EventID, TraceID: ev.TraceID, Kind: ProblemUnreadable, Message: err.Error()})
			last = ev.LogSeq
		default:
			return nil, after, fmt.Errorf("read events after log_seq %d: %w", after, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("read events after log_seq %d: %w", after, err)
	}
	return out, last, nil
}

func checkChainHeads(ctx context.Context, q Querier, tenant string, chains map[string]*TenantChain, add func(Problem)) error {
	rows, err := q.Query(ctx, `SELECT tenant_id, log_seq, chain_hash, event_count FROM dg_chain_heads WHERE $1 = '' OR tenant_id = $1`, tenant)
	if err != nil {
		return fmt.Errorf("read chain heads: %w", err)
	}
	heads, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChainHead, error) {
		var h ChainHead
		err := r.Scan(&h.TenantID, &h.LogSeq, &h.ChainHash, &h.EventCount)
		return h, err
	})
	if err != nil {
		return fmt.Errorf("read chain heads: %w", err)
	}
	seen := map[string]bool{}
	for _, h := range heads {
		seen[h.TenantID] = true
		tc := chains[h.TenantID]
		if tc == nil {
			add(Problem{LogSeq: 1, TenantID: h.TenantID, Kind: ProblemChainHead,
				Message: fmt.Sprintf("dg_chain_heads records %d events for tenant %s (last log_seq %d) but the log has none", h.EventCount, h.TenantID, h.LogSeq)})
			continue
		}
		if h.LogSeq == tc.LastLogSeq && h.ChainHash == tc.ChainHash && h.EventCount == tc.Events {
			tc.HeadMatches = true
			continue
		}
		at := min(h.LogSeq, tc.LastLogSeq) + 1
		add(Problem{LogSeq: at, TenantID: h.TenantID, Kind: ProblemChainHead,
			Message: fmt.Sprintf("tenant %s: dg_chain_heads says %d events ending at log_seq %d with %s, the log recomputes to %d events ending at log_seq %d with %s; events at the end of the chain were removed or altered",
				h.TenantID, h.EventCount, h.LogSeq, h.ChainHash, tc.Events, tc.LastLogSeq, tc.ChainHash)})
	}
	for t, tc := range chains {
		if !seen[t] {
			add(Problem{LogSeq: tc.LastLogSeq, TenantID: t, Kind: ProblemChainHead,
				Message: fmt.Sprintf("tenant %s has %d events but no row in dg_chain_heads", t, tc.Events)})
		}
	}
	return nil
}

// Verify checks the log (see the package-level Verify) in one REPEATABLE
// READ read-only snapshot.
func (s *Store) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("verify: begin snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	return Verify(ctx, tx, opts)
}
