package reliability_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/decisiongraph/dg/pkg/workflow"
)

const corpusBodyLimit = 256 << 10

// inProcessNode serves dg's real handler (API with the workflow routes)
// from this process over a loopback listener, with the rate limits off so
// that a large corpus is not answered by 429s, and the suite's accounts.
// In-process so that goroutines and heap can be counted exactly.
func inProcessNode(t *testing.T) (base string, st *store.Store, closeFn func()) {
	t.Helper()
	url := pgtest.NewURL(t)
	pool := openPool(t, url)
	st, err := store.New(context.Background(), pool, store.Options{})
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	accounts := filepath.Join(t.TempDir(), "accounts.json")
	writeAccounts(t, accounts, 0, false, false)
	reg, err := auth.Load(auth.Config{File: accounts, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatalf("accounts: %v", err)
	}
	svc := workflow.New(st.Pool(), st, workflow.Config{}, workflow.Options{})
	srv := server.New(server.Config{Env: "dev", RequestTimeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
		API: &server.APIConfig{Log: st, Accounts: reg, BodyLimit: corpusBodyLimit,
			RateLimits: server.RateLimits{Read: -1, Write: -1, Admin: -1}, Workflows: svc}})
	ts := httptest.NewServer(srv.Handler())
	return ts.URL, st, func() { ts.Close(); st.Close() }
}

// badCase is one request of the corpus and the answers it may get.
type badCase struct {
	class   string
	method  string
	path    string // escaped path and query
	hdr     map[string]string
	noCT    bool // send no Content-Type
	ct      string
	body    []byte
	allowOK bool // a 2xx is a right answer (a valid value that looks hostile)
	want    []int
}

func validEvent(trace string) map[string]any {
	var m map[string]any
	data, _ := json.Marshal(traceEvents(trace)[0])
	_ = json.Unmarshal(data, &m)
	return m
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

// setPath sets a dotted member of a decoded envelope.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

var sqlStrings = []string{
	`'; DROP TABLE dg_event_log; --`, `" OR "1"="1`, `' OR 1=1 --`, `1; SELECT pg_sleep(10)`,
	`\'; TRUNCATE dg_event_log CASCADE; --`, `$$; DELETE FROM dg_event_log; $$`, `%' AND tenant_id LIKE '%`,
	`x'||(SELECT current_user)||'`, `) UNION SELECT * FROM dg_event_log --`, `\x00`, `E'\\x27'`,
}

// corpus builds the bad input cases. Every envelope member gets every
// wrong type; every string member gets SQL metacharacters (allowed to
// succeed, since they are valid strings, but never a 5xx); then classes of
// broken bodies, ids and headers.
func corpus() []badCase {
	var cs []badCase
	post := func(class string, body []byte, allowOK bool, want ...int) {
		cs = append(cs, badCase{class: class, method: "POST", path: "/api/v1/events", body: body, allowOK: allowOK, want: want})
	}
	n := 0
	trace := func() string { n++; return fmt.Sprintf("bad-%d", n) }
	fields := []string{"event_id", "trace_id", "trace_seq", "event_type", "occurred_at", "source", "source.producer_id",
		"source.system", "source.subsystem", "actor", "actor.actor_type", "actor.actor_id", "correlation_id",
		"causation_event_id", "idempotency_key", "schema_version", "payload", "payload.title", "payload.workflow",
		"payload.primary_entity", "payload.primary_entity.entity_id", "tags"}
	huge := strings.Repeat("9", 10000)
	wrong := []any{nil, true, false, 0, -1, 1.5, 1e308, json.Number(huge), json.Number("-" + huge), json.Number("1" + huge + ".5"),
		json.Number("1e99999"), "", "x", strings.Repeat("A", 100000), "a\x00b", []any{}, []any{1, "x", nil}, map[string]any{},
		map[string]any{"$ne": 1}, "\u202e\ufeff", "😀"}
	for _, f := range fields {
		for _, v := range wrong {
			m := validEvent(trace())
			setPath(m, f, v)
			post("wrong type: "+f, mustJSON(m), true)
		}
		m := validEvent(trace())
		delete(m, f)
		post("missing member: "+f, mustJSON(m), true)
	}
	for _, f := range []string{"event_id", "trace_id", "source.producer_id", "source.system", "actor.actor_id", "idempotency_key",
		"payload.title", "payload.workflow", "payload.primary_entity.entity_id", "correlation_id", "occurred_at", "event_type"} {
		for _, s := range sqlStrings {
			m := validEvent(trace())
			setPath(m, f, s)
			post("SQL metacharacters: "+f, mustJSON(m), true)
		}
	}
	base := mustJSON(validEvent("bad-base"))
	for i := 1; i < len(base); i += max(1, len(base)/40) {
		post("truncated JSON", base[:i], false, 400)
	}
	for _, b := range []string{"", "{", "}", "[]", "null", "1", `"x"`, "{,}", `{"a":}`, `{"event_id":"a",}`, `{"a" "b"}`, "\x00",
		`{"event_id":"a"}{"event_id":"b"}`, "{'event_id':'a'}", "\xef\xbb\xbf{}", `{"event_id":"\ud800"}`, `{"a":NaN}`, `{"a":Infinity}`} {
		post("malformed JSON", []byte(b), false, 400, 422)
	}
	inv := []byte(strings.Replace(string(base), `"bad-base-e0"`, "\"bad-\xff\xfe-e0\"", 1))
	post("invalid UTF-8", inv, false, 400, 422)
	nul := []byte(strings.Replace(string(base), `"bad-base-e0"`, `"bad-\u0000-e0"`, 1))
	post("NUL byte in an id", nul, false, 400, 422)
	rawNul := []byte(strings.Replace(string(base), `"bad-base-e0"`, "\"bad-\x00-e0\"", 1))
	post("raw NUL byte", rawNul, false, 400)
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	m := validEvent("bad-deep")
	post("10k-deep nesting (payload)", []byte(strings.Replace(string(mustJSON(m)), `"payload":{`, `"payload":{"deep":`+deep+`,`, 1)), false, 400, 422)
	post("10k-deep nesting (top)", []byte(strings.Repeat("[", 10000)+strings.Repeat("]", 10000)), false, 400)
	arr := "[" + strings.Repeat("1,", 60000) + "1]"
	post("huge array", []byte(strings.Replace(string(mustJSON(m)), `"payload":{`, `"payload":{"arr":`+arr+`,`, 1)), true, 400, 413, 422)
	post("oversize body", []byte(`{"event_id":"`+strings.Repeat("x", corpusBodyLimit+10)+`"}`), false, 413)
	post("number with 10k digits (trace_seq)", []byte(strings.Replace(string(base), `"trace_seq":0`, `"trace_seq":`+huge, 1)), false, 400, 422)
	post("float trace_seq", []byte(strings.Replace(string(base), `"trace_seq":0`, `"trace_seq":0.0`, 1)), false, 400, 422)
	post("exponent schema_version", []byte(strings.Replace(string(base), `"schema_version":1`, `"schema_version":1e0`, 1)), false, 400, 422)
	post("float in payload", []byte(strings.Replace(string(mustJSON(m)), `"payload":{`, `"payload":{"f":1.25,`, 1)), false, 400, 422)
	post("duplicate keys", []byte(strings.Replace(string(base), `{"event_id":"bad-base-e0"`, `{"event_id":"a","event_id":"bad-dup-e0"`, 1)), true, 400, 422)
	// content type
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "application/xml", "*/*"} {
		cs = append(cs, badCase{class: "wrong Content-Type", method: "POST", path: "/api/v1/events", ct: ct, body: base, want: []int{415}})
	}
	cs = append(cs, badCase{class: "no Content-Type", method: "POST", path: "/api/v1/events", noCT: true, body: base, want: []int{415}})
	// ids: traversal, metacharacters, encodings
	ids := []string{"..%2F..%2Fetc%2Fpasswd", "..", "%2E%2E", "%2e%2e%2f%2e%2e%2fadmin", "a%00b", "%00", "%ff%fe", "%", "%zz",
		url.PathEscape(`'; DROP TABLE dg_event_log; --`), url.PathEscape(`" OR 1=1`), strings.Repeat("a", 8000),
		url.PathEscape("😀"), "%C0%AE%C0%AE", "a%0D%0AX-Injected:%201", "%5C..%5C..%5Cwindows"}
	// A hostile-looking id the corpus stored earlier (SQL metacharacters
	// are valid ids) is found again: 200 with that trace is right.
	for _, id := range ids {
		cs = append(cs,
			badCase{class: "hostile trace id", allowOK: true, method: "GET", path: "/api/v1/traces/" + id, want: []int{400, 404, 414, 431}},
			badCase{class: "hostile workflow id", allowOK: true, method: "GET", path: "/api/v1/workflows/" + id, want: []int{400, 404, 414, 431}},
			badCase{class: "hostile workflow id (action)", method: "POST", path: "/api/v1/workflows/" + id + "/actions", body: []byte(`{"action":"comment","note":"x"}`), want: []int{400, 404, 409, 414, 422, 431}},
			badCase{class: "hostile studio trace id", allowOK: true, method: "GET", path: "/api/v1/workflow-studio/traces/" + id, want: []int{400, 404, 414, 431}},
			badCase{class: "hostile export id", allowOK: true, method: "GET", path: "/api/v1/admin/workflows/" + id + "/export", hdr: map[string]string{"Authorization": "Bearer " + tokAdmin}, want: []int{400, 404, 414, 431}},
		)
	}
	cs = append(cs, badCase{class: "path traversal (raw)", method: "GET", path: "/api/v1/traces/../../../etc/passwd", want: []int{400, 404}},
		badCase{class: "path traversal (raw)", method: "GET", path: "/api/v1/../../etc/passwd", want: []int{400, 404}})
	// query parameters
	for _, k := range []string{"status", "assigned_account_id", "assigned_role", "priority", "trace_id", "only_open", "only_overdue", "limit", "cursor", "page"} {
		for _, v := range append(append([]string{}, sqlStrings...), "-1", "99999999999999999999999", "1.5", "", "\xff", strings.Repeat("z", 5000)) {
			cs = append(cs, badCase{class: "query parameter: " + k, method: "GET", path: "/api/v1/workflows?" + url.Values{k: {v}}.Encode(), allowOK: true, want: []int{400}})
		}
	}
	// workflow action bodies
	for _, b := range []string{`{}`, `{"action":1}`, `{"action":"approve","reason":` + huge + `}`, `{"action":"` + sqlStrings[0] + `"}`, `[`, `{"action":"reassign","assigned_account_id":{"$gt":""}}`} {
		cs = append(cs, badCase{class: "workflow action body", method: "POST", path: "/api/v1/workflows/wf-x/actions", body: []byte(b), want: []int{400, 404, 422}})
	}
	// headers
	for _, v := range []string{"", " ", "other\tx", strings.Repeat("t", 6000), "default,other", "DEFAULT", "../default", "' OR 1=1 --", "default\x00", "\xff"} {
		cs = append(cs, badCase{class: "hostile x-tenant-id", method: "GET", path: "/api/v1/traces/bad-1", hdr: map[string]string{"x-tenant-id": v}, want: []int{400, 403, 431}})
	}
	// Surrounding Unicode spaces are trimmed (strings.TrimSpace): still
	// the caller's own tenant, so 404 for an unknown trace is right.
	cs = append(cs, badCase{class: "x-tenant-id with a trailing NBSP", method: "GET", path: "/api/v1/traces/bad-1", hdr: map[string]string{"x-tenant-id": "default\u00a0"}, want: []int{404}})
	for _, v := range []string{"Bearer", "Bearer ", "bearer " + tokReader, "Basic Zm9vOmJhcg==", "Bearer " + tokReader + " extra", "Bearer " + strings.Repeat("x", 6000), "Token " + tokReader} {
		cs = append(cs, badCase{class: "malformed Authorization", method: "GET", path: "/api/v1/traces/bad-1", hdr: map[string]string{"Authorization": v}, want: []int{401, 431}})
	}
	for _, v := range []string{strings.Repeat("r", 5000), "id with spaces", "ünï", "<script>", "a\u2028b"} {
		cs = append(cs, badCase{class: "hostile x-request-id", method: "GET", path: "/api/v1/traces/bad-1", hdr: map[string]string{"x-request-id": v}, want: []int{404, 431}})
	}
	for _, meth := range []string{"PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"} {
		cs = append(cs, badCase{class: "wrong method", method: meth, path: "/api/v1/events", body: base, want: []int{405}})
	}
	return cs
}

// codeFor is the error code each 4xx status carries (http-api §5.3).
var codeFor = map[int][]string{
	400: {"invalid_argument"}, 401: {"unauthorized"}, 403: {"forbidden"}, 404: {"not_found"},
	405: {"method_not_allowed"}, 409: {"conflict", "idempotency_conflict", "event_sequence_invalid"},
	413: {"payload_too_large"}, 415: {"unsupported_media_type"}, 422: {"schema_violation", "pii_policy_violation"},
}

// checkAnswer returns "" when the answer is right for c.
func checkAnswer(c badCase, status int, body []byte, hdr http.Header) string {
	if status == 400 && hdr.Get("x-request-id") == "" && strings.HasPrefix(string(body), "400 Bad Request") {
		// net/http itself refuses a request line or header it cannot
		// parse (a bare %, a NUL in a header) before dg's handler runs.
		return ""
	}
	if status >= 500 {
		return fmt.Sprintf("HTTP %d", status)
	}
	if status < 300 {
		if c.allowOK {
			return ""
		}
		return fmt.Sprintf("accepted with %d", status)
	}
	if status == 431 || status == 414 {
		// net/http answers oversized headers before dg sees them.
		for _, w := range c.want {
			if w == status {
				return ""
			}
		}
		return fmt.Sprintf("HTTP %d", status)
	}
	ok := c.allowOK && len(c.want) == 0
	for _, w := range c.want {
		ok = ok || w == status
	}
	if len(c.want) == 0 && status >= 400 && status < 500 {
		ok = true // any 4xx, with the right envelope
	}
	if !ok {
		return fmt.Sprintf("status %d, want one of %v", status, c.want)
	}
	var env struct {
		Error *struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil {
		return fmt.Sprintf("status %d without an error envelope: %.200q", status, body)
	}
	if env.Error.Message == "" || env.Error.Details == nil || env.RequestID == "" {
		return fmt.Sprintf("incomplete envelope: %.200s", body)
	}
	good := false
	for _, code := range codeFor[status] {
		good = good || code == env.Error.Code
	}
	if !good {
		return fmt.Sprintf("status %d with code %q", status, env.Error.Code)
	}
	if rid := hdr.Get("x-request-id"); strings.ContainsAny(rid, "\r\n\x00 ") || len(rid) > 200 {
		return fmt.Sprintf("unsafe x-request-id echoed: %.80q", rid)
	}
	return ""
}

// TestBadInputCorpus sends the corpus over HTTP, P.BadRequests requests in
// all, and checks each answer: the right 4xx envelope (or a 2xx where the
// hostile-looking value is valid), never a 5xx; afterwards the goroutines
// and heap are back near where they were after the warm-up.
func TestBadInputCorpus(t *testing.T) {
	trackOnly(t)
	base, _, closeFn := inProcessNode(t)
	defer closeFn()
	cs := corpus()
	tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	send := func(c badCase) (int, []byte, http.Header, error) {
		var body io.Reader
		if c.body != nil {
			body = strings.NewReader(string(c.body))
		}
		req, err := http.NewRequest(c.method, base+c.path, body)
		if err != nil {
			// A path Go refuses to send: send it raw.
			return rawRequest(base, c)
		}
		req.Header.Set("Authorization", "Bearer "+tokWriter)
		req.Header.Set("x-tenant-id", "default")
		if !c.noCT {
			ct := c.ct
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
		}
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			if strings.Contains(err.Error(), "invalid header") || strings.Contains(err.Error(), "invalid method") {
				return rawRequest(base, c)
			}
			return 0, nil, nil, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		return resp.StatusCode, data, resp.Header, err
	}

	var done, fails, served5xx, accepted atomic.Int64
	byStatus := sync.Map{}
	var firstFail atomic.Pointer[string]
	var failClasses sync.Map // class -> first message
	run := func(total int) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					c := cs[i%len(cs)]
					status, body, hdr, err := send(c)
					done.Add(1)
					v, _ := byStatus.LoadOrStore(status, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
					if err != nil {
						fails.Add(1)
						msg := fmt.Sprintf("%s %s %.80s: %v", c.class, c.method, c.path, err)
						firstFail.CompareAndSwap(nil, &msg)
						continue
					}
					if status >= 500 {
						served5xx.Add(1)
					}
					if status < 300 {
						accepted.Add(1)
					}
					if why := checkAnswer(c, status, body, hdr); why != "" {
						fails.Add(1)
						msg := fmt.Sprintf("%s (%s %.80s): %s: %.300s", c.class, c.method, c.path, why, body)
						firstFail.CompareAndSwap(nil, &msg)
						failClasses.LoadOrStore(c.class, msg)
					}
				}
			}()
		}
		wg.Wait()
	}
	// Warm-up: one pass over the corpus, then the baseline.
	run(len(cs))
	tr.CloseIdleConnections()
	g0, h0 := settle()
	run(max(P.BadRequests-len(cs), len(cs)))
	tr.CloseIdleConnections()
	g1, h1 := settle()
	if msg := firstFail.Load(); msg != nil {
		t.Errorf("%d wrong answers; first: %s", fails.Load(), *msg)
		failClasses.Range(func(k, v any) bool {
			t.Errorf("class %s: %s", k, v)
			return true
		})
	}
	if g1 > g0+10 {
		t.Errorf("goroutines grew from %d to %d over %d requests", g0, g1, done.Load())
	}
	if h1 > h0+64<<20 {
		t.Errorf("heap grew from %d to %d bytes over %d requests", h0, h1, done.Load())
	}
	var statuses []string
	byStatus.Range(func(k, v any) bool {
		statuses = append(statuses, fmt.Sprintf("%v=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	classes := map[string]bool{}
	for _, c := range cs {
		classes[c.class] = true
	}
	record("badinput", "distinct corpus cases / classes", fmt.Sprintf("%d / %d", len(cs), len(classes)))
	record("badinput", "requests sent", done.Load())
	record("badinput", "answers by status", strings.Join(sortStrings(statuses), " "))
	record("badinput", "5xx answers", served5xx.Load())
	record("badinput", "wrong answers (status, code or envelope)", fails.Load())
	record("badinput", "accepted (valid values that look hostile, e.g. SQL metacharacters in strings)", accepted.Load())
	record("badinput", "goroutines after warm-up / at the end (bound +10)", fmt.Sprintf("%d / %d", g0, g1))
	record("badinput", "heap in use after warm-up / at the end (bound +64 MiB)", fmt.Sprintf("%.1f MiB / %.1f MiB", float64(h0)/(1<<20), float64(h1)/(1<<20)))
}

// settle lets finished handlers exit, collects garbage and returns the
// goroutine count and the live heap.
func settle() (int, uint64) {
	var ms runtime.MemStats
	g := 0
	for i := 0; i < 20; i++ {
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		g = runtime.NumGoroutine()
	}
	runtime.ReadMemStats(&ms)
	return g, ms.HeapAlloc
}

// rawRequest writes a request byte for byte (paths and headers Go's
// client refuses to send) and reads the answer.
func rawRequest(base string, c badCase) (int, []byte, http.Header, error) {
	u, _ := url.Parse(base)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return 0, nil, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nx-tenant-id: default\r\nConnection: close\r\n", c.method, c.path, u.Host, tokWriter)
	for k, v := range c.hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if c.body != nil {
		ct := c.ct
		if ct == "" {
			ct = "application/json"
		}
		fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n", ct, len(c.body))
	}
	b.WriteString("\r\n")
	b.Write(c.body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return 0, nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header, err
}

// TestNULAndInvalidUTF8InIDsAre400 is the regression test of a bug the
// corpus found: a path or query parameter holding a NUL byte or invalid
// UTF-8 reached PostgreSQL, failed there and came back as 503 storage
// (telling clients to retry a request that can never succeed). The router
// now answers 400 invalid_argument.
func TestNULAndInvalidUTF8InIDsAre400(t *testing.T) {
	trackOnly(t)
	base, _, closeFn := inProcessNode(t)
	defer closeFn()
	for _, path := range []string{
		"/api/v1/traces/a%00b", "/api/v1/traces/%ff%fe", "/api/v1/workflows/a%00b", "/api/v1/workflow-studio/traces/%C0%AE",
		"/api/v1/workflows?trace_id=%00", "/api/v1/workflows?status=%ff", "/api/v1/workflows?assigned_role=a%00",
	} {
		r, err := do(context.Background(), "GET", base+path, tokAdmin, "default", nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.Status != 400 || r.errCode() != "invalid_argument" {
			t.Errorf("%s: %d %s, want 400 invalid_argument", path, r.Status, r.Body)
		}
	}
}
