package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Rate-limit scopes, one per route family.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeAdmin = "admin"
)

// RateLimits are requests per minute per (scope, account, tenant). Zero
// takes the default (read 600, write 300, admin 60); a negative value
// turns the limit off for that scope.
type RateLimits struct {
	Read  int `json:"read"`
	Write int `json:"write"`
	Admin int `json:"admin"`
}

// DefaultRateLimits are the reference's limits per minute.
var DefaultRateLimits = RateLimits{Read: 600, Write: 300, Admin: 60}

func (l RateLimits) withDefaults() RateLimits {
	if l.Read == 0 {
		l.Read = DefaultRateLimits.Read
	}
	if l.Write == 0 {
		l.Write = DefaultRateLimits.Write
	}
	if l.Admin == 0 {
		l.Admin = DefaultRateLimits.Admin
	}
	return l
}

func (l RateLimits) of(scope string) int {
	switch scope {
	case ScopeRead:
		return l.Read
	case ScopeWrite:
		return l.Write
	case ScopeAdmin:
		return l.Admin
	}
	return -1
}

// rateLimiter counts requests in fixed one-minute windows aligned to the
// wall clock (window = unix seconds / 60). State is per process and
// resets with it; counters of past windows are dropped when the window
// moves on. Every authenticated request counts, including ones the
// limiter then rejects.
type rateLimiter struct {
	limits RateLimits
	now    func() time.Time

	mu     sync.Mutex
	window int64
	counts map[rateKey]int
}

type rateKey struct{ scope, account, tenant string }

func newRateLimiter(l RateLimits, now func() time.Time) *rateLimiter {
	return &rateLimiter{limits: l.withDefaults(), now: now, counts: map[rateKey]int{}}
}

// take counts one request and reports the limit, the requests left in the
// window, the seconds until it resets, and whether the request may go on.
func (rl *rateLimiter) take(scope, account, tenant string) (limit, remaining, reset int, ok bool) {
	limit = rl.limits.of(scope)
	if limit < 0 {
		return limit, 0, 0, true
	}
	now := rl.now()
	w := now.Unix() / 60
	reset = int(60 - now.Unix()%60)
	k := rateKey{scope, account, tenant}
	rl.mu.Lock()
	if w != rl.window {
		rl.window = w
		clear(rl.counts)
	}
	rl.counts[k]++
	n := rl.counts[k]
	rl.mu.Unlock()
	return limit, max(limit-n, 0), reset, n <= limit
}

// allow applies the limiter to an authenticated request. Every limited
// response carries RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset
// (seconds) and RateLimit-Policy ("<limit>;w=60"); a rejection is 429
// rate_limited with Retry-After (seconds to the next window).
func (a *api) allow(w http.ResponseWriter, r *http.Request, scope string, p *Principal) bool {
	limit, remaining, reset, ok := a.limiter.take(scope, p.Account.AccountID, p.Tenant)
	if limit < 0 {
		return true
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(reset))
	h.Set("RateLimit-Policy", strconv.Itoa(limit)+";w=60")
	if ok {
		return true
	}
	h.Set("Retry-After", strconv.Itoa(reset))
	a.s.log.WarnContext(r.Context(), "rate limited", append(logAttrs(r), "scope", scope, "limit", limit)...)
	a.s.writeError(w, r, http.StatusTooManyRequests, "rate_limited", "Rate limit exceeded for "+scope+" API scope",
		map[string]any{"scope": scope, "limit": limit, "retry_after_seconds": reset})
	return false
}
