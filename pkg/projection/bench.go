package projection

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// BenchOptions size a projection benchmark.
type BenchOptions struct {
	Tenant       string
	Events       int // approximate size of the log (default 100000)
	Burst        int // events appended before the catch-up measurement (default 10000)
	Queries      int // subgraph and precedent queries each (default 1000)
	DigestEvents int // size of the offline digest log (default 10000)
	Seed         uint64
	Progress     io.Writer // progress lines; nil for none
}

func (o BenchOptions) withDefaults() BenchOptions {
	if o.Tenant == "" {
		o.Tenant = "bench"
	}
	if o.Events <= 0 {
		o.Events = 100000
	}
	if o.Burst <= 0 {
		o.Burst = 10000
	}
	if o.Queries <= 0 {
		o.Queries = 1000
	}
	if o.DigestEvents <= 0 {
		o.DigestEvents = 10000
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// Throughput is a timed pass over some events.
type Throughput struct {
	Events     int64   `json:"events"`
	Seconds    float64 `json:"seconds"`
	EventsPerS float64 `json:"events_per_second"`
}

func throughput(n int64, d time.Duration) Throughput {
	t := Throughput{Events: n, Seconds: d.Seconds()}
	if t.Seconds > 0 {
		t.EventsPerS = float64(n) / t.Seconds
	}
	return t
}

// Latency summarises query latencies in milliseconds.
type Latency struct {
	Queries int     `json:"queries"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

func latency(ds []time.Duration) Latency {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	if len(ds) == 0 {
		return Latency{}
	}
	return Latency{Queries: len(ds), P50ms: ms(ds[len(ds)/2]), P99ms: ms(ds[(len(ds)*99)/100]), MaxMs: ms(ds[len(ds)-1])}
}

// BenchReport holds every figure of a benchmark run.
type BenchReport struct {
	Tenant        string     `json:"tenant"`
	Traces        int        `json:"traces"`
	Load          Throughput `json:"bulk_load"`
	RawRead       Throughput `json:"raw_sequential_read"`
	Rebuild       Throughput `json:"full_rebuild"`
	RebuildBuildS float64    `json:"rebuild_build_seconds"`
	RebuildSwapS  float64    `json:"rebuild_swap_seconds"`
	// RebuildProjectS (read, decode, project, COPY) and RebuildIndexS
	// (index builds and digests) are the parts of RebuildBuildS.
	RebuildProjectS float64 `json:"rebuild_project_seconds"`
	RebuildIndexS   float64 `json:"rebuild_index_seconds"`
	// CatchUpLag is the time from the commit of a burst of Burst events
	// to all three checkpoints of live Runtime workers reaching it.
	CatchUpLag float64    `json:"catch_up_lag_seconds"`
	CatchUp    Throughput `json:"catch_up_after_burst"`
	Subgraph   Latency    `json:"subgraph_depth2"`
	Precedent  Latency    `json:"precedent_search"`
	Offline    Throughput `json:"offline_digest"`
}

// eventsPerTrace is roughly how many events Synthetic makes per trace.
const eventsPerTrace = 9

// RunBench loads a synthetic log into tenant (which should be empty) and
// measures: a raw sequential read of the log (the baseline), a full
// rebuild with swap, catch-up after a burst of appends, depth-2 subgraph
// queries, precedent searches, and the offline in-memory digest.
func RunBench(ctx context.Context, st *store.Store, o BenchOptions) (*BenchReport, error) {
	o = o.withDefaults()
	pg := NewPG(st, 0)
	rep := &BenchReport{Tenant: o.Tenant}
	loader, err := NewBulkLoader(ctx, st.Pool(), o.Tenant)
	if err != nil {
		return nil, err
	}
	traces := max(o.Events/eventsPerTrace, 1)
	const chunk = 2000
	start := time.Now()
	var loaded int64
	for first := 0; first < traces; first += chunk {
		envs := Synthetic(SynthOptions{Seed: o.Seed + uint64(first), Traces: min(chunk, traces-first), FirstTrace: first})
		if _, err := loader.Load(ctx, envs); err != nil {
			return nil, err
		}
		loaded += int64(len(envs))
	}
	rep.Traces = traces
	rep.Load = throughput(loaded, time.Since(start))
	fmt.Fprintf(o.Progress, "loaded %d events (%d traces) in %.1fs\n", loaded, traces, rep.Load.Seconds)

	start = time.Now()
	var read int64
	if _, err := st.Stream(ctx, o.Tenant, 0, 5000, func(evs []*event.StoredEvent) error {
		read += int64(len(evs))
		return nil
	}); err != nil {
		return nil, err
	}
	rep.RawRead = throughput(read, time.Since(start))
	fmt.Fprintf(o.Progress, "raw read: %.0f events/s\n", rep.RawRead.EventsPerS)

	start = time.Now()
	rb, err := pg.Rebuild(ctx, RebuildOptions{Tenant: o.Tenant})
	if err != nil {
		return nil, err
	}
	rep.Rebuild = throughput(int64(rb.Events), time.Since(start))
	rep.RebuildBuildS, rep.RebuildSwapS = rb.BuildTime.Seconds(), float64(rb.SwapMillis)/1000
	rep.RebuildProjectS, rep.RebuildIndexS = float64(rb.ProjectMillis)/1000, float64(rb.IndexMillis)/1000
	fmt.Fprintf(o.Progress, "full rebuild: %.0f events/s (%.1fs)\n", rep.Rebuild.EventsPerS, rep.Rebuild.Seconds)

	lag, burstEvents, err := measureCatchUpLag(ctx, st, pg, loader, o, traces)
	if err != nil {
		return nil, err
	}
	rep.CatchUpLag = lag.Seconds()
	rep.CatchUp = throughput(int64(burstEvents), lag)
	fmt.Fprintf(o.Progress, "catch-up lag after a burst of %d: %.2fs\n", burstEvents, rep.CatchUpLag)

	r := rand.New(rand.NewPCG(o.Seed, 1))
	var ds []time.Duration
	for i := 0; i < o.Queries; i++ {
		t0 := time.Now()
		if _, err := pg.ContextSubgraph(ctx, o.Tenant, SubgraphQuery{NodeType: "trace", NodeID: synthTraceID(r.IntN(traces)), MaxDepth: 2}); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	rep.Subgraph = latency(ds)
	ds = ds[:0]
	outcomes := []string{"", "success", "failure"}
	for i := 0; i < o.Queries; i++ {
		t0 := time.Now()
		if _, err := pg.FindPrecedents(ctx, o.Tenant, PrecedentQuery{PolicyID: fmt.Sprintf("policy_%d", r.IntN(10)), Outcome: outcomes[r.IntN(3)], Limit: 100}); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	rep.Precedent = latency(ds)
	fmt.Fprintf(o.Progress, "subgraph depth 2 p99 %.2f ms, precedent search p99 %.2f ms\n", rep.Subgraph.P99ms, rep.Precedent.P99ms)

	off, err := measureOfflineDigest(o.DigestEvents)
	if err != nil {
		return nil, err
	}
	rep.Offline = off
	fmt.Fprintf(o.Progress, "offline digest of %d events from file bytes: %.0f events/s\n", off.Events, rep.Offline.EventsPerS)
	return rep, nil
}

// offlineDigestRuns is how many timed offline digests measureOfflineDigest
// averages over (after one untimed run).
const offlineDigestRuns = 5

// measureOfflineDigest times what `dg events digest FILE` does, as the
// acceptance benchmark BenchmarkOfflineDigestFile10k does: the first n
// envelopes of the same synthetic log (seed 3, a valid log prefix) encoded
// as an event file in the fixture format, from those bytes to the digest
// lines through DigestOfflineData. After one untimed run it times
// offlineDigestRuns runs and reports one digest: its events and the mean
// time per digest.
func measureOfflineDigest(n int) (Throughput, error) {
	envs := Synthetic(SynthOptions{Seed: 3, Traces: max(n*12/100, 1)})
	for len(envs) < n {
		envs = Synthetic(SynthOptions{Seed: 3, Traces: 2 * max(len(envs)/eventsPerTrace, 1)})
	}
	data, err := EncodeEventsFile(envs[:n])
	if err != nil {
		return Throughput{}, err
	}
	files := []EventData{{Name: "synthetic.json", Data: data}}
	run := func() (int, error) {
		res, err := DigestOfflineData("default", files, event.Options{})
		if err != nil {
			return 0, err
		}
		if len(res.Digests.Lines()) == 0 {
			return 0, fmt.Errorf("offline digest gave no digest lines")
		}
		return res.Appended, nil
	}
	if _, err := run(); err != nil {
		return Throughput{}, err
	}
	var events int
	start := time.Now()
	for range offlineDigestRuns {
		a, err := run()
		if err != nil {
			return Throughput{}, err
		}
		events += a
	}
	return throughput(int64(events/offlineDigestRuns), time.Since(start)/offlineDigestRuns), nil
}

// measureCatchUpLag runs live Runtime workers (as a node does), commits a
// burst of about o.Burst events in one transaction (with the NOTIFY every
// append commit sends) and returns the time from that commit until all
// three checkpoints reach the burst's last log_seq.
func measureCatchUpLag(ctx context.Context, st *store.Store, pg *PG, loader *BulkLoader, o BenchOptions, traces int) (time.Duration, int, error) {
	rt := NewRuntime(st, RuntimeOptions{DigestEvery: -1})
	if err := rt.Start(ctx); err != nil {
		return 0, 0, err
	}
	defer rt.Stop()
	return BurstLag(ctx, pg, loader, o.Tenant, Synthetic(SynthOptions{Seed: o.Seed + 1<<40, Traces: max(o.Burst/eventsPerTrace, 1), FirstTrace: traces}))
}

// BurstLag waits until every checkpoint of tenant is at its head, commits
// burst through loader in one transaction and returns the time from that
// commit until every checkpoint reaches the burst's last log_seq, with the
// number of events committed. Live workers (a running Runtime) must be
// following the tenant.
func BurstLag(ctx context.Context, pg *PG, loader *BulkLoader, tenant string, burst []event.Envelope) (time.Duration, int, error) {
	head, err := pg.TenantHead(ctx, tenant)
	if err != nil {
		return 0, 0, err
	}
	// Workers start idle at the head (the rebuild left them there).
	if _, err := waitCheckpoints(ctx, pg, tenant, head); err != nil {
		return 0, 0, err
	}
	last, err := loader.Load(ctx, burst)
	if err != nil {
		return 0, 0, err
	}
	lag, err := waitCheckpoints(ctx, pg, tenant, last)
	return lag, len(burst), err
}

// waitCheckpoints polls until every checkpoint of tenant is at least seq
// and returns how long that took.
func waitCheckpoints(ctx context.Context, pg *PG, tenant string, seq int64) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(10 * time.Minute)
	for {
		var behind int
		if err := pg.pool.QueryRow(ctx, `SELECT $3 - count(*) FROM dg_projection_cursors
			WHERE tenant_id = $1 AND last_log_seq >= $2`, tenant, seq, len(Names())).Scan(&behind); err != nil {
			return 0, fmt.Errorf("read checkpoints: %w", err)
		}
		if behind <= 0 {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("projections of tenant %s did not reach log_seq %d in 10 minutes", tenant, seq)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
