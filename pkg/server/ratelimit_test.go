package server_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/server"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestRateLimit(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000-1_800_000_000%60+15, 0)} // 15s into a minute
	e := newAPIEnv(t, func(c *server.APIConfig) {
		c.RateLimits = server.RateLimits{Read: 2, Write: 1}
		c.Now = clock.now
	})
	read := func(token, tenant string) (int, map[string]string, string) {
		rec := e.do(req{method: "GET", path: "/api/v1/traces/none", token: token, tenant: tenant})
		_, code, _ := envelope(t, rec)
		h := map[string]string{}
		for _, k := range []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"} {
			h[k] = rec.Header().Get(k)
		}
		return rec.Code, h, code
	}
	// Failed authentication never counts.
	for i := 0; i < 5; i++ {
		if st, _, _ := read("bad-token", tenantA); st != 401 {
			t.Fatalf("bad token: %d", st)
		}
	}
	st, h, _ := read(readerToken, tenantA)
	if st != 404 || h["RateLimit-Limit"] != "2" || h["RateLimit-Remaining"] != "1" || h["RateLimit-Reset"] != "45" || h["RateLimit-Policy"] != "2;w=60" {
		t.Fatalf("first request: %d %v", st, h)
	}
	if st, h, _ = read(readerToken, " "+tenantA+" "); st != 404 || h["RateLimit-Remaining"] != "0" {
		t.Fatalf("second request (tenant trimmed, same key): %d %v", st, h)
	}
	st, h, code := read(readerToken, tenantA)
	if st != 429 || code != "rate_limited" || h["Retry-After"] != "45" || h["RateLimit-Remaining"] != "0" {
		t.Fatalf("third request: %d %q %v", st, code, h)
	}
	// Another account has its own counter; so does the write scope.
	if st, _, _ := read(writerToken, tenantA); st != 404 {
		t.Fatalf("other account: %d", st)
	}
	if rec := e.append(traceStarted(newTraceID("rl"))); rec.Code != 201 {
		t.Fatalf("write scope: %d", rec.Code)
	}
	rec := e.append(traceStarted(newTraceID("rl")))
	if _, code, _ := envelope(t, rec); rec.Code != 429 || code != "rate_limited" || !strings.Contains(rec.Body.String(), "write API scope") {
		t.Fatalf("write limit: %d %s", rec.Code, rec.Body)
	}
	// The next wall-clock minute starts a new window.
	clock.set(clock.now().Add(45 * time.Second))
	if st, h, _ := read(readerToken, tenantA); st != 404 || h["RateLimit-Reset"] != "60" {
		t.Fatalf("next window: %d %v", st, h)
	}
}

// TestRequestLogCarriesIDs: the access log is JSON and carries the request
// id, tenant and account of an API request.
func TestRequestLogCarriesIDs(t *testing.T) {
	e := newAPIEnv(t, nil)
	e.do(req{method: "GET", path: "/api/v1/traces/none", token: readerToken, tenant: tenantA, headers: map[string]string{"x-request-id": "log-req-1"}})
	sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if m["msg"] == "request" && m["request_id"] == "log-req-1" {
			if _, ok := m["duration_ms"].(float64); !ok || m["tenant_id"] != tenantA || m["account_id"] != "reader-test" || m["status"] != float64(404) ||
				m["method"] != "GET" || m["path"] != "/api/v1/traces/none" || m["level"] != "INFO" {
				t.Fatalf("access log line: %v", m)
			}
			return
		}
	}
	t.Fatalf("no access log line for the request in:\n%s", e.logs.String())
}
