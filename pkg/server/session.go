package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/auth"
)

// Console sessions. The cookie holds who signed in, how, until when and a
// random nonce, signed with HMAC-SHA256 under a key derived from
// server.secret_key_base; nothing secret is in it (no token). Every
// request re-reads the account from the live registry and checks that the
// token it signed in with is still one of the account's tokens, so a
// revoked token or removed account ends its sessions at once.
const (
	sessionCookie = "dg_session"
	// preCookie binds the sign-in form's CSRF token before a session exists.
	preCookie = "dg_presession"
	// SessionTTL is how long a console session lasts.
	SessionTTL = 8 * time.Hour
	csrfField  = "csrf_token"
)

// session is the signed content of the session cookie.
type session struct {
	AccountID   string `json:"a"`
	Fingerprint string `json:"f"` // token fingerprint; "dev" for the dev sign-in
	Expires     int64  `json:"e"` // unix seconds
	Nonce       string `json:"n"`
}

// sessionKeys are the HMAC keys derived from secret_key_base, one per use.
type sessionKeys struct {
	cookie []byte
	csrf   []byte
}

func deriveKeys(secretKeyBase string) sessionKeys {
	if secretKeyBase == "" {
		// No secret configured (dev): a random per-process key; sessions
		// end when the process does.
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		secretKeyBase = string(b)
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, []byte(secretKeyBase))
		m.Write([]byte("dg console " + label))
		return m.Sum(nil)
	}
	return sessionKeys{cookie: derive("session cookie"), csrf: derive("csrf token")}
}

func randomNonce() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (k sessionKeys) sign(payload []byte) string {
	m := hmac.New(sha256.New, k.cookie)
	m.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// open verifies a signed value and returns its payload.
func (k sessionKeys) open(v string) ([]byte, error) {
	p, sig, ok := strings.Cut(v, ".")
	if !ok {
		return nil, errors.New("malformed")
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, errors.New("malformed")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return nil, errors.New("malformed")
	}
	m := hmac.New(sha256.New, k.cookie)
	m.Write(payload)
	if !hmac.Equal(got, m.Sum(nil)) {
		return nil, errors.New("bad signature")
	}
	return payload, nil
}

// csrfToken is the form token bound to a session (or pre-session) nonce.
func (k sessionKeys) csrfToken(nonce string) string {
	m := hmac.New(sha256.New, k.csrf)
	m.Write([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (k sessionKeys) checkCSRF(nonce, token string) bool {
	if nonce == "" || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(k.csrfToken(nonce)), []byte(token)) == 1
}

// secureRequest reports whether the console is served over TLS (directly
// or behind a proxy that says so).
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: secureRequest(r), MaxAge: int(maxAge / time.Second), Expires: time.Now().Add(maxAge),
	})
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: secureRequest(r), MaxAge: -1})
}

// startSession signs acct in: a fresh nonce (so a session fixation or an
// old CSRF token never carries over) and an expiring cookie.
func (k sessionKeys) startSession(w http.ResponseWriter, r *http.Request, acct *auth.Account, fingerprint string, now time.Time) *session {
	s := &session{AccountID: acct.AccountID, Fingerprint: fingerprint, Expires: now.Add(SessionTTL).Unix(), Nonce: randomNonce()}
	b, _ := json.Marshal(s)
	setCookie(w, r, sessionCookie, k.sign(b), SessionTTL)
	clearCookie(w, r, preCookie)
	return s
}

// readSession returns the valid, unexpired session of r, or nil.
func (k sessionKeys) readSession(r *http.Request, now time.Time) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	b, err := k.open(c.Value)
	if err != nil {
		return nil
	}
	var s session
	if json.Unmarshal(b, &s) != nil || s.AccountID == "" || s.Nonce == "" || now.Unix() >= s.Expires {
		return nil
	}
	return &s
}

// preSession returns the nonce of the pre-session cookie, setting one if
// the request has none (the sign-in form's CSRF binding).
func (k sessionKeys) preSession(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preCookie); err == nil {
		if b, err := k.open(c.Value); err == nil {
			return string(b)
		}
	}
	n := randomNonce()
	setCookie(w, r, preCookie, k.sign([]byte(n)), time.Hour)
	return n
}

// preSessionNonce reads the pre-session nonce without setting one.
func (k sessionKeys) preSessionNonce(r *http.Request) string {
	c, err := r.Cookie(preCookie)
	if err != nil {
		return ""
	}
	b, err := k.open(c.Value)
	if err != nil {
		return ""
	}
	return string(b)
}

// accountFor resolves a session to the live account, or nil when the
// account is gone or the token it signed in with was revoked.
func accountFor(set *auth.Set, s *session, devSignIn bool) *auth.Account {
	if s == nil {
		return nil
	}
	acct := set.Account(s.AccountID)
	if acct == nil {
		return nil
	}
	if s.Fingerprint == "dev" {
		if !devSignIn {
			return nil
		}
		return acct
	}
	for _, f := range acct.Fingerprints() {
		if f == s.Fingerprint {
			return acct
		}
	}
	return nil
}
