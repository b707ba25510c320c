package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

// decodingLog hides the store's raw trace reads, so a server on it takes
// the decoding path (store.TraceEvents + event.EncodeStoredEvent): the
// reference the fast path is compared with.
type decodingLog struct{ server.EventLog }

// countingLog is the store, counting the decoding reads that reach it.
type countingLog struct {
	*store.Store
	decoded atomic.Int64
}

func (l *countingLog) TraceEvents(ctx context.Context, tenant, traceID string, since int64, limit int) ([]*event.StoredEvent, error) {
	l.decoded.Add(1)
	return l.Store.TraceEvents(ctx, tenant, traceID, since, limit)
}

// fastTraceRunes are the characters random strings are made of: HTML
// specials, escapes, controls, U+2028/9, non-ASCII and astral.
var fastTraceRunes = []rune{'a', 'Z', '0', ' ', '<', '>', '&', '"', '\\', '/', '\n', '\t', '\b', '\f', '\r', 0, 1, 0x1f, 0x7f,
	'é', 'ß', '漢', '😀', '\u2028', '\u2029', '\ufeff', '\U0010FFFF', 0xfffd}

func fastTraceString(r *rand.Rand) string {
	var b strings.Builder
	for n := r.IntN(8); n > 0; n-- {
		b.WriteRune(fastTraceRunes[r.IntN(len(fastTraceRunes))])
	}
	return b.String()
}

func fastTraceValue(r *rand.Rand, depth int) any {
	switch k := r.IntN(10); {
	case k == 0:
		return nil
	case k == 1:
		return r.IntN(2) == 0
	case k <= 3:
		var b strings.Builder
		if r.IntN(3) == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(byte('1' + r.IntN(9)))
		for i := r.IntN(45); i > 0; i-- {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		return json.Number(b.String())
	case k <= 6 || depth > 3:
		return fastTraceString(r)
	case k <= 8:
		a := make([]any, r.IntN(4))
		for i := range a {
			a[i] = fastTraceValue(r, depth+1)
		}
		return a
	}
	m := map[string]any{}
	for n := r.IntN(5); n > 0; n-- {
		m[fastTraceKey(r)] = fastTraceValue(r, depth+1)
	}
	return m
}

// fastTraceKey is a key without characters that need escapes (a key with
// one sends the whole read down the decoding path; the test has one such
// trace on purpose).
func fastTraceKey(r *rand.Rand) string {
	var b strings.Builder
	for n := 1 + r.IntN(6); n > 0; n-- {
		c := fastTraceRunes[r.IntN(len(fastTraceRunes))]
		if c < 0x20 || c == '"' || c == '\\' {
			c = 'k'
		}
		b.WriteRune(c)
	}
	return b.String()
}

func strp(s string) *string { return &s }

// fastTraceEvents builds a trace: TraceStarted (with an entity system full
// of specials), n random InputObserved events with optional members
// present or absent, then TraceFinished when finish is set.
func fastTraceEvents(r *rand.Rand, traceID string, n int, finish bool) []*event.Envelope {
	mk := func(seq int, typ string, payload map[string]any) *event.Envelope {
		env := &event.Envelope{
			EventID: fmt.Sprintf("%s/ev<%d>&", traceID, seq), TraceID: traceID, TraceSeq: int64(seq), EventType: typ,
			OccurredAt:     "2026-01-02T03:04:05.123456+01:00",
			Source:         event.Source{ProducerID: "prod \u2028 é", System: "sys<&>"},
			Actor:          event.Actor{ActorType: "agent", ActorID: "agent \"quoted\" 😀"},
			IdempotencyKey: fmt.Sprintf("k-%s-%d", traceID, seq), SchemaVersion: int64(1 + r.IntN(3)),
			Payload: payload,
		}
		if r.IntN(2) == 0 {
			env.Source.Subsystem = strp("sub\tsystem")
		}
		if r.IntN(2) == 0 {
			env.CorrelationID = strp("corr\u2029" + traceID)
		}
		if r.IntN(2) == 0 {
			env.CausationEventID = strp("cause<" + traceID + ">")
		}
		switch r.IntN(3) {
		case 0: // no tags
		case 1:
			env.Tags = []string{}
		default:
			env.Tags = []string{"t<1>", "é&\u2028", "plain"}
		}
		return env
	}
	evs := []*event.Envelope{mk(0, event.TypeTraceStarted, map[string]any{
		"workflow": "wf<&>", "title": "Title \u2028 \"q\" 😀",
		"primary_entity": map[string]any{"entity_type": "ticket", "entity_id": "T-1", "system": "crm <&> \u2029 é"},
		"big":            json.Number("-1234567890123456789012345678901234567890"),
	})}
	for i := 1; i <= n; i++ {
		p := map[string]any{
			"input_id": fmt.Sprintf("input:%d", i),
			"source":   map[string]any{"system": "s<", "object_type": "o&", "object_id": "id\u2028", "locator": nil},
			"facts":    []any{map[string]any{"key": "k", "value": []any{json.Number("12345678901234567890123456789012345678901"), nil, []any{[]any{}}}}},
		}
		for k := r.IntN(4); k > 0; k-- {
			p[fastTraceKey(r)] = fastTraceValue(r, 0)
		}
		evs = append(evs, mk(i, event.TypeInputObserved, p))
	}
	if finish {
		evs = append(evs, mk(n+1, event.TypeTraceFinished, map[string]any{"outcome": "approved <&>"}))
	}
	return evs
}

// TestTraceFastPathMatchesDecodingPath compares the trace route's bytes
// (status, content type, body) between the fast path and the decoding
// path over varied events, with the projected summary read in one
// statement (TraceSummaryPG), through the summary hook, with a hook that
// returns its own map, and without a summary; also for unknown traces,
// another tenant, a stale projection and a payload the fast path
// declines.
func TestTraceFastPathMatchesDecodingPath(t *testing.T) {
	ctx := context.Background()
	base := newAPIEnv(t, nil)
	st := base.store
	counted := &countingLog{Store: st}
	pg := projection.NewPG(st, 0)
	hookMap := func(_ context.Context, _, traceID string) (any, error) {
		return map[string]any{"trace_id": traceID, "note": "<&>\u2028"}, nil
	}
	on := func(mut func(*server.APIConfig)) *apiEnv {
		cfg := &server.APIConfig{Log: counted, Accounts: testAccountsWithTenants(tenantA, "tenant-b"), RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1}}
		mut(cfg)
		srv := server.New(server.Config{Env: "dev", API: cfg, Logger: discardLogger()})
		return &apiEnv{t: t, store: st, srv: srv, h: srv.Handler(), logs: base.logs}
	}
	type pair struct {
		name         string
		fast, decode *apiEnv
	}
	pairs := []pair{
		{"summary in one statement",
			on(func(c *server.APIConfig) { c.TraceSummaryPG = pg }),
			on(func(c *server.APIConfig) { c.Log = decodingLog{st}; c.TraceSummary = server.TraceSummaryFrom(pg) })},
		{"summary hook",
			on(func(c *server.APIConfig) { c.TraceSummary = server.TraceSummaryFrom(pg) }),
			on(func(c *server.APIConfig) { c.Log = decodingLog{st}; c.TraceSummary = server.TraceSummaryFrom(pg) })},
		{"hook with its own map",
			on(func(c *server.APIConfig) { c.TraceSummary = hookMap }),
			on(func(c *server.APIConfig) { c.Log = decodingLog{st}; c.TraceSummary = hookMap })},
		{"no summary",
			on(func(*server.APIConfig) {}),
			on(func(c *server.APIConfig) { c.Log = decodingLog{st} })},
	}
	var cachedCfg *server.APIConfig
	pairs = append(pairs, pair{"trace cache",
		on(func(c *server.APIConfig) { c.TraceSummaryPG = pg; c.TraceCacheBytes = 1 << 20; cachedCfg = c }),
		on(func(c *server.APIConfig) { c.Log = decodingLog{st}; c.TraceSummary = server.TraceSummaryFrom(pg) })})

	r := rand.New(rand.NewPCG(7, 11))
	var traces []string
	for i := 0; i < 12; i++ {
		id := newTraceID(fmt.Sprintf("fast<%d>&\u2028é", i))
		for _, env := range fastTraceEvents(r, id, 1+r.IntN(30), i%2 == 0) {
			if _, err := st.Append(ctx, tenantA, env); err != nil {
				t.Fatalf("append %s/%d: %v", id, env.TraceSeq, err)
			}
		}
		traces = append(traces, id)
	}
	// A payload key with a control character: the fast path declines it.
	declined := newTraceID("declined")
	evs := fastTraceEvents(r, declined, 2, true)
	evs[1].Payload["ctl\x01key"] = "v"
	for _, env := range evs {
		if _, err := st.Append(ctx, tenantA, env); err != nil {
			t.Fatal(err)
		}
	}
	traces = append(traces, declined)

	compare := func(label, tenant, id string) (status int) {
		t.Helper()
		path := "/api/v1/traces/" + url.PathEscape(id)
		for _, p := range pairs {
			rq := req{method: "GET", path: path, token: readerToken, tenant: tenant, headers: map[string]string{"x-request-id": "req<&>" + strings.ReplaceAll(label, " ", "-")}}
			a, b := p.fast.do(rq), p.decode.do(rq)
			if a.Code != b.Code || a.Header().Get("Content-Type") != b.Header().Get("Content-Type") || !bytes.Equal(a.Body.Bytes(), b.Body.Bytes()) {
				t.Errorf("%s, %s, trace %q: fast %d %q, decoding %d %q; bodies: %s", p.name, label, id,
					a.Code, a.Header().Get("Content-Type"), b.Code, b.Header().Get("Content-Type"), firstDiff(a.Body.Bytes(), b.Body.Bytes()))
			}
			if msg := sameHeadersButLength(a, b); msg != "" {
				t.Errorf("%s, %s, trace %q: %s", p.name, label, id, msg)
			}
			status = a.Code
		}
		return status
	}

	// Before catch-up: 409 wherever the projection is consulted.
	compare("stale", tenantA, traces[0])
	for _, name := range projection.Names() {
		c, err := pg.NewCatcher(tenantA, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CatchUp(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 2; round++ { // the second round is served from the trace cache
		for i, id := range traces {
			before := counted.decoded.Load()
			if st := compare(fmt.Sprintf("trace-%d-round-%d", i, round), tenantA, id); st != 200 {
				t.Errorf("trace %q: status %d", id, st)
			}
			// Only the declined trace may reach the decoding path from the
			// fast servers (each pair once).
			if n := counted.decoded.Load() - before; (id == declined) != (n == int64(len(pairs))) || (id != declined && n != 0) {
				t.Errorf("trace %q: %d decoding reads from the fast servers", id, n)
			}
		}
	}
	if cs := cachedCfg.TraceCacheStats(); cs.Hits != int64(len(traces)-1) || cs.Entries != len(traces)-1 {
		t.Errorf("trace cache after two rounds: %+v", cs)
	}
	compare("unknown", tenantA, "no-such-trace")
	compare("other tenant", "tenant-b", traces[1])

	// Behind again after one more event (the trace is unfinished).
	more := fastTraceEvents(r, traces[1], 2, false)[2]
	more.TraceSeq = int64(len(mustTrace(t, st, traces[1])))
	more.EventID += "-more"
	more.IdempotencyKey += "-more"
	if _, err := st.Append(ctx, tenantA, more); err != nil {
		t.Fatal(err)
	}
	compare("stale again", tenantA, traces[1])

	// Another dg process appends to the same database: the cached
	// rendering of that trace is not used once the projection is current.
	other, err := store.New(ctx, st.Pool(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, id := range []string{traces[1], traces[3]} {
		ev := fastTraceEvents(r, id, 2, false)[2]
		ev.TraceSeq = int64(len(mustTrace(t, st, id)))
		ev.EventID += "-other"
		ev.IdempotencyKey += "-other"
		if _, err := other.Append(ctx, tenantA, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range projection.Names() {
		c, _ := pg.NewCatcher(tenantA, name)
		if _, err := c.CatchUp(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	before := cachedCfg.TraceCacheStats()
	for round := 0; round < 2; round++ {
		for i, id := range traces {
			compare(fmt.Sprintf("after-other-append-%d-%d", i, round), tenantA, id)
		}
	}
	after := cachedCfg.TraceCacheStats()
	if after.Misses-before.Misses != 2 || after.Hits-before.Hits != int64(2*(len(traces)-1)-2) {
		t.Errorf("trace cache around another process's appends: before %+v after %+v", before, after)
	}
}

func mustTrace(t *testing.T, st *store.Store, id string) []*event.StoredEvent {
	t.Helper()
	evs, err := st.TraceEvents(context.Background(), tenantA, id, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// firstDiff shows where two bodies part.
// sameHeadersButLength reports how the fast response's headers differ
// from the decoding path's ("" when they do not): every header is the
// same except Content-Length, which the fast path adds and which must then
// be the body's length (the decoding path leaves the length to net/http,
// which sends it chunked).
func sameHeadersButLength(fast, dec *httptest.ResponseRecorder) string {
	fh, dh := fast.Header().Clone(), dec.Header().Clone()
	if cl := fh.Values("Content-Length"); len(cl) > 0 {
		if len(cl) != 1 || cl[0] != strconv.Itoa(fast.Body.Len()) {
			return fmt.Sprintf("Content-Length %q for a %d-byte body", cl, fast.Body.Len())
		}
		fh.Del("Content-Length")
	}
	if dh.Get("Content-Length") != "" {
		return "the decoding path sent a Content-Length"
	}
	if !reflect.DeepEqual(fh, dh) {
		return fmt.Sprintf("headers: fast %v, decoding %v", fh, dh)
	}
	return ""
}

func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) && i == len(b) {
		return "equal"
	}
	from := max(i-80, 0)
	return fmt.Sprintf("differ at byte %d (lengths %d, %d):\n fast     %q\n decoding %q", i, len(a), len(b),
		a[from:min(i+80, len(a))], b[from:min(i+80, len(b))])
}

// TestTraceCacheConcurrentAppends reads one trace from several goroutines
// through the trace cache while another store (another dg process) keeps
// appending to it and the projection catches up. Every 200 must have
// trace_seq 0..n-1 and never fewer events than a read that finished
// before it started (a stale cached rendering would), and the readers
// must reach the final trace.
func TestTraceCacheConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	base := newAPIEnv(t, nil)
	st := base.store
	pg := projection.NewPG(st, 0)
	cfg := cachedTraceConfig(st, pg)
	e := base.withConfig(cfg)
	r := rand.New(rand.NewPCG(5, 6))
	id := newTraceID("cache-race")
	for _, env := range fastTraceEvents(r, id, 3, false) {
		if _, err := st.Append(ctx, tenantA, env); err != nil {
			t.Fatal(err)
		}
	}
	catchUp := func() {
		c, err := pg.NewCatcher(tenantA, projection.TraceSummary)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := c.CatchUp(ctx, 0); err != nil {
			t.Error(err)
		}
	}
	catchUp()
	other, err := store.New(ctx, st.Pool(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	var done atomic.Bool
	var floor atomic.Int64 // events seen by a read that has finished
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				seen := floor.Load()
				rec := e.do(req{method: "GET", path: "/api/v1/traces/" + url.PathEscape(id), token: readerToken, tenant: tenantA})
				if rec.Code == 409 {
					continue
				}
				var body struct {
					Data struct {
						Events []struct {
							TraceSeq int64 `json:"trace_seq"`
							LogSeq   int64 `json:"log_seq"`
						} `json:"events"`
						Summary struct {
							TraceID string `json:"trace_id"`
						} `json:"summary"`
					} `json:"data"`
				}
				if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
					t.Errorf("read: %d %s", rec.Code, rec.Body)
					return
				}
				evs, s := body.Data.Events, body.Data.Summary
				n := int64(len(evs))
				if s.TraceID != id || n == 0 || n < seen {
					t.Errorf("inconsistent read: %d events (floor %d), summary %+v", n, seen, s)
					return
				}
				for i, ev := range evs {
					if ev.TraceSeq != int64(i) {
						t.Errorf("trace_seq %d at %d", ev.TraceSeq, i)
						return
					}
				}
				for cur := floor.Load(); n > cur && !floor.CompareAndSwap(cur, n); cur = floor.Load() {
				}
			}
		}()
	}
	for i := 0; i < 25; i++ {
		ev := fastTraceEvents(r, id, 1, false)[1]
		ev.TraceSeq = int64(3 + 1 + i)
		ev.EventID = fmt.Sprintf("%s-more-%d", id, i)
		ev.IdempotencyKey = ev.EventID
		if _, err := other.Append(ctx, tenantA, ev); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			catchUp()
		}
	}
	catchUp()
	// Let the readers see the final state, then stop them.
	for floor.Load() < 3+1+25 && !t.Failed() {
		time.Sleep(5 * time.Millisecond)
	}
	done.Store(true)
	wg.Wait()
	if cs := cfg.TraceCacheStats(); cs.Hits == 0 || cs.Misses == 0 {
		t.Errorf("the cache was not exercised: %+v", cs)
	}
}

// TestTraceCacheTenantMark follows the trace cache's tenant marks: a read
// whose entry's mark is still the tenant's is answered without a per-trace
// statement; an append to the tenant by another process, a catch-up or a
// rebuild of the projection changes the mark and sends reads back to the
// per-trace statement. Every body equals the decoding path's.
func TestTraceCacheTenantMark(t *testing.T) {
	ctx := context.Background()
	base := newAPIEnv(t, nil)
	st := base.store
	pg := projection.NewPG(st, 0)
	cfg := cachedTraceConfig(st, pg)
	cached := base.withConfig(cfg)
	decoding := base.withConfig(&server.APIConfig{Log: decodingLog{st}, Accounts: testAccounts(),
		RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1}, TraceSummary: server.TraceSummaryFrom(pg)})

	r := rand.New(rand.NewPCG(3, 9))
	ids := []string{newTraceID("mark-a"), newTraceID("mark-b"), newTraceID("mark-c")}
	for _, id := range ids {
		for _, env := range fastTraceEvents(r, id, 4, false) {
			if _, err := st.Append(ctx, tenantA, env); err != nil {
				t.Fatal(err)
			}
		}
	}
	catchUp := func() { t.Helper(); catchUpAll(t, pg, tenantA) }
	catchUp()
	n := 0
	read := func(id string) {
		t.Helper()
		n++
		rq := req{method: "GET", path: "/api/v1/traces/" + url.PathEscape(id), token: readerToken, tenant: tenantA,
			headers: map[string]string{"x-request-id": fmt.Sprintf("mark-%d", n)}}
		a, b := cached.do(rq), decoding.do(rq)
		if a.Code != 200 || b.Code != 200 || !bytes.Equal(a.Body.Bytes(), b.Body.Bytes()) {
			t.Fatalf("read %d of %s: cached %d, decoding %d: %s", n, id, a.Code, b.Code, firstDiff(a.Body.Bytes(), b.Body.Bytes()))
		}
		if msg := sameHeadersButLength(a, b); msg != "" {
			t.Fatalf("read %d of %s: %s", n, id, msg)
		}
	}
	// round reads every trace once and returns how the cache answered.
	round := func() (hits, markHits, perTrace, misses int64) {
		t.Helper()
		before := cfg.TraceCacheStats()
		for _, id := range ids {
			read(id)
		}
		after := cfg.TraceCacheStats()
		return after.Hits - before.Hits, after.MarkHits - before.MarkHits, after.Validations - before.Validations, after.Misses - before.Misses
	}
	expect := func(label string, hits, markHits, perTrace, misses int64) {
		t.Helper()
		h, mh, pt, m := round()
		if h != hits || mh != markHits || pt != perTrace || m != misses {
			t.Errorf("%s: %d hits (%d by mark), %d per-trace statements, %d misses; want %d (%d), %d, %d (%+v)",
				label, h, mh, pt, m, hits, markHits, perTrace, misses, cfg.TraceCacheStats())
		}
	}
	expect("filling", 0, 0, 0, 0)
	expect("first cached read: per-trace statement", 3, 0, 3, 0)
	expect("by mark", 3, 3, 0, 0)
	expect("by mark again", 3, 3, 0, 0)

	// Another dg process appends to the second trace; the projection is
	// behind until it catches up (the decoding path answers 409 then).
	other, err := store.New(ctx, st.Pool(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ev := fastTraceEvents(r, ids[1], 2, false)[2]
	ev.TraceSeq = int64(len(mustTrace(t, st, ids[1])))
	ev.EventID += "-other"
	ev.IdempotencyKey += "-other"
	if _, err := other.Append(ctx, tenantA, ev); err != nil {
		t.Fatal(err)
	}
	rq := req{method: "GET", path: "/api/v1/traces/" + url.PathEscape(ids[0]), token: readerToken, tenant: tenantA}
	if a := cached.do(rq); a.Code != 409 {
		t.Fatalf("projection behind: %d %s", a.Code, a.Body)
	}
	catchUp()
	// The first read sees the new mark and goes per-trace (its trace is
	// unchanged: a hit); so do the others, their entries' marks being
	// older than the tenant's latest; the changed trace is a miss.
	expect("after another process's append", 2, 0, 3, 1)
	// The re-rendered entry has no mark yet: one per-trace statement.
	expect("marks renewed", 3, 2, 1, 0)
	expect("by mark after the append", 3, 3, 0, 0)

	// A rebuild rewrites the projection's rows and cursor: same head, new
	// mark.
	if _, err := pg.Rebuild(ctx, projection.RebuildOptions{Tenant: tenantA}); err != nil {
		t.Fatal(err)
	}
	expect("after a rebuild", 3, 0, 3, 0)
	expect("by mark after the rebuild", 3, 3, 0, 0)
	if cs := cfg.TraceCacheStats(); cs.MarkFailures != 0 {
		t.Errorf("tenant mark statements failed: %+v", cs)
	}
}

// catchUpAll brings every projection of tenant up to the log's head.
func catchUpAll(t testing.TB, pg *projection.PG, tenant string) {
	t.Helper()
	for _, name := range projection.Names() {
		c, err := pg.NewCatcher(tenant, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CatchUp(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// cachedTraceConfig is an API on st with the trace cache and the one-statement
// summary read, and no rate limits.
func cachedTraceConfig(st *store.Store, pg *projection.PG) *server.APIConfig {
	return &server.APIConfig{Log: st, Accounts: testAccounts(), RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1},
		TraceSummaryPG: pg, TraceCacheBytes: 1 << 20}
}

// withConfig is a dev server with cfg on e's store and log buffer.
func (e *apiEnv) withConfig(cfg *server.APIConfig) *apiEnv {
	srv := server.New(server.Config{Env: "dev", API: cfg, Logger: discardLogger()})
	return &apiEnv{t: e.t, store: e.store, srv: srv, h: srv.Handler(), logs: e.logs}
}
