package event

import (
	"encoding/json"
	"strings"
	"testing"
)

const minimalEnvelope = `{
  "event_id": "e1", "trace_id": "t1", "trace_seq": 0, "event_type": "TraceStarted",
  "occurred_at": "2025-12-31T10:00:00Z",
  "source": {"producer_id": "p1", "system": "s1"},
  "actor": {"actor_type": "agent", "actor_id": "a1"},
  "idempotency_key": "start:t1",
  "payload": {"workflow": "w", "title": "T", "primary_entity": {"entity_type": "account", "entity_id": "x"}}
}`

func TestDecodeEnvelopeDefaults(t *testing.T) {
	env, err := DecodeEnvelope([]byte(minimalEnvelope))
	if err != nil {
		t.Fatal(err)
	}
	if env.Source.Subsystem != nil || env.CorrelationID != nil || env.CausationEventID != nil {
		t.Errorf("optional ids not nil: %+v", env)
	}
	if env.SchemaVersion != 1 {
		t.Errorf("schema_version %d, want 1", env.SchemaVersion)
	}
	if env.Tags == nil || len(env.Tags) != 0 {
		t.Errorf("tags %#v, want empty non-nil", env.Tags)
	}
	if verr := Validate(env, Options{}); verr != nil {
		t.Errorf("minimal envelope invalid: %v", verr)
	}
	// Explicit nulls mean the same as missing members.
	withNulls := strings.Replace(minimalEnvelope, `"idempotency_key"`, `"correlation_id": null, "causation_event_id": null, "schema_version": null, "tags": null, "idempotency_key"`, 1)
	withNulls = strings.Replace(withNulls, `"system": "s1"`, `"system": "s1", "subsystem": null`, 1)
	env2, err := DecodeEnvelope([]byte(withNulls))
	if err != nil {
		t.Fatal(err)
	}
	if env2.SchemaVersion != 1 || env2.Tags == nil || env2.Source.Subsystem != nil || env2.CorrelationID != nil {
		t.Errorf("nulls not defaulted: %+v", env2)
	}
}

func TestDecodeEnvelopeAllFields(t *testing.T) {
	in := `{"event_id":"e","trace_id":"t","trace_seq":7,"event_type":"TraceFinished","occurred_at":"2025-12-31T10:00:00Z",
	"source":{"producer_id":"p","system":"s","subsystem":""},"actor":{"actor_type":"person","actor_id":"a"},
	"correlation_id":"c","causation_event_id":"","idempotency_key":"k","schema_version":3,"tags":["b","a"],
	"payload":{"outcome":"success","n":-0,"big":1234567890123456789012345678901234567890},"unknown_member":{"ignored":true}}`
	env, err := DecodeEnvelope([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if env.TraceSeq != 7 || env.SchemaVersion != 3 || env.EventType != TypeTraceFinished {
		t.Errorf("scalars: %+v", env)
	}
	if env.Source.Subsystem == nil || *env.Source.Subsystem != "" || env.CausationEventID == nil || *env.CausationEventID != "" {
		t.Error("empty strings must stay empty strings, not become nil")
	}
	if *env.CorrelationID != "c" || env.Actor.ActorType != "person" || strings.Join(env.Tags, ",") != "b,a" {
		t.Errorf("fields: %+v", env)
	}
	if env.Payload["n"] != json.Number("-0") || env.Payload["big"] != json.Number("1234567890123456789012345678901234567890") {
		t.Errorf("numbers not kept as literals: %#v", env.Payload)
	}
}

func TestDecodeEnvelopeTypeErrors(t *testing.T) {
	cases := []struct {
		name, from, to string
		code           Code
		path           string
	}{
		{"trace_seq as string", `"trace_seq": 0`, `"trace_seq": "0"`, CodeInvalidArgument, "$.trace_seq"},
		{"trace_seq as float", `"trace_seq": 0`, `"trace_seq": 0.0`, CodeInvalidArgument, "$.trace_seq"},
		{"trace_seq with exponent", `"trace_seq": 0`, `"trace_seq": 1e2`, CodeInvalidArgument, "$.trace_seq"},
		{"trace_seq beyond int64", `"trace_seq": 0`, `"trace_seq": 99999999999999999999`, CodeInvalidArgument, "$.trace_seq"},
		{"trace_seq null", `"trace_seq": 0`, `"trace_seq": null`, CodeInvalidArgument, "$.trace_seq"},
		{"trace_seq missing", `"trace_seq": 0,`, ``, CodeInvalidArgument, "$.trace_seq"},
		{"event_id as number", `"event_id": "e1"`, `"event_id": 1`, CodeInvalidArgument, "$.event_id"},
		{"event_id missing", `"event_id": "e1",`, ``, CodeInvalidArgument, "$.event_id"},
		{"trace_id null", `"trace_id": "t1"`, `"trace_id": null`, CodeInvalidArgument, "$.trace_id"},
		{"occurred_at as number", `"occurred_at": "2025-12-31T10:00:00Z"`, `"occurred_at": 20251231`, CodeInvalidArgument, "$.occurred_at"},
		{"idempotency_key missing", `"idempotency_key": "start:t1",`, ``, CodeInvalidArgument, "$.idempotency_key"},
		{"idempotency_key as array", `"idempotency_key": "start:t1"`, `"idempotency_key": ["k"]`, CodeInvalidArgument, "$.idempotency_key"},
		{"event_type as number", `"event_type": "TraceStarted"`, `"event_type": 3`, CodeSchemaViolation, "$.event_type"},
		{"event_type missing", `"event_type": "TraceStarted",`, ``, CodeInvalidArgument, "$.event_type"},
		{"source missing", `"source": {"producer_id": "p1", "system": "s1"},`, ``, CodeInvalidArgument, "$.source"},
		{"source as string", `"source": {"producer_id": "p1", "system": "s1"}`, `"source": "p1"`, CodeSchemaViolation, "$.source"},
		{"source.producer_id missing", `"producer_id": "p1", `, ``, CodeSchemaViolation, "$.source.producer_id"},
		{"source.system as bool", `"system": "s1"`, `"system": true`, CodeSchemaViolation, "$.source.system"},
		{"source.subsystem as number", `"system": "s1"`, `"system": "s1", "subsystem": 1`, CodeSchemaViolation, "$.source.subsystem"},
		{"actor as array", `"actor": {"actor_type": "agent", "actor_id": "a1"}`, `"actor": []`, CodeSchemaViolation, "$.actor"},
		{"actor.actor_type missing", `"actor_type": "agent", `, ``, CodeSchemaViolation, "$.actor.actor_type"},
		{"actor.actor_id as number", `"actor_id": "a1"`, `"actor_id": 1`, CodeSchemaViolation, "$.actor.actor_id"},
		{"correlation_id as number", `"idempotency_key"`, `"correlation_id": 5, "idempotency_key"`, CodeInvalidArgument, "$.correlation_id"},
		{"causation_event_id as object", `"idempotency_key"`, `"causation_event_id": {}, "idempotency_key"`, CodeInvalidArgument, "$.causation_event_id"},
		{"schema_version as string", `"idempotency_key"`, `"schema_version": "1", "idempotency_key"`, CodeSchemaViolation, "$.schema_version"},
		{"schema_version as float", `"idempotency_key"`, `"schema_version": 1.0, "idempotency_key"`, CodeSchemaViolation, "$.schema_version"},
		{"tags as string", `"idempotency_key"`, `"tags": "a", "idempotency_key"`, CodeSchemaViolation, "$.tags"},
		{"tag as number", `"idempotency_key"`, `"tags": ["a", 1], "idempotency_key"`, CodeSchemaViolation, "$.tags[1]"},
		{"payload missing", `"payload": {`, `"not_payload": {`, CodeInvalidArgument, "$.payload"},
		{"payload as array", `"payload": {`, `"payload": [], "p": {`, CodeSchemaViolation, "$.payload"},
		{"payload null", `"payload": {`, `"payload": null, "p": {`, CodeSchemaViolation, "$.payload"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := strings.Replace(minimalEnvelope, c.from, c.to, 1)
			if in == minimalEnvelope {
				t.Fatalf("replacement %q not found", c.from)
			}
			env, err := DecodeEnvelope([]byte(in))
			if err == nil {
				t.Fatalf("decoded %+v, want %s at %s", env, c.code, c.path)
			}
			if err.Code != c.code || err.Path != c.path {
				t.Errorf("got %s at %q (%s), want %s at %q", err.Code, err.Path, err.Message, c.code, c.path)
			}
		})
	}
}

func TestDecodeValueRejects(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	huge := strings.Repeat("[", 1_000_000)
	cases := map[string]string{
		"empty":                     "",
		"whitespace":                "  \n",
		"malformed":                 `{"a":}`,
		"unterminated":              `{"a":"b`,
		"trailing data":             `{} {}`,
		"trailing garbage":          `{}x`,
		"invalid UTF-8 in string":   "{\"a\":\"\xff\"}",
		"overlong UTF-8":            "{\"a\":\"\xc0\xaf\"}",
		"encoded surrogate":         "{\"a\":\"\xed\xa0\x80\"}",
		"invalid UTF-8 in key":      "{\"\xfe\":1}",
		"lone high surrogate":       `{"a":"\ud83d"}`,
		"lone high then text":       `{"a":"\ud83dxxxxxx"}`,
		"high then high":            `{"a":"\ud83d\ud83d"}`,
		"lone low surrogate":        `{"a":"\ude00"}`,
		"lone surrogate in key":     `{"\udc00":1}`,
		"nesting beyond MaxDepth":   deep,
		"a million open brackets":   huge,
		"NaN":                       `{"a":NaN}`,
		"Infinity":                  `[Infinity]`,
		"single quotes":             `{'a':1}`,
		"leading zero":              `[01]`,
		"comment":                   `{} // x`,
		"control character in text": "{\"a\":\"x\ny\"}",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			v, err := DecodeValue([]byte(in))
			if err == nil {
				t.Fatalf("accepted: %#v", v)
			}
			if err.Code != CodeInvalidArgument {
				t.Errorf("code %s (%s), want invalid argument", err.Code, err.Message)
			}
		})
	}
}

func TestDecodeValueAccepts(t *testing.T) {
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := DecodeValue([]byte(ok)); err != nil {
		t.Errorf("%d levels: %v", MaxDepth, err)
	}
	// Brackets inside strings do not count as nesting.
	if _, err := DecodeValue([]byte(`["` + strings.Repeat("[{", 2000) + `"]`)); err != nil {
		t.Errorf("brackets in a string: %v", err)
	}
	v, err := DecodeValue([]byte(`{"s":"\ud83d\ude00 \u00e9 \\ud83d \"\\"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.(map[string]any)["s"]; got != "😀 é \\ud83d \"\\" {
		t.Errorf("got %q", got)
	}
	v, err = DecodeValue([]byte(`{"a":1,"a":{"b":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, isObj := v.(map[string]any)["a"].(map[string]any); !isObj {
		t.Errorf("duplicate key: want the last value, got %#v", v)
	}
	if _, err := DecodeValue([]byte("\ufeff{}")); err == nil {
		t.Error("a byte-order mark is not JSON and must be rejected")
	}
}

func TestDecodeEnvelopeNotAnObject(t *testing.T) {
	for _, in := range []string{`[]`, `"x"`, `1`, `null`} {
		_, err := DecodeEnvelope([]byte(in))
		if err == nil || err.Code != CodeInvalidArgument || err.Path != "$" {
			t.Errorf("%s: got %v", in, err)
		}
	}
}

func TestDecodeEvents(t *testing.T) {
	bare := "[" + minimalEnvelope + "," + minimalEnvelope + "]"
	wrapped := `{"scenario":"x","events":` + bare + `}`
	for name, in := range map[string]string{"bare array": bare, "object": wrapped} {
		evs, err := DecodeEvents([]byte(in))
		if err != nil || len(evs) != 2 || evs[1].EventID != "e1" {
			t.Errorf("%s: %d events, %v", name, len(evs), err)
		}
	}
	if evs, err := DecodeEvents([]byte(`{"events":[]}`)); err != nil || len(evs) != 0 {
		t.Errorf("empty list: %v %v", evs, err)
	}
	bad := strings.Replace(minimalEnvelope, `"trace_seq": 0`, `"trace_seq": "1"`, 1)
	cases := []struct{ in, path string }{
		{`{"events":[` + minimalEnvelope + "," + bad + `]}`, "$.events[1].trace_seq"},
		{`[` + bad + `]`, "$[0].trace_seq"},
		{`[` + minimalEnvelope + `, 3]`, "$[1]"},
		{`{"event":[]}`, "$.events"},
		{`{"events":{}}`, "$.events"},
		{`"events"`, "$"},
		{`[`, "$"},
	}
	for _, c := range cases {
		_, err := DecodeEvents([]byte(c.in))
		assertCode(t, c.in[:min(len(c.in), 40)], err, CodeInvalidArgument, c.path)
	}
}
