package event

import (
	"fmt"
	"slices"
	"strings"
)

// piiPatterns are the forbidden substrings of events spec §5.3, lower-cased
// and sorted so the error names the lexicographically first match. The
// slice is built once and never modified.
var piiPatterns = func() []string {
	p := []string{
		"Bearer ", "xoxb-", "xoxp-", "xoxa-", "xoxr-", "sk-", "ghp_", "gho_",
		"ghu_", "ghs_", "ghr_", "-----BEGIN", "-----BEGIN PRIVATE KEY",
		"-----BEGIN RSA PRIVATE KEY", "-----BEGIN EC PRIVATE KEY",
		"-----BEGIN OPENSSH PRIVATE KEY", "AKIA", "ASIA", "api_key=", "apikey=",
		"api-key:", "password=", "passwd=", "secret=", "token=",
	}
	for i := range p {
		p[i] = strings.ToLower(p[i])
	}
	slices.Sort(p)
	return p
}()

// scanPII applies the PII/secret guard to every string value (never object
// keys) of the payload, tags, actor, source, correlation_id,
// causation_event_id and idempotency_key. Payload members are visited in
// key order so the reported path is deterministic.
func scanPII(env *Envelope) *Error {
	if err := scanValue("$.payload", env.Payload, 0); err != nil {
		return err
	}
	for i, t := range env.Tags {
		if err := scanString("$.tags"+indexSegment(i), t); err != nil {
			return err
		}
	}
	checks := []struct {
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

func scanValue(path string, v any, depth int) *Error {
	if depth > MaxDepth {
		return nil // canonicalisation has already rejected this
	}
	switch x := v.(type) {
	case string:
		return scanString(path, x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := scanValue(path+keySegment(k), x[k], depth+1); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := scanValue(path+indexSegment(i), e, depth+1); err != nil {
				return err
			}
		}
	case []string:
		for i, e := range x {
			if err := scanString(path+indexSegment(i), e); err != nil {
				return err
			}
		}
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return scanValue(path, m, depth)
	}
	return nil
}

func scanString(path, s string) *Error {
	if p := piiMatch(s); p != "" {
		return newError(CodePIIPolicyViolation, path, fmt.Sprintf("value contains the forbidden pattern %q (case-insensitive); remove secrets and personal data, or reword identifiers that contain it", p))
	}
	return nil
}

// piiMatch returns the first pattern s contains, case-insensitively, or "".
// Lower-casing follows Python's str.lower, including its one unconditional
// multi-rune mapping (U+0130 to "i" + U+0307), which Go's ToLower lacks.
func piiMatch(s string) string {
	lower := pythonLower(s)
	for _, p := range piiPatterns {
		if strings.Contains(lower, p) {
			return p
		}
	}
	return ""
}

func pythonLower(s string) string {
	ascii := true
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			ascii = false
			break
		}
		if c >= 'A' && c <= 'Z' {
			upper = true
		}
	}
	if ascii {
		if !upper {
			return s
		}
		return strings.ToLower(s)
	}
	if strings.ContainsRune(s, '\u0130') {
		s = strings.ReplaceAll(s, "\u0130", "i\u0307")
	}
	return strings.ToLower(s)
}
