package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/decisiongraph/dg/internal/loadgen"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// APIBenchOptions configure RunAPIBench.
type APIBenchOptions struct {
	Clients     []int // concurrent clients per round (1, 32, 128)
	Reads       int   // trace reads per round
	Appends     int   // events appended per round (whole traces of eight)
	TraceEvents int   // events in each trace that is read (100)
	// ReadTraces is how many such traces the read rounds spread over
	// (default 64): request n of client c reads trace (c*31+n) mod
	// ReadTraces, so concurrent requests rarely ask for the same trace.
	// 1 reads a single hot trace.
	ReadTraces int
	// Progress, when set, is told which round starts.
	Progress func(path string, clients int)
	// ReadsOnly skips the in-process read baselines and the append rounds
	// (for CPU profiles of the HTTP read path alone).
	ReadsOnly bool
	// TraceCacheBytes sizes the trace cache of the warm read rounds
	// (0: DefaultTraceCacheBytes; negative: no warm rounds). The cold read
	// rounds always run without a cache.
	TraceCacheBytes int64
	// Warm selects the HTTP read rounds of ReadsOnly: false cold (no
	// trace cache), true warm (trace cache).
	Warm bool
	// Client is the benchmark's HTTP client: ClientLean (the default) or
	// ClientNetHTTP.
	Client string
	// AccessLog, when set, receives the servers' logs as dg up writes
	// them: JSON lines at INFO, one access-log line per request.
	AccessLog io.Writer
	// ReadRate, when positive, adds paced read rounds (cold and warm) at
	// the client counts in RateClients: the clients together send
	// ReadRate requests per second on a fixed schedule, whatever the
	// answers' latency, and each latency is measured from the time the
	// request was due, not from when it was sent, so a stall counts
	// against every request it delays (an open-loop load as wrk2 makes
	// it, free of coordinated omission). The unpaced rounds measure the
	// most the clients get through; the paced ones the latency at a given
	// load.
	ReadRate    float64
	RateClients []int
}

// The benchmark's HTTP clients. Both keep one connection per simulated
// client; they differ in their own CPU cost, which on a small machine
// competes with the server's.
const (
	// ClientLean is internal/loadgen: prebuilt requests, responses read
	// straight into a per-client buffer, no goroutines per connection.
	ClientLean = "lean"
	// ClientNetHTTP is the standard library's http.Client.
	ClientNetHTTP = "net/http"
)

// APIBenchRun is one measured round.
type APIBenchRun struct {
	Ops      int     `json:"ops"`
	Errors   int     `json:"errors"`
	PerSec   float64 `json:"per_second"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	Duration float64 `json:"seconds"`
}

// APIBenchRow compares HTTP with the in-process path at one client count.
type APIBenchRow struct {
	Clients int `json:"clients"`
	// ReadHTTP is the trace read without a trace cache (every request
	// reads and renders all events); ReadHTTPWarm the same with the trace
	// cache, warmed by one read before the round.
	ReadHTTP     *APIBenchRun `json:"read_http"`
	ReadHTTPWarm *APIBenchRun `json:"read_http_warm,omitempty"`
	// WarmValidations is per-trace validation statements per warm read
	// (concurrent reads of one trace share them), WarmMarkChecks tenant
	// mark statements per warm read (concurrent reads of the tenant share
	// them; an unchanged mark confirms a cached trace without a per-trace
	// statement).
	WarmValidations float64 `json:"read_http_warm_validations_per_read"`
	WarmMarkChecks  float64 `json:"read_http_warm_mark_checks_per_read"`
	// ReadHTTPPaced and ReadHTTPWarmPaced are the cold and warm reads at
	// APIBenchOptions.ReadRate (nil when not run at this client count).
	ReadHTTPPaced     *APIBenchRun `json:"read_http_paced,omitempty"`
	ReadHTTPWarmPaced *APIBenchRun `json:"read_http_warm_paced,omitempty"`
	// ReadStore is the in-process baseline of earlier runs:
	// store.TraceEvents plus event.EncodeStoredEvent of every event (no
	// summary). ReadStoreRaw is the in-process fast path: the one-statement
	// read (projection checkpoint, summary row, events) rendered as the
	// handler renders it, without HTTP.
	ReadStore    *APIBenchRun `json:"read_in_process"`
	ReadStoreRaw *APIBenchRun `json:"read_in_process_raw,omitempty"`
	AppendHTTP   *APIBenchRun `json:"append_http"`
	AppendStore  *APIBenchRun `json:"append_in_process"`
	ReadRatio    float64      `json:"read_http_over_in_process"`
	AppendRatio  float64      `json:"append_http_over_in_process"`
}

// APIBenchReport is the result of RunAPIBench.
type APIBenchReport struct {
	Client      string        `json:"client"`
	ReadRate    float64       `json:"read_rate,omitempty"`
	TraceEvents int           `json:"trace_events"`
	ReadTraces  int           `json:"read_traces"`
	Rows        []APIBenchRow `json:"rows"`
}

const benchTenant = "bench"
const benchToken = "bench-api-token"

// RunAPIBench measures the API over real loopback HTTP against the
// in-process path in the same run: reading one trace of TraceEvents
// events (GET /api/v1/traces/{id} with its projected summary, versus
// store.TraceEvents plus the same JSON encoding) and appending events
// (POST /api/v1/events versus store.Append), from each number of clients.
func RunAPIBench(ctx context.Context, st *store.Store, o APIBenchOptions) (*APIBenchReport, error) {
	if o.TraceEvents < 2 {
		o.TraceEvents = 100
	}
	if o.ReadTraces < 1 {
		o.ReadTraces = 64
	}
	switch o.Client {
	case "":
		o.Client = ClientLean
	case ClientLean, ClientNetHTTP:
	default:
		return nil, fmt.Errorf("bench: unknown client %q (want %s or %s)", o.Client, ClientLean, ClientNetHTTP)
	}
	traceIDs := make([]string, o.ReadTraces)
	for t := range traceIDs {
		traceIDs[t] = fmt.Sprintf("bench-read-trace-%04d", t)
		envs := make([]*event.Envelope, o.TraceEvents)
		for i := range envs {
			envs[i] = benchReadEnvelope(traceIDs[t], i, o.TraceEvents)
		}
		_, errs := st.AppendMany(ctx, benchTenant, envs)
		for i, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("bench: seed read trace %s (event %d): %w", traceIDs[t], i, err)
			}
		}
	}
	// pick is the trace of client cl's request n.
	pick := func(cl, n int) string { return traceIDs[(cl*31+n)%len(traceIDs)] }
	pg := projection.NewPG(st, 0)
	for _, name := range projection.Names() {
		c, err := pg.NewCatcher(benchTenant, name)
		if err != nil {
			return nil, err
		}
		if _, err := c.CatchUp(ctx, 0); err != nil {
			return nil, fmt.Errorf("bench: catch up %s: %w", name, err)
		}
	}
	accounts := auth.NewRegistry(&auth.Set{Source: "bench", Accounts: []*auth.Account{
		auth.NewAccount("bench", []string{auth.RoleWriter}, nil, []string{benchTenant}, benchToken)}})
	// The read rounds run first and the appends after them, so the trace
	// summary stays current while reads are measured.
	// Two servers on the same store: cold (no trace cache) and warm.
	var warmCfg *APIConfig
	serve := func(cacheBytes int64) (string, func(), error) {
		cfg := &APIConfig{Log: st, Accounts: accounts, RateLimits: RateLimits{Read: -1, Write: -1, Admin: -1},
			TraceSummary: TraceSummaryFrom(pg), TraceSummaryPG: pg, TraceCacheBytes: cacheBytes}
		if cacheBytes > 0 {
			warmCfg = cfg
		}
		var logger *slog.Logger
		if o.AccessLog != nil {
			logger = slog.New(slog.NewJSONHandler(o.AccessLog, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
		srv := New(Config{API: cfg, Logger: logger})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, fmt.Errorf("bench: listen: %w", err)
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(sctx, ln, nil) }()
		return "http://" + ln.Addr().String(), func() { stop(); <-done }, nil
	}
	base, stopCold, err := serve(0)
	if err != nil {
		return nil, err
	}
	defer stopCold()
	warmBase := ""
	if o.TraceCacheBytes == 0 {
		o.TraceCacheBytes = DefaultTraceCacheBytes
	}
	if o.TraceCacheBytes > 0 {
		b, stopWarm, err := serve(o.TraceCacheBytes)
		if err != nil {
			return nil, err
		}
		defer stopWarm()
		warmBase = b
	}

	maxClients := 1
	for _, c := range o.Clients {
		maxClients = max(maxClients, c)
	}
	var client benchClient
	if o.Client == ClientNetHTTP {
		client = newNetHTTPBenchClient(ctx, maxClients)
	} else {
		client = newLeanBenchClient(maxClients)
	}
	defer client.close()
	rep := &APIBenchReport{Client: o.Client, TraceEvents: o.TraceEvents, ReadTraces: o.ReadTraces}
	if o.ReadRate > 0 {
		rep.ReadRate = o.ReadRate
	}
	for _, c := range o.Clients {
		row := APIBenchRow{Clients: c}
		readRoundAt := func(base string, rate float64) *APIBenchRun {
			return benchRound(c, o.Reads, rate, func(cl, n int) error {
				return client.get(cl, base, "/api/v1/traces/"+url.PathEscape(pick(cl, n)))
			})
		}
		readRound := func(base string) *APIBenchRun { return readRoundAt(base, 0) }
		paced := o.ReadRate > 0 && slices.Contains(o.RateClients, c)
		if o.ReadsOnly {
			if o.Warm && warmBase != "" {
				for _, id := range traceIDs {
					_ = client.get(0, warmBase, "/api/v1/traces/"+url.PathEscape(id))
				}
				progress(o, "read-warm", c)
				row.ReadHTTPWarm, row.WarmValidations, row.WarmMarkChecks = warmRound(readRound, warmBase, warmCfg)
			} else {
				progress(o, "read", c)
				row.ReadHTTP = readRound(base)
			}
			rep.Rows = append(rep.Rows, row)
			continue
		}
		progress(o, "read", c)
		row.ReadHTTP = readRound(base)
		if warmBase != "" {
			for _, id := range traceIDs {
				if err := client.get(0, warmBase, "/api/v1/traces/"+url.PathEscape(id)); err != nil {
					return nil, fmt.Errorf("bench: warm the trace cache: %w", err)
				}
			}
			progress(o, "read-warm", c)
			row.ReadHTTPWarm, row.WarmValidations, row.WarmMarkChecks = warmRound(readRound, warmBase, warmCfg)
		}
		if paced {
			progress(o, "read-paced", c)
			row.ReadHTTPPaced = readRoundAt(base, o.ReadRate)
			if warmBase != "" {
				progress(o, "read-warm-paced", c)
				row.ReadHTTPWarmPaced = readRoundAt(warmBase, o.ReadRate)
			}
		}
		progress(o, "read-in-process-raw", c)
		row.ReadStoreRaw = benchRound(c, o.Reads, 0, func(cl, n int) error {
			return benchRawRead(ctx, st, pick(cl, n))
		})
		progress(o, "read-in-process", c)
		row.ReadStore = benchRound(c, o.Reads, 0, func(cl, n int) error {
			evs, err := st.TraceEvents(ctx, benchTenant, pick(cl, n), -1, store.MaxQueryLimit)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				if _, err := event.EncodeStoredEvent(ev); err != nil {
					return err
				}
			}
			return nil
		})
		row.ReadRatio = ratio(row.ReadHTTP.PerSec, row.ReadStore.PerSec)
		rep.Rows = append(rep.Rows, row)
	}
	if o.ReadsOnly {
		return rep, nil
	}
	var round atomic.Int64
	for i := range rep.Rows {
		row := &rep.Rows[i]
		c := row.Clients
		progress(o, "append", c)
		r := round.Add(1)
		row.AppendHTTP = benchRound(c, o.Appends, 0, func(client_, n int) error {
			env := store.BenchEnvelope(fmt.Sprintf("bench-h%d-c%d-t%d", r, client_, n/8), n%8)
			body, err := event.EncodeEnvelope(env)
			if err != nil {
				return err
			}
			return client.post(client_, base, "/api/v1/events", body)
		})
		r = round.Add(1)
		row.AppendStore = benchRound(c, o.Appends, 0, func(client_, n int) error {
			_, err := st.Append(ctx, benchTenant, store.BenchEnvelope(fmt.Sprintf("bench-s%d-c%d-t%d", r, client_, n/8), n%8))
			return err
		})
		row.AppendRatio = ratio(row.AppendHTTP.PerSec, row.AppendStore.PerSec)
	}
	return rep, nil
}

// warmRound runs a warm read round and counts its per-trace validation
// and tenant mark statements per read.
func warmRound(round func(string) *APIBenchRun, base string, cfg *APIConfig) (*APIBenchRun, float64, float64) {
	before := cfg.TraceCacheStats()
	run := round(base)
	after := cfg.TraceCacheStats()
	return run, ratio(float64(after.Validations-before.Validations), float64(run.Ops)),
		ratio(float64(after.MarkChecks-before.MarkChecks), float64(run.Ops))
}

func progress(o APIBenchOptions, path string, c int) {
	if o.Progress != nil {
		o.Progress(path, c)
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// benchRound runs total operations split over clients; op gets the
// client number and the client's operation number (0, 1, ...), so each
// client appends whole traces in order.
//
// With rate 0 each client sends its next request as soon as it has the
// answer to the last one (a closed loop: the round measures the most the
// clients get through, and the latency at that load). With a positive
// rate the round is paced: operation n of client c is due at
// (n*clients+c)/rate seconds after the start, so the clients together
// offer rate operations per second, evenly spread. A client waits for a
// due time still ahead and sends at once when it is behind; either way
// the latency runs from the due time, so a slow answer also counts in the
// latency of the requests it held up.
func benchRound(clients, total int, rate float64, op func(client, n int) error) *APIBenchRun {
	per := max(total/clients, 1)
	lat := make([][]time.Duration, clients)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, per)
			for n := 0; n < per; n++ {
				t0 := time.Now()
				if rate > 0 {
					t0 = start.Add(time.Duration(float64(n*clients+c) / rate * float64(time.Second)))
					if wait := time.Until(t0); wait > 0 {
						time.Sleep(wait)
					}
				}
				if err := op(c, n); err != nil {
					errs.Add(1)
				}
				l = append(l, time.Since(t0))
			}
			lat[c] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ms := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(int(q*float64(len(all))), len(all)-1)].Microseconds()) / 1000
	}
	return &APIBenchRun{Ops: len(all), Errors: int(errs.Load()), PerSec: float64(len(all)) / elapsed.Seconds(),
		P50Ms: ms(0.50), P99Ms: ms(0.99), MaxMs: ms(1), Duration: elapsed.Seconds()}
}

// benchClient sends the benchmark's requests: get expects 200, post (a
// JSON body) 201. Client number cl uses its own connection and buffer;
// base is "http://host:port".
type benchClient interface {
	get(cl int, base, target string) error
	post(cl int, base, target string, body []byte) error
	close()
}

// leanBenchClient is internal/loadgen: one connection per client and
// server, GET requests built once per target.
type leanBenchClient struct {
	conns []map[string]*loadgen.Conn // by client, then host
	gets  []map[string][]byte        // by client, then base+target
	bufs  [][]byte
}

func newLeanBenchClient(clients int) *leanBenchClient {
	c := &leanBenchClient{conns: make([]map[string]*loadgen.Conn, clients), gets: make([]map[string][]byte, clients), bufs: make([][]byte, clients)}
	for i := range c.conns {
		c.conns[i], c.gets[i], c.bufs[i] = map[string]*loadgen.Conn{}, map[string][]byte{}, make([]byte, 128<<10)
	}
	return c
}

var benchHeaders = []string{"Authorization: Bearer " + benchToken, "x-tenant-id: " + benchTenant}

func (c *leanBenchClient) do(cl int, base string, req []byte, want int) error {
	host := strings.TrimPrefix(base, "http://")
	conn := c.conns[cl][host]
	if conn == nil {
		var err error
		if conn, err = loadgen.Dial(host); err != nil {
			return err
		}
		c.conns[cl][host] = conn
	}
	status, body, err := conn.Do(req, c.bufs[cl])
	c.bufs[cl] = body[:0]
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("status %d: %.200s", status, body)
	}
	return nil
}

func (c *leanBenchClient) get(cl int, base, target string) error {
	req, ok := c.gets[cl][base+target]
	if !ok {
		req = loadgen.Request(http.MethodGet, strings.TrimPrefix(base, "http://"), target, benchHeaders, nil)
		c.gets[cl][base+target] = req
	}
	return c.do(cl, base, req, http.StatusOK)
}

func (c *leanBenchClient) post(cl int, base, target string, body []byte) error {
	req := loadgen.Request(http.MethodPost, strings.TrimPrefix(base, "http://"), target,
		append(benchHeaders[:len(benchHeaders):len(benchHeaders)], "Content-Type: application/json"), body)
	return c.do(cl, base, req, http.StatusCreated)
}

func (c *leanBenchClient) close() {
	for _, m := range c.conns {
		for _, conn := range m {
			conn.Close()
		}
	}
}

// netHTTPBenchClient is the standard library's client.
type netHTTPBenchClient struct {
	ctx  context.Context
	c    *http.Client
	bufs [][]byte
}

func newNetHTTPBenchClient(ctx context.Context, clients int) *netHTTPBenchClient {
	c := &netHTTPBenchClient{ctx: ctx, bufs: make([][]byte, clients),
		c: &http.Client{Transport: &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, IdleConnTimeout: time.Minute}}}
	for i := range c.bufs {
		c.bufs[i] = make([]byte, 128<<10)
	}
	return c
}

func (c *netHTTPBenchClient) get(cl int, base, target string) error {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, base+target, nil)
	if err != nil {
		return err
	}
	return c.do(req, http.StatusOK, c.bufs[cl])
}

func (c *netHTTPBenchClient) post(cl int, base, target string, body []byte) error {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, base+target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, http.StatusCreated, c.bufs[cl])
}

func (c *netHTTPBenchClient) close() { c.c.CloseIdleConnections() }

// do sends req and reads the body into buf, the calling client's own
// buffer.
func (c *netHTTPBenchClient) do(req *http.Request, want int, buf []byte) error {
	req.Header.Set("Authorization", "Bearer "+benchToken)
	req.Header.Set("x-tenant-id", benchTenant)
	resp, err := c.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read the body into a large buffer: io.Copy to io.Discard reads 8 KiB
	// at a time, which costs the benchmark's own client a read syscall per
	// 8 KiB of a ~60 KiB trace on the CPUs the server needs.
	for {
		_, err := resp.Body.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if resp.StatusCode != want {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// benchReadEnvelope is event seq of the read trace: TraceStarted, then
// observations, then TraceFinished as the last of n events.
func benchReadEnvelope(traceID string, seq, n int) *event.Envelope {
	var env *event.Envelope
	switch {
	case seq == 0:
		env = store.BenchEnvelope(traceID, 0)
	case seq == n-1:
		env = store.BenchEnvelope(traceID, 7)
	default:
		env = store.BenchEnvelope(traceID, 1+(seq-1)%2) // InputObserved, EntityObserved
	}
	env.TraceSeq = int64(seq)
	env.EventID = fmt.Sprintf("%s-%d", traceID, seq)
	env.IdempotencyKey = fmt.Sprintf("%s:%s:%d", env.EventType, traceID, seq)
	return env
}

// DefaultTraceCacheBytes is the trace cache size of the benchmark's warm
// rounds and of a node (64 MiB).
const DefaultTraceCacheBytes = 64 << 20

// benchRawRead is the in-process fast path: the handler's one-statement
// read and rendering, without HTTP (and without a cache).
func benchRawRead(ctx context.Context, st *store.Store, traceID string) error {
	bp := getTraceBuf()
	defer putTraceBuf(bp)
	t := rawTraceRender{buf: append((*bp)[:0], traceBodyStart...)}
	var sum1, sum2 []byte
	err := st.ReadTraceRawWithSummary(ctx, benchTenant, traceID, projection.TraceSummary, func(m *store.RawTraceMeta) error {
		if m.Checkpoint < m.Head || !m.HasSummary {
			return fmt.Errorf("bench: the trace summary is not current")
		}
		sum1, sum2 = appendRawSummary(nil, &m.Summary)
		return nil
	}, t.event)
	if err != nil {
		return err
	}
	t.buf = appendSummaryTail(t.buf, sum1, sum2, t.system, t.hasSys)
	*bp = t.buf
	return nil
}
