package event

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/decisiongraph/dg/internal/fixtures"
)

// addFixtureSeeds adds each fixture event (re-encoded) as a seed when the
// shared fixtures are present; fuzzing works without them.
func addFixtureSeeds(f *testing.F, add func(env []byte)) {
	dir, ok := fixtures.Find()
	if !ok {
		return
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*", "events.json"))
	files = append(files, filepath.Join(dir, "release-demo", "events.transcribed.json"))
	for _, fn := range files {
		data, err := os.ReadFile(fn)
		if err != nil {
			continue
		}
		events, err := DecodeEvents(data)
		if err != nil {
			continue
		}
		for i := range events {
			if b, err := EncodeEnvelope(&events[i]); err == nil {
				add(b)
			}
		}
	}
}

var jsonSeeds = []string{
	`{}`, `[]`, `null`, `true`, `-0`, `0`, `1.0`, `1e3`, `-0.0`, `"\u0000\u001f\u007f\u2028"`,
	`{"b":1,"a":[1,{"d":null,"c":"é😀"}]}`,
	`{"big":1234567890123456789012345678901234567890,"neg":-12345678901234567890123}`,
	`{"a":1,"a":2}`, `{"\ud83d\ude00":"x","｡":"y"}`, `[[[[[[[[[[]]]]]]]]]]`,
	`{"s":"<>&/\\\"\b\f\n\r\t"}`, `"\ud83d"`, "\"\xff\"",
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	addFixtureSeeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, data []byte) {
		v, derr := DecodeValue(data)
		if derr != nil {
			return
		}
		first, err := CanonicalJSON(v)
		if err != nil {
			// A decoded document is always JSON; only a float can fail it.
			if code, _ := CodeOf(err); code != CodeSchemaViolation {
				t.Fatalf("decoded value failed with %v", err)
			}
			return
		}
		if !utf8.Valid(first) || !json.Valid(first) {
			t.Fatalf("canonical output is not valid UTF-8 JSON: %q", first)
		}
		v2, derr := DecodeValue(first)
		if derr != nil {
			t.Fatalf("canonical output does not decode: %v\n%q", derr, first)
		}
		second, err := CanonicalJSON(v2)
		if err != nil {
			t.Fatalf("re-canonicalising failed: %v", err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("decode-encode-decode is not stable:\n%q\n%q", first, second)
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(minimalEnvelope))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`{"event_id":1}`))
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	addFixtureSeeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = DecodeEvents(data)
		env, derr := DecodeEnvelope(data)
		if derr != nil {
			if derr.Code == "" || derr.Path == "" {
				t.Fatalf("error without code or path: %#v", derr)
			}
			return
		}
		verr := Validate(env, Options{})
		b, err := EncodeEnvelope(env)
		if err != nil {
			return // e.g. a payload encoding/json cannot write
		}
		back, derr := DecodeEnvelope(b)
		if derr != nil {
			t.Fatalf("re-decoding an encoded envelope failed: %v\n%s", derr, b)
		}
		verr2 := Validate(back, Options{})
		if (verr == nil) != (verr2 == nil) || (verr != nil && (verr.Code != verr2.Code || verr.Path != verr2.Path)) {
			t.Fatalf("validation changed over an encode/decode round trip: %v vs %v", verr, verr2)
		}
		if verr == nil {
			stored := &StoredEvent{Envelope: *env}
			stored.PayloadHash, _ = PayloadHash(env.Payload)
			if !SameForIdempotency(stored, back) {
				t.Fatalf("round trip is not an idempotent retry: %v", IdempotencyMismatches(stored, back))
			}
		}
	})
}

func FuzzValidate(f *testing.F) {
	f.Add("e1", "t1", int64(0), TypeTraceStarted, "2025-12-31T10:00:00Z", "agent", "p", "k", "tag", []byte(validPayloads[TypeTraceStarted]), false)
	f.Add("", " ", int64(-1), "Nope", "x", "robot", "", "", " ", []byte(`{"a":1.0}`), true)
	f.Add("e", "t", int64(3), TypeApprovalRecorded, "2025-12-31T10:00:00+01:00", "person", "sk-x", "a\x00", "Malaysia", []byte(validPayloads[TypeApprovalRecorded]), true)
	for typ, p := range validPayloads {
		f.Add("e", "t", int64(1), typ, "2025-12-31T10:00:00Z", "system", "prod", "key", "x", []byte(p), true)
	}
	f.Fuzz(func(t *testing.T, eventID, traceID string, seq int64, eventType, occurredAt, actorType, producer, key, tag string, payload []byte, strict bool) {
		env := &Envelope{
			EventID: eventID, TraceID: traceID, TraceSeq: seq, EventType: eventType,
			OccurredAt: occurredAt, Source: Source{ProducerID: producer, System: "s"},
			Actor: Actor{ActorType: actorType, ActorID: "a"}, IdempotencyKey: key,
			SchemaVersion: 1, Tags: []string{tag},
		}
		if v, err := DecodeValue(payload); err == nil {
			env.Payload, _ = v.(map[string]any)
		}
		h, verr := ValidateAndHash(env, Options{Strict: strict})
		if verr != nil {
			if verr.Code == "" || verr.Path == "" || verr.Message == "" {
				t.Fatalf("incomplete error %#v", verr)
			}
			return
		}
		if strict {
			if err := Validate(env, Options{}); err != nil {
				t.Fatalf("strict accepted what the default rejects: %v", err)
			}
		}
		ph, err := PayloadHash(env.Payload)
		if err != nil || ph != h {
			t.Fatalf("valid event: PayloadHash %s %v, ValidateAndHash %s", ph, err, h)
		}
	})
}
