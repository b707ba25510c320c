package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// DecodeValue parses one JSON document strictly: the result holds
// map[string]any, []any, string, json.Number (the literal exactly as
// written), bool and nil. Unlike encoding/json alone it rejects invalid
// UTF-8 and lone UTF-16 surrogate escapes (Go would silently substitute
// U+FFFD; the reference rejects), nesting deeper than MaxDepth, and
// anything after the value. Duplicate object keys keep the last value, as
// Python does. All failures are CodeInvalidArgument.
func DecodeValue(data []byte) (any, *Error) {
	if v, ok := fastDecode(data); ok {
		return v, nil
	}
	return decodeValueSlow(data)
}

// decodeValueSlow is DecodeValue on encoding/json. It runs when fastDecode
// gives up, so every error (and its message) comes from here.
func decodeValueSlow(data []byte) (any, *Error) {
	if err := prescan(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, newError(CodeInvalidArgument, "$", "empty document; send a JSON value")
		}
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, newError(CodeInvalidArgument, "$", fmt.Sprintf("unexpected data after the JSON value at byte %d; send exactly one JSON document", dec.InputOffset()))
	}
	return v, nil
}

func syntaxError(err error) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return newError(CodeInvalidArgument, "$", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se))
	}
	return newError(CodeInvalidArgument, "$", fmt.Sprintf("malformed JSON: %v", err))
}

// DecodePayload parses a JSON object, e.g. a payload read back from
// storage, under DecodeValue's rules.
func DecodePayload(data []byte) (map[string]any, *Error) {
	v, err := DecodeValue(data)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, newError(CodeSchemaViolation, "$", "payload must be a JSON object")
	}
	return m, nil
}

// prescan checks what encoding/json would let through or recurse on: it
// rejects invalid UTF-8, \u escapes that are lone surrogates, and nesting
// deeper than MaxDepth. Other syntax errors are left to encoding/json.
func prescan(data []byte) *Error {
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, size := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			off += size
		}
		return newError(CodeInvalidArgument, "$", fmt.Sprintf("document is not valid UTF-8 (bad byte at offset %d); send UTF-8 text", off))
	}
	depth := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{', '[':
			depth++
			if depth > MaxDepth {
				return newError(CodeInvalidArgument, "$", fmt.Sprintf("JSON nested deeper than %d levels at byte %d; flatten the document", MaxDepth, i))
			}
		case '}', ']':
			depth--
		case '"':
			end, err := skipJSONString(data, i+1)
			if err != nil {
				return err
			}
			i = end
		}
	}
	return nil
}

// skipJSONString skips a JSON string body starting after its opening quote and
// returns the index of the closing quote (or len(data) if unterminated,
// which encoding/json then reports). It rejects lone surrogate escapes.
func skipJSONString(data []byte, i int) (int, *Error) {
	for i < len(data) {
		switch data[i] {
		case '"':
			return i, nil
		case '\\':
			if i+1 < len(data) && data[i+1] == 'u' {
				r, ok := hex4(data, i+2)
				if ok && r >= 0xD800 && r <= 0xDFFF {
					if r >= 0xDC00 {
						return 0, loneSurrogate(i)
					}
					// A high surrogate must be followed by \u + low surrogate.
					if i+7 >= len(data) || data[i+6] != '\\' || data[i+7] != 'u' {
						return 0, loneSurrogate(i)
					}
					lo, ok := hex4(data, i+8)
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return 0, loneSurrogate(i)
					}
					i += 12
					continue
				}
			}
			i += 2
		default:
			i++
		}
	}
	return len(data), nil
}

func loneSurrogate(off int) *Error {
	return newError(CodeInvalidArgument, "$", fmt.Sprintf("string has a lone UTF-16 surrogate escape at byte %d; it is not valid Unicode", off))
}

func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// DecodeEnvelope parses one event envelope (e.g. an HTTP request body)
// strictly and applies the loader defaults of events spec §2.1: missing or
// null source.subsystem, correlation_id and causation_event_id become nil,
// schema_version becomes 1 and tags []. Unknown members are ignored.
//
// It checks presence and JSON types only; call Validate for the rules.
// Type errors carry the JSON path and the code the HTTP API gives them:
// missing required members and wrong types of event_id, trace_id,
// trace_seq, occurred_at, idempotency_key, correlation_id and
// causation_event_id are CodeInvalidArgument (400); a wrong type of
// event_type, source, actor, schema_version, tags or payload is
// CodeSchemaViolation (422).
func DecodeEnvelope(data []byte) (*Envelope, *Error) {
	v, err := DecodeValue(data)
	if err != nil {
		return nil, err
	}
	env := new(Envelope)
	if err := envelopeFromValue(env, v, "$", -1); err != nil {
		return nil, err
	}
	return env, nil
}

// DecodeEvents parses a list of envelopes: an object with an "events"
// array (the golden fixture format; other members are ignored) or a bare
// array. The error, if any, is an *Error whose path names the event, e.g.
// "$.events[3].trace_seq".
func DecodeEvents(data []byte) ([]Envelope, error) {
	if len(data) >= parallelEventsMin {
		if envs, err, ok := decodeEventsSplit(data); ok {
			if err != nil {
				return nil, err
			}
			return envs, nil
		}
	}
	return decodeEventsWhole(data)
}

// decodeEventsWhole is DecodeEvents on the document decoded as a whole.
func decodeEventsWhole(data []byte) ([]Envelope, error) {
	v, derr := DecodeValue(data)
	if derr != nil {
		return nil, derr
	}
	path := "$"
	items, ok := v.([]any)
	if !ok {
		m, isObj := v.(map[string]any)
		if !isObj {
			return nil, newError(CodeInvalidArgument, "$", "expected an array of events or an object with an \"events\" array")
		}
		raw, present := m["events"]
		if !present {
			return nil, newError(CodeInvalidArgument, "$.events", "object has no \"events\" member; expected {\"events\": [...]} or a bare array")
		}
		if items, ok = raw.([]any); !ok {
			return nil, newError(CodeInvalidArgument, "$.events", "\"events\" must be an array")
		}
		path = "$.events"
	}
	out := make([]Envelope, len(items))
	for i, it := range items {
		if err := envelopeFromValue(&out[i], it, path, i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// envelopeFromValue maps one decoded JSON value onto *env. The value's
// path is prefix, followed by [index] when index >= 0; it is only
// rendered for an error.
func envelopeFromValue(env *Envelope, v any, prefix string, index int) *Error {
	r := reader{prefix: prefix, index: index, missing: CodeInvalidArgument}
	if !r.set(v) {
		return newError(CodeInvalidArgument, elemPath(prefix, index), "an event must be a JSON object")
	}
	*env = Envelope{
		EventID:        r.reqString("event_id", CodeInvalidArgument),
		TraceID:        r.reqString("trace_id", CodeInvalidArgument),
		TraceSeq:       r.reqInt("trace_seq", CodeInvalidArgument),
		EventType:      r.reqString("event_type", CodeSchemaViolation),
		OccurredAt:     r.reqString("occurred_at", CodeInvalidArgument),
		IdempotencyKey: r.reqString("idempotency_key", CodeInvalidArgument),
	}
	if src, ok := r.reqObject("source"); ok {
		sr := reader{prefix: prefix, index: index, sub: ".source", err: r.err, missing: CodeSchemaViolation}
		sr.set(src)
		env.Source = Source{
			ProducerID: sr.reqString("producer_id", CodeSchemaViolation),
			System:     sr.reqString("system", CodeSchemaViolation),
			Subsystem:  sr.optString("subsystem", CodeSchemaViolation),
		}
		r.err = sr.err
	}
	if act, ok := r.reqObject("actor"); ok {
		ar := reader{prefix: prefix, index: index, sub: ".actor", err: r.err, missing: CodeSchemaViolation}
		ar.set(act)
		env.Actor = Actor{
			ActorType: ar.reqString("actor_type", CodeSchemaViolation),
			ActorID:   ar.reqString("actor_id", CodeSchemaViolation),
		}
		r.err = ar.err
	}
	env.CorrelationID = r.optString("correlation_id", CodeInvalidArgument)
	env.CausationEventID = r.optString("causation_event_id", CodeInvalidArgument)
	env.SchemaVersion = 1
	if sv, _ := r.get("schema_version"); sv != nil {
		env.SchemaVersion = r.reqInt("schema_version", CodeSchemaViolation)
	}
	env.Tags = r.tags()
	env.Payload = r.payload()
	return r.err
}

func elemPath(prefix string, index int) string {
	if index < 0 {
		return prefix
	}
	return prefix + indexSegment(index)
}

// reader pulls typed members out of a decoded object, keeping the first
// error so field extraction reads top to bottom in the envelope's order.
type reader struct {
	// The object is m, or kvs when isKV (the split event-file decoder
	// hands over the envelope, source and actor objects as member lists).
	m    map[string]any
	kvs  kvObject
	isKV bool
	// The object's JSON path is prefix, [index] when index >= 0, then sub;
	// it is built only for an error.
	prefix string
	index  int
	sub    string
	err    *Error
	// missing is the code for an absent required member: invalid argument
	// for the envelope's own members (HTTP 400, as the API spec recommends),
	// schema violation inside source and actor (the API's "bad
	// actor/source", 422).
	missing Code
}

// set points the reader at v and reports whether v is an object.
func (r *reader) set(v any) bool {
	switch o := v.(type) {
	case map[string]any:
		r.m = o
		return o != nil
	case kvObject:
		r.kvs, r.isKV = o, true
		return true
	}
	return false
}

// get is the member key, as a map lookup gives it.
func (r *reader) get(key string) (any, bool) {
	if r.isKV {
		return r.kvs.get(key)
	}
	v, ok := r.m[key]
	return v, ok
}

func (r *reader) path() string { return elemPath(r.prefix, r.index) + r.sub }

func (r *reader) fail(code Code, key, msg string) {
	if r.err == nil {
		r.err = newError(code, r.path()+keySegment(key), msg)
	}
}

func (r *reader) reqString(key string, typeCode Code) string {
	v, ok := r.get(key)
	if !ok {
		r.fail(r.missing, key, key+" is required")
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail(typeCode, key, fmt.Sprintf("%s must be a string, not %s", key, jsonTypeName(v)))
	}
	return s
}

func (r *reader) optString(key string, typeCode Code) *string {
	v, _ := r.get(key)
	if v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		r.fail(typeCode, key, fmt.Sprintf("%s must be a string or null, not %s", key, jsonTypeName(v)))
		return nil
	}
	return &s
}

func (r *reader) reqInt(key string, typeCode Code) int64 {
	v, ok := r.get(key)
	if !ok {
		r.fail(r.missing, key, key+" is required")
		return 0
	}
	n, ok := v.(json.Number)
	if !ok {
		r.fail(typeCode, key, fmt.Sprintf("%s must be an integer, not %s", key, jsonTypeName(v)))
		return 0
	}
	if numberKind(string(n)) != numInteger {
		r.fail(typeCode, key, fmt.Sprintf("%s must be an integer, not %s", key, n))
		return 0
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		r.fail(typeCode, key, fmt.Sprintf("%s %s is out of range", key, n))
		return 0
	}
	return i
}

// reqObject returns the member key when it is an object (map[string]any
// or kvObject).
func (r *reader) reqObject(key string) (any, bool) {
	v, ok := r.get(key)
	if !ok {
		r.fail(CodeInvalidArgument, key, key+" is required")
		return nil, false
	}
	switch o := v.(type) {
	case map[string]any:
		if o != nil {
			return o, true
		}
	case kvObject:
		return o, true
	}
	r.fail(CodeSchemaViolation, key, fmt.Sprintf("%s must be a JSON object, not %s", key, jsonTypeName(v)))
	return nil, false
}

func (r *reader) tags() []string {
	v, _ := r.get("tags")
	if v == nil {
		return []string{}
	}
	list, ok := v.([]any)
	if !ok {
		r.fail(CodeSchemaViolation, "tags", fmt.Sprintf("tags must be an array of strings, not %s", jsonTypeName(v)))
		return nil
	}
	out := make([]string, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			if r.err == nil {
				r.err = newError(CodeSchemaViolation, r.path()+".tags"+indexSegment(i), fmt.Sprintf("tags must be strings, not %s", jsonTypeName(e)))
			}
			return nil
		}
		out[i] = s
	}
	return out
}

func (r *reader) payload() map[string]any {
	v, ok := r.get("payload")
	if !ok {
		r.fail(CodeInvalidArgument, "payload", "payload is required")
		return nil
	}
	p, ok := v.(map[string]any)
	if !ok {
		r.fail(CodeSchemaViolation, "payload", fmt.Sprintf("payload must be a JSON object, not %s", jsonTypeName(v)))
		return nil
	}
	return p
}

func jsonTypeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "the number " + string(x)
	case []any:
		return "an array"
	case map[string]any, kvObject:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
