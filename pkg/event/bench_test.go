package event

import "testing"

// typicalEvent is an InputObserved of the size the golden fixtures carry
// (about 1 KiB of JSON).
const typicalEvent = `{
  "event_id": "12222222-2222-2222-2222-222222222222",
  "trace_id": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
  "trace_seq": 1,
  "event_type": "InputObserved",
  "occurred_at": "2025-12-31T10:00:01Z",
  "source": {"producer_id": "renewal-agent-service", "system": "agent-orchestrator", "subsystem": null},
  "actor": {"actor_type": "agent", "actor_id": "renewal-agent-v1"},
  "correlation_id": null,
  "causation_event_id": null,
  "idempotency_key": "input:sf:opp:123:deal_size",
  "schema_version": 1,
  "payload": {
    "input_id": "deal_size",
    "source": {"system": "salesforce", "object_type": "opportunity", "object_id": "sf:opp:123", "locator": "https://example.invalid/opp/123"},
    "facts": [
      {"key": "amount", "value": {"type": "decimal", "value": "250000.00"}, "as_of": "2025-12-31T09:00:00Z"},
      {"key": "currency", "value": {"type": "string", "value": "EUR"}, "as_of": null},
      {"key": "discount_requested", "value": {"type": "decimal", "value": "0.20"}, "as_of": null},
      {"key": "segment", "value": {"type": "string", "value": "enterprise"}, "as_of": null}
    ]
  },
  "tags": ["renewal", "q4"]
}`

func typicalEnvelope(b *testing.B) *Envelope {
	env, err := DecodeEnvelope([]byte(typicalEvent))
	if err != nil {
		b.Fatal(err)
	}
	if verr := Validate(env, Options{}); verr != nil {
		b.Fatal(verr)
	}
	return env
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	data := []byte(typicalEvent)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEnvelope(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	env := typicalEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(env, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPayloadHash(b *testing.B) {
	env := typicalEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PayloadHash(env.Payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventHash(b *testing.B) {
	env := typicalEnvelope(b)
	e := &StoredEvent{Envelope: *env, TenantID: "t1", LogSeq: 2}
	e.PayloadHash, _ = PayloadHash(env.Payload)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EventHash(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeEnvelope(b *testing.B) {
	env := typicalEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeEnvelope(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEvents10k decodes an event file of 10,000 events of the
// size the golden fixtures carry, in the fixture format.
func BenchmarkDecodeEvents10k(b *testing.B) {
	var buf []byte
	buf = append(buf, "{\"events\": [\n"...)
	for i := range 10000 {
		if i > 0 {
			buf = append(buf, ",\n"...)
		}
		buf = append(buf, typicalEvent...)
	}
	buf = append(buf, "\n]}\n"...)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if envs, err := DecodeEvents(buf); err != nil || len(envs) != 10000 {
			b.Fatal(err)
		}
	}
}
