package event

import (
	"encoding/json"
	"slices"
	"testing"
)

func storedFrom(t *testing.T, env *Envelope) *StoredEvent {
	t.Helper()
	h, err := PayloadHash(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	cp := *env
	cp.Tags = slices.Clone(env.Tags)
	return &StoredEvent{Envelope: cp, TenantID: "t1", LogSeq: 9, PayloadHash: h}
}

func TestIdempotencyMatching(t *testing.T) {
	str := func(s string) *string { return &s }
	cases := []struct {
		name   string
		mutate func(*Envelope)
		want   []string
	}{
		{"identical retry", func(*Envelope) {}, nil},
		{"trace_seq is not compared", func(e *Envelope) { e.TraceSeq = 5 }, nil},
		{"event_id is not compared", func(e *Envelope) { e.EventID = "other" }, nil},
		{"occurred_at is not compared", func(e *Envelope) { e.OccurredAt = "2026-01-01T00:00:00Z" }, nil},
		{"payload key order is irrelevant", func(e *Envelope) {
			e.Payload = mustDecode(t, `{"primary_entity":{"system":"salesforce","entity_id":"sf:acct:001","entity_type":"account"},"title":"Renewal","workflow":"renewal_discount"}`).(map[string]any)
		}, nil},
		{"different payload", func(e *Envelope) { e.Payload["title"] = "x" }, []string{"payload"}},
		{"payload differs and metadata too: payload alone", func(e *Envelope) {
			e.Payload["title"] = "x"
			e.TraceID = "other"
		}, []string{"payload"}},
		{"trace_id", func(e *Envelope) { e.TraceID = "other" }, []string{"trace_id"}},
		{"event_type", func(e *Envelope) { e.EventType = TypeTraceFinished }, []string{"event_type"}},
		{"source.producer_id", func(e *Envelope) { e.Source.ProducerID = "x" }, []string{"source"}},
		{"source.system", func(e *Envelope) { e.Source.System = "x" }, []string{"source"}},
		{"subsystem nil vs value", func(e *Envelope) { e.Source.Subsystem = nil }, []string{"source"}},
		{"actor_type", func(e *Envelope) { e.Actor.ActorType = "person" }, []string{"actor"}},
		{"actor_id", func(e *Envelope) { e.Actor.ActorID = "x" }, []string{"actor"}},
		{"correlation_id", func(e *Envelope) { e.CorrelationID = str("c") }, []string{"correlation_id"}},
		{"causation_event_id", func(e *Envelope) { e.CausationEventID = str("") }, []string{"causation_event_id"}},
		{"schema_version", func(e *Envelope) { e.SchemaVersion = 2 }, []string{"schema_version"}},
		{"tags order", func(e *Envelope) { e.Tags = []string{"b", "a"} }, []string{"tags"}},
		{"tags extra", func(e *Envelope) { e.Tags = []string{"a", "b", "c"} }, []string{"tags"}},
		{"several, in the reference's order", func(e *Envelope) {
			e.Tags = nil
			e.Actor.ActorID = "x"
			e.TraceID = "y"
		}, []string{"trace_id", "actor", "tags"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := validEnvelope(t, TypeTraceStarted)
			base.Tags = []string{"a", "b"}
			stored := storedFrom(t, base)
			in := validEnvelope(t, TypeTraceStarted)
			in.Tags = []string{"a", "b"}
			c.mutate(in)
			got := IdempotencyMismatches(stored, in)
			if !slices.Equal(got, c.want) {
				t.Errorf("mismatches %v, want %v", got, c.want)
			}
			if SameForIdempotency(stored, in) != (len(c.want) == 0) {
				t.Errorf("SameForIdempotency disagrees with %v", got)
			}
		})
	}
}

func TestIdempotencyNilVersusEmptySubsystem(t *testing.T) {
	base := validEnvelope(t, TypeTraceStarted)
	base.Source.Subsystem = nil
	stored := storedFrom(t, base)
	in := validEnvelope(t, TypeTraceStarted)
	empty := ""
	in.Source.Subsystem = &empty
	if SameForIdempotency(stored, in) {
		t.Error("null and empty subsystem must differ")
	}
	in.Source.Subsystem = nil
	if !SameForIdempotency(stored, in) {
		t.Error("nil and nil must match")
	}
}

func TestIdempotencyNegativeZeroIsTheSamePayload(t *testing.T) {
	base := validEnvelope(t, TypeTraceStarted)
	base.Payload["n"] = json.Number("0")
	stored := storedFrom(t, base)
	in := validEnvelope(t, TypeTraceStarted)
	in.Payload["n"] = json.Number("-0")
	if !SameForIdempotency(stored, in) {
		t.Error("-0 and 0 canonicalise alike, so the payload hashes match")
	}
}

func TestIdempotencyConflictError(t *testing.T) {
	env := validEnvelope(t, TypeTraceStarted)
	err := IdempotencyConflict(env, []string{"actor", "tags"})
	if err.Code != CodeIdempotencyConflict {
		t.Errorf("code %s", err.Code)
	}
	ms, _ := err.Details["mismatches"].([]any)
	if len(ms) != 2 || ms[0] != "actor" || ms[1] != "tags" {
		t.Errorf("details %#v", err.Details)
	}
	if b, jerr := json.Marshal(err.Details); jerr != nil || string(b) != `{"mismatches":["actor","tags"]}` {
		t.Errorf("details JSON %s %v", b, jerr)
	}
}

func TestCheckSequence(t *testing.T) {
	cases := []struct {
		name      string
		eventType string
		seq, next int64
		path      string // "" means accepted
	}{
		{"first TraceStarted", TypeTraceStarted, 0, 0, ""},
		{"next event", TypeInputObserved, 3, 3, ""},
		{"gap", TypeInputObserved, 5, 3, "$.trace_seq"},
		{"replay of an old seq", TypeInputObserved, 2, 3, "$.trace_seq"},
		{"new trace starting at 1", TypeInputObserved, 1, 0, "$.trace_seq"},
		{"TraceStarted again later", TypeTraceStarted, 3, 3, "$.trace_seq"},
		{"first event not TraceStarted", TypeInputObserved, 0, 0, "$.event_type"},
	}
	for _, c := range cases {
		env := validEnvelope(t, c.eventType)
		env.TraceSeq = c.seq
		err := CheckSequence(env, c.next)
		if c.path == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		assertCode(t, c.name, errOrNil(err), CodeEventSequenceInvalid, c.path)
	}
	env := validEnvelope(t, TypeInputObserved)
	env.TraceSeq = 9
	if err := CheckSequence(env, 4); err == nil || err.Details["expected_trace_seq"] != int64(4) {
		t.Errorf("details: %v", err)
	}
}

// errOrNil converts a typed *Error to error without the nil-interface trap.
func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}
