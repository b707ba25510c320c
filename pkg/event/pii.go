package event

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
)

// piiPatterns are the forbidden substrings of events spec §5.3 as the
// reference spells them, sorted (byte order, so upper case first) so an
// error names the lexicographically first match; piiLower holds the same
// patterns lower-cased, in the same order, for matching. Neither table is
// modified after package initialisation.
var piiPatterns = func() []string {
	p := []string{
		"Bearer ", "xoxb-", "xoxp-", "xoxa-", "xoxr-", "sk-", "ghp_", "gho_",
		"ghu_", "ghs_", "ghr_", "-----BEGIN", "-----BEGIN PRIVATE KEY",
		"-----BEGIN RSA PRIVATE KEY", "-----BEGIN EC PRIVATE KEY",
		"-----BEGIN OPENSSH PRIVATE KEY", "AKIA", "ASIA", "api_key=", "apikey=",
		"api-key:", "password=", "passwd=", "secret=", "token=",
	}
	slices.Sort(p)
	return p
}()

var piiLower = func() []string {
	l := make([]string, len(piiPatterns))
	for i, p := range piiPatterns {
		l[i] = strings.ToLower(p)
	}
	return l
}()

// piiByFirst maps a byte (either case) to the indexes of the patterns
// starting with it, so a string is scanned once instead of once per
// pattern.
var piiByFirst = func() (t [256][]uint8) {
	for i, p := range piiLower {
		c := p[0]
		t[c] = append(t[c], uint8(i))
		if c >= 'a' && c <= 'z' {
			t[c-32] = append(t[c-32], uint8(i))
		}
	}
	return t
}()

// scanPII applies the PII/secret guard to every string value (never object
// keys) of the payload, tags, actor, source, correlation_id,
// causation_event_id and idempotency_key, in that order. Within the payload
// the reported value is the first in sorted key order, so the error does
// not depend on map iteration.
func scanPII(env *Envelope) *Error {
	if piiIn(env.Payload, 0) {
		if err := scanValue(env.Payload, 0); err != nil {
			err.Path = "$.payload" + err.Path
			return err
		}
	}
	for i, t := range env.Tags {
		if err := scanString("", t); err != nil {
			err.Path = "$.tags" + indexSegment(i)
			return err
		}
	}
	checks := [...]struct {
		path string
		s    *string
	}{
		{"$.actor.actor_type", &env.Actor.ActorType},
		{"$.actor.actor_id", &env.Actor.ActorID},
		{"$.source.producer_id", &env.Source.ProducerID},
		{"$.source.system", &env.Source.System},
		{"$.source.subsystem", env.Source.Subsystem},
		{"$.correlation_id", env.CorrelationID},
		{"$.causation_event_id", env.CausationEventID},
		{"$.idempotency_key", &env.IdempotencyKey},
	}
	for _, c := range checks {
		if c.s == nil {
			continue
		}
		if err := scanString(c.path, *c.s); err != nil {
			return err
		}
	}
	return nil
}

// piiIn is the fast check: does any string inside v match, in whatever
// order the maps yield their members?
func piiIn(v any, depth int) bool {
	if depth > MaxDepth {
		return false // canonicalisation has already rejected this
	}
	switch x := v.(type) {
	case string:
		return piiMatch(x) != ""
	case map[string]any:
		for _, e := range x {
			if piiIn(e, depth+1) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if piiIn(e, depth+1) {
				return true
			}
		}
	case []string:
		for _, e := range x {
			if piiMatch(e) != "" {
				return true
			}
		}
	case map[string]string:
		for _, e := range x {
			if piiMatch(e) != "" {
				return true
			}
		}
	}
	return false
}

// scanValue finds the first match in sorted key order and returns its
// error with a path relative to v.
func scanValue(v any, depth int) *Error {
	if depth > MaxDepth {
		return nil
	}
	switch x := v.(type) {
	case string:
		return scanString("", x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := scanValue(x[k], depth+1); err != nil {
				err.Path = keySegment(k) + err.Path
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := scanValue(e, depth+1); err != nil {
				err.Path = indexSegment(i) + err.Path
				return err
			}
		}
	case []string:
		for i, e := range x {
			if err := scanString(indexSegment(i), e); err != nil {
				return err
			}
		}
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return scanValue(m, depth)
	}
	return nil
}

func scanString(path, s string) *Error {
	if p := piiMatch(s); p != "" {
		return newError(CodePIIPolicyViolation, path, fmt.Sprintf("value contains the forbidden pattern %q (case-insensitive); remove secrets and credentials, or reword identifiers that contain it", p))
	}
	return nil
}

// piiMatch returns the lexicographically first pattern (as the reference
// spells it) that s contains, case-insensitively, or "". Case folding follows Python's str.lower:
// ASCII letters fold in place; strings with other characters are
// lower-cased first, including Python's one unconditional multi-rune
// mapping (U+0130 to "i" + U+0307), which Go's ToLower lacks.
func piiMatch(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			s = pythonLower(s)
			break
		}
	}
	var found uint32
	for i := 0; i < len(s); i++ {
		for _, pi := range piiByFirst[s[i]] {
			if hasPrefixFold(s[i:], piiLower[pi]) {
				found |= 1 << pi
			}
		}
	}
	if found == 0 {
		return ""
	}
	return piiPatterns[bits.TrailingZeros32(found)]
}

// hasPrefixFold reports whether s starts with the lower-case ASCII
// pattern p, folding ASCII upper case in s.
func hasPrefixFold(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for j := 0; j < len(p); j++ {
		c := s[j]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[j] {
			return false
		}
	}
	return true
}

func pythonLower(s string) string {
	if strings.ContainsRune(s, '\u0130') {
		s = strings.ReplaceAll(s, "\u0130", "i\u0307")
	}
	return strings.ToLower(s)
}
