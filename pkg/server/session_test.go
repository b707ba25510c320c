package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/auth"
)

func sessionRequest(t *testing.T, k sessionKeys, acct *auth.Account, fp string, now time.Time) *http.Request {
	t.Helper()
	w := httptest.NewRecorder()
	k.startSession(w, httptest.NewRequest(http.MethodPost, "/console/signin", nil), acct, fp, now)
	r := httptest.NewRequest(http.MethodGet, "/console", nil)
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			r.AddCookie(c)
		}
	}
	return r
}

func TestSessionExpiresAndIsSigned(t *testing.T) {
	k := deriveKeys(strings.Repeat("k", 64))
	acct := auth.NewAccount("a", []string{auth.RoleAdmin}, nil, []string{"t"}, "tok")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := sessionRequest(t, k, acct, auth.HashToken("tok").Fingerprint(), now)
	if s := k.readSession(r, now.Add(SessionTTL-time.Second)); s == nil || s.AccountID != "a" {
		t.Fatalf("fresh session: %+v", s)
	}
	if s := k.readSession(r, now.Add(SessionTTL)); s != nil {
		t.Fatal("expired session accepted")
	}
	// Another secret_key_base does not accept the cookie.
	if s := deriveKeys(strings.Repeat("x", 64)).readSession(r, now); s != nil {
		t.Fatal("cookie accepted under another secret")
	}
}

func TestSessionFollowsTheRegistry(t *testing.T) {
	k := deriveKeys("")
	now := time.Now()
	acct := auth.NewAccount("a", []string{auth.RoleAdmin}, nil, []string{"t"}, "tok")
	set := &auth.Set{Accounts: []*auth.Account{acct}}
	sess := k.readSession(sessionRequest(t, k, acct, auth.HashToken("tok").Fingerprint(), now), now)
	if accountFor(set, sess, false) != acct {
		t.Fatal("session not resolved")
	}
	// The token was rotated away: the session ends.
	rotated := &auth.Set{Accounts: []*auth.Account{auth.NewAccount("a", []string{auth.RoleAdmin}, nil, []string{"t"}, "new-tok")}}
	if accountFor(rotated, sess, false) != nil {
		t.Fatal("session survived its token's revocation")
	}
	if accountFor(&auth.Set{}, sess, false) != nil {
		t.Fatal("session survived its account's removal")
	}
	// A dev one-click session only lives in dev.
	dev := k.readSession(sessionRequest(t, k, acct, "dev", now), now)
	if accountFor(set, dev, true) != acct || accountFor(set, dev, false) != nil {
		t.Fatal("dev session rules")
	}
}

func TestCSRFIsBoundToTheSession(t *testing.T) {
	k := deriveKeys("secret")
	tok := k.csrfToken("nonce-1")
	if !k.checkCSRF("nonce-1", tok) || k.checkCSRF("nonce-2", tok) || k.checkCSRF("nonce-1", "") || k.checkCSRF("", tok) {
		t.Fatal("csrf check")
	}
}
