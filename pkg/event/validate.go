package event

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Options tune validation.
type Options struct {
	// Strict rejects enum-like payload values outside the documented
	// domains (events spec §3.2 "N" column, §16). The reference accepts any
	// non-empty string there, so the default is off.
	Strict bool
}

// MaxIdempotencyKeyBytes is the longest idempotency key, in UTF-8 bytes.
const MaxIdempotencyKeyBytes = 200

// Validate checks everything about env that needs no storage, and returns
// the first failure (nil when env is acceptable). Callers holding an error
// interface must test the result against nil before converting it.
//
// Order (first failure wins):
//  1. envelope fields as the HTTP service checks them: event_id and
//     trace_id not blank, trace_seq >= 0, occurred_at RFC 3339
//     (CodeInvalidArgument); actor (actor_type one of agent, person, role,
//     system; actor_id non-empty), source (producer_id and system
//     non-empty), schema_version >= 1, tags non-blank strings
//     (CodeSchemaViolation);
//  2. then the reference core's order (events spec §5.1): idempotency key
//     (CodeInvalidArgument); payload is JSON (CodeInvalidArgument);
//     event_type known, payload an object, required payload keys, and in
//     strict mode the enum domains (CodeSchemaViolation); the PII guard
//     (CodePIIPolicyViolation); floats anywhere in the payload
//     (CodeSchemaViolation).
func Validate(env *Envelope, opts Options) *Error {
	_, err := ValidateCanonical(env, opts)
	return err
}

// ValidateAndHash is Validate that also returns the payload hash it
// computed on the way, so appenders canonicalise each payload once.
func ValidateAndHash(env *Envelope, opts Options) (string, *Error) {
	canon, err := ValidateCanonical(env, opts)
	if err != nil {
		return "", err
	}
	return sha256Hex(canon), nil
}

// ValidateCanonical is Validate that also returns the canonical JSON of the
// payload (CanonicalJSON), whose SHA-256 is the payload hash; storage can
// keep these bytes as the payload text without encoding it again.
func ValidateCanonical(env *Envelope, opts Options) ([]byte, *Error) {
	return ValidateCanonicalAppend(make([]byte, 0, 512), env, opts)
}

// ValidateCanonicalAppend is ValidateCanonical appending the canonical JSON
// to dst (which it may reuse), for callers that keep a scratch buffer.
func ValidateCanonicalAppend(dst []byte, env *Envelope, opts Options) ([]byte, *Error) {
	if env == nil {
		return nil, newError(CodeInvalidArgument, "$", "no event given")
	}
	if err := validateEnvelopeFields(env); err != nil {
		return nil, err
	}
	if err := validateIdempotencyKey(env.IdempotencyKey); err != nil {
		return nil, err
	}
	// Canonicalise now: "not JSON" is step 2, a float is step 5.
	canon, cerr := appendCanonicalDoc(dst[:0], env.Payload)
	if cerr != nil {
		cerr.Path = "$.payload" + strings.TrimPrefix(cerr.Path, "$")
		if cerr.Code != CodeSchemaViolation {
			return nil, cerr
		}
	}
	if err := validatePayload(env.EventType, env.Payload, opts); err != nil {
		return nil, err
	}
	if err := scanPII(env); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, cerr
	}
	return canon, nil
}

func validateEnvelopeFields(env *Envelope) *Error {
	if err := checkEnvelopeUTF8(env); err != nil {
		return err
	}
	if strings.TrimSpace(env.EventID) == "" {
		return newError(CodeInvalidArgument, "$.event_id", "event_id is required and must not be blank")
	}
	if strings.TrimSpace(env.TraceID) == "" {
		return newError(CodeInvalidArgument, "$.trace_id", "trace_id is required and must not be blank")
	}
	if env.TraceSeq < 0 {
		return newError(CodeInvalidArgument, "$.trace_seq", fmt.Sprintf("trace_seq must be a non-negative integer, got %d", env.TraceSeq))
	}
	if _, err := ParseOccurredAt(env.OccurredAt); err != nil {
		return newError(CodeInvalidArgument, "$.occurred_at", fmt.Sprintf("occurred_at %q is not an RFC 3339 timestamp; use e.g. 2025-12-31T10:00:00Z", env.OccurredAt))
	}
	if !slices.Contains(actorTypes, env.Actor.ActorType) {
		return newError(CodeSchemaViolation, "$.actor.actor_type", fmt.Sprintf("actor_type %q is not one of agent, person, role, system", env.Actor.ActorType))
	}
	if env.Actor.ActorID == "" {
		return newError(CodeSchemaViolation, "$.actor.actor_id", "actor_id must be a non-empty string")
	}
	if env.Source.ProducerID == "" {
		return newError(CodeSchemaViolation, "$.source.producer_id", "producer_id must be a non-empty string")
	}
	if env.Source.System == "" {
		return newError(CodeSchemaViolation, "$.source.system", "system must be a non-empty string")
	}
	if env.SchemaVersion < 1 {
		return newError(CodeSchemaViolation, "$.schema_version", fmt.Sprintf("schema_version must be a positive integer, got %d", env.SchemaVersion))
	}
	for i, t := range env.Tags {
		if strings.TrimSpace(t) == "" {
			return newError(CodeSchemaViolation, "$.tags"+indexSegment(i), "tags must be non-blank strings")
		}
	}
	return nil
}

// checkEnvelopeUTF8 rejects envelope strings that are not UTF-8 (only an
// envelope built in Go can hold them; DecodeEnvelope refuses such input).
func checkEnvelopeUTF8(env *Envelope) *Error {
	fields := [...]struct {
		path string
		s    *string
	}{
		{"$.event_id", &env.EventID},
		{"$.trace_id", &env.TraceID},
		{"$.event_type", &env.EventType},
		{"$.occurred_at", &env.OccurredAt},
		{"$.source.producer_id", &env.Source.ProducerID},
		{"$.source.system", &env.Source.System},
		{"$.source.subsystem", env.Source.Subsystem},
		{"$.actor.actor_type", &env.Actor.ActorType},
		{"$.actor.actor_id", &env.Actor.ActorID},
		{"$.correlation_id", env.CorrelationID},
		{"$.causation_event_id", env.CausationEventID},
		{"$.idempotency_key", &env.IdempotencyKey},
	}
	for _, f := range fields {
		if f.s != nil && !utf8.ValidString(*f.s) {
			return newError(CodeInvalidArgument, f.path, "value is not valid UTF-8 text")
		}
	}
	for i, t := range env.Tags {
		if !utf8.ValidString(t) {
			return newError(CodeInvalidArgument, "$.tags"+indexSegment(i), "value is not valid UTF-8 text")
		}
	}
	return nil
}

// validateIdempotencyKey applies events spec §5.2: non-empty (whitespace
// is fine), no NUL, at most 200 UTF-8 bytes.
func validateIdempotencyKey(key string) *Error {
	const path = "$.idempotency_key"
	switch {
	case key == "":
		return newError(CodeInvalidArgument, path, "idempotency_key must be a non-empty string")
	case strings.IndexByte(key, 0) >= 0:
		return newError(CodeInvalidArgument, path, "idempotency_key must not contain NUL (U+0000)")
	case len(key) > MaxIdempotencyKeyBytes:
		return newError(CodeInvalidArgument, path, fmt.Sprintf("idempotency_key is %d bytes of UTF-8; the limit is %d", len(key), MaxIdempotencyKeyBytes))
	case !utf8.ValidString(key):
		return newError(CodeInvalidArgument, path, "idempotency_key is not valid UTF-8")
	}
	return nil
}

type fieldKind int

const (
	fString fieldKind = iota // non-empty string
	fObject                  // JSON object, with required members in sub
	fList                    // JSON array
)

// field is one runtime-required ("R") payload member.
type field struct {
	key  string
	kind fieldKind
	sub  []field
}

func str(k string) field               { return field{key: k, kind: fString} }
func list(k string) field              { return field{key: k, kind: fList} }
func obj(k string, sub ...field) field { return field{key: k, kind: fObject, sub: sub} }

// payloadRules lists each event type's required payload members in the
// order the reference checks them (events spec §3.2; design §7 for
// WorkflowReviewRequested). It is never modified.
var payloadRules = map[string][]field{
	TypeTraceStarted:       {str("workflow"), str("title"), obj("primary_entity", str("entity_type"), str("entity_id"))},
	TypeInputObserved:      {str("input_id"), obj("source", str("system"), str("object_type"), str("object_id")), list("facts")},
	TypeEntityObserved:     {obj("entity", str("entity_type"), str("entity_id")), str("role"), list("facts")},
	TypePolicyEvaluated:    {obj("policy", str("policy_id"), str("policy_version")), list("inputs"), str("decision")},
	TypeExceptionRequested: {str("exception_id"), obj("policy", str("policy_id"), str("policy_version")), str("reason")},
	TypeApprovalRecorded: {str("approval_id"), obj("subject", str("subject_type"), str("subject_id")),
		obj("approver", str("actor_type"), str("actor_id")), str("decision")},
	TypePrecedentCited:          {str("cited_trace_id"), str("reason")},
	TypeActionProposed:          {str("action_id"), str("action_type"), obj("target_entity", str("entity_type"), str("entity_id")), str("target_system"), list("changes")},
	TypeActionCommitted:         {str("action_id"), str("status")},
	TypeTraceFinished:           {str("outcome")},
	TypeWorkflowReviewRequested: {str("template_id")},
}

// enumRule is a documented value domain, enforced only in strict mode.
type enumRule struct {
	path    []string // member names from the payload root
	allowed []string
}

// strictRules are the "N" domains of events spec §3.2. ApprovalRecorded's
// subject_type also admits "override", which dg's own workflow override
// appends (workflows spec A.7.7).
var strictRules = map[string][]enumRule{
	TypeEntityObserved:  {{[]string{"role"}, []string{"primary", "related"}}},
	TypePolicyEvaluated: {{[]string{"decision"}, []string{"allow", "deny", "require_exception"}}},
	TypeApprovalRecorded: {
		{[]string{"subject", "subject_type"}, []string{"exception", "action", "override"}},
		{[]string{"approver", "actor_type"}, actorTypes},
		{[]string{"decision"}, []string{"approved", "rejected"}},
	},
	TypeActionCommitted: {{[]string{"status"}, []string{"success", "failure", "partial"}}},
	TypeTraceFinished:   {{[]string{"outcome"}, []string{"success", "failure", "abandoned"}}},
}

func validatePayload(eventType string, payload map[string]any, opts Options) *Error {
	rules, ok := payloadRules[eventType]
	if !ok {
		return newError(CodeSchemaViolation, "$.event_type", fmt.Sprintf("unknown event_type %q; use one of %s", eventType, strings.Join(Types(), ", ")))
	}
	if payload == nil {
		return newError(CodeSchemaViolation, "$.payload", "payload must be a JSON object")
	}
	if err := checkFields("$.payload", payload, rules); err != nil {
		return err
	}
	if opts.Strict {
		return checkStrict(eventType, payload)
	}
	return nil
}

func checkFields(path string, m map[string]any, fields []field) *Error {
	for _, f := range fields {
		v, present := m[f.key]
		if !present {
			return newError(CodeSchemaViolation, path+keySegment(f.key), fmt.Sprintf("%s %s is required", eventKindName(f.kind), f.key))
		}
		switch f.kind {
		case fString:
			if s, ok := v.(string); !ok || s == "" {
				return newError(CodeSchemaViolation, path+keySegment(f.key), fmt.Sprintf("%s must be a non-empty string", f.key))
			}
		case fList:
			if !isList(v) {
				return newError(CodeSchemaViolation, path+keySegment(f.key), fmt.Sprintf("%s must be a JSON array", f.key))
			}
		case fObject:
			sub, ok := asObject(v)
			if !ok {
				return newError(CodeSchemaViolation, path+keySegment(f.key), fmt.Sprintf("%s must be a JSON object", f.key))
			}
			if err := checkFields("", sub, f.sub); err != nil {
				err.Path = path + keySegment(f.key) + err.Path
				return err
			}
		}
	}
	return nil
}

// isList and asObject accept the Go shapes CanonicalJSON accepts
// ([]string, map[string]string) besides decoded JSON, so a payload built in
// Go validates the same as its JSON text.
func isList(v any) bool {
	switch x := v.(type) {
	case []any:
		return x != nil
	case []string:
		return x != nil
	}
	return false
}

func asObject(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		return x, x != nil
	case map[string]string:
		if x == nil {
			return nil, false
		}
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return m, true
	}
	return nil, false
}

func eventKindName(k fieldKind) string {
	switch k {
	case fObject:
		return "object"
	case fList:
		return "array"
	}
	return "string"
}

func checkStrict(eventType string, payload map[string]any) *Error {
	for _, r := range strictRules[eventType] {
		var v any = payload
		path := "$.payload"
		for _, k := range r.path {
			m, _ := v.(map[string]any)
			v = m[k]
			path += keySegment(k)
		}
		s, _ := v.(string)
		if !slices.Contains(r.allowed, s) {
			return newError(CodeSchemaViolation, path, fmt.Sprintf("%q is outside the documented domain (%s); strict mode is on", s, strings.Join(r.allowed, ", ")))
		}
	}
	switch eventType {
	case TypePolicyEvaluated:
		inputs, _ := payload["inputs"].([]any)
		for i, in := range inputs {
			if _, ok := in.(string); !ok {
				return newError(CodeSchemaViolation, "$.payload.inputs"+indexSegment(i), "inputs must be input_id strings; strict mode is on")
			}
		}
	case TypePrecedentCited:
		if v, ok := payload["similarity_score"]; ok && v != nil {
			if _, isStr := v.(string); !isStr {
				return newError(CodeSchemaViolation, "$.payload.similarity_score", "similarity_score must be a string or null, never a number; strict mode is on")
			}
		}
	}
	return nil
}

// DecodedNumberInt parses an integer json.Number into an int64, for callers
// reading payload members such as sla_hours. ok is false for floats,
// malformed literals and integers outside int64.
func DecodedNumberInt(n json.Number) (int64, bool) {
	if numberKind(string(n)) != numInteger {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}
