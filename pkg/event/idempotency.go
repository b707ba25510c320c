package event

import (
	"fmt"
	"slices"
)

// IdempotencyMismatches compares a stored event with an incoming envelope
// that has the same (tenant, source.producer_id, idempotency_key), per
// events spec §10.2. It returns nil when the envelope is an idempotent retry
// of the stored event, else the names of the differing fields: "payload"
// alone when the payload hashes differ (the reference reports that first and
// compares nothing else), otherwise any of trace_id, event_type, source,
// actor, correlation_id, causation_event_id, schema_version, tags.
//
// trace_seq, event_id and occurred_at are deliberately not compared: a retry
// may carry a later computed trace_seq. A nil and an empty-string subsystem
// or id differ. The incoming payload must already be valid (Validate runs
// first); a payload that cannot be hashed counts as different.
func IdempotencyMismatches(stored *StoredEvent, env *Envelope) []string {
	h, err := PayloadHash(env.Payload)
	if err != nil || h != stored.PayloadHash {
		return []string{"payload"}
	}
	var m []string
	if stored.TraceID != env.TraceID {
		m = append(m, "trace_id")
	}
	if stored.EventType != env.EventType {
		m = append(m, "event_type")
	}
	if stored.Source.ProducerID != env.Source.ProducerID || stored.Source.System != env.Source.System || !sameOpt(stored.Source.Subsystem, env.Source.Subsystem) {
		m = append(m, "source")
	}
	if stored.Actor != env.Actor {
		m = append(m, "actor")
	}
	if !sameOpt(stored.CorrelationID, env.CorrelationID) {
		m = append(m, "correlation_id")
	}
	if !sameOpt(stored.CausationEventID, env.CausationEventID) {
		m = append(m, "causation_event_id")
	}
	if stored.SchemaVersion != env.SchemaVersion {
		m = append(m, "schema_version")
	}
	if !slices.Equal(stored.Tags, env.Tags) {
		m = append(m, "tags")
	}
	return m
}

// SameForIdempotency reports whether env is an idempotent retry of stored
// (IdempotencyMismatches is empty).
func SameForIdempotency(stored *StoredEvent, env *Envelope) bool {
	return len(IdempotencyMismatches(stored, env)) == 0
}

// IdempotencyConflict builds the CodeIdempotencyConflict error for the
// mismatches IdempotencyMismatches found, with details {"mismatches": [...]}.
func IdempotencyConflict(env *Envelope, mismatches []string) *Error {
	msg := fmt.Sprintf("idempotency key %q of producer %q was already used for a different event (differs in %v); use a new key for a new event", env.IdempotencyKey, env.Source.ProducerID, mismatches)
	if len(mismatches) == 1 && mismatches[0] == "payload" {
		msg = fmt.Sprintf("idempotency key %q of producer %q was already used with a different payload; use a new key for a new event", env.IdempotencyKey, env.Source.ProducerID)
	}
	ms := make([]any, len(mismatches))
	for i, s := range mismatches {
		ms[i] = s
	}
	return &Error{Code: CodeIdempotencyConflict, Path: "$.idempotency_key", Message: msg, Details: map[string]any{"mismatches": ms}}
}

// CheckSequence applies the sequencing rules of events spec §10.1 step 4 to
// an envelope whose trace expects next (0 for a new trace, else the largest
// stored trace_seq + 1). Storage calls it after the idempotency and
// finished-trace checks; it is pure so the order of its own checks lives
// here: wrong trace_seq, then TraceStarted not at 0, then a first event that
// is not TraceStarted. All are CodeEventSequenceInvalid.
func CheckSequence(env *Envelope, next int64) *Error {
	if env.TraceSeq != next {
		return &Error{Code: CodeEventSequenceInvalid, Path: "$.trace_seq",
			Message: fmt.Sprintf("expected trace_seq %d, got %d; read the trace and send its next sequence number", next, env.TraceSeq),
			Details: map[string]any{"expected_trace_seq": next}}
	}
	if env.EventType == TypeTraceStarted && env.TraceSeq != 0 {
		return newError(CodeEventSequenceInvalid, "$.trace_seq", "TraceStarted must have trace_seq=0")
	}
	if env.EventType != TypeTraceStarted && env.TraceSeq == 0 {
		return newError(CodeEventSequenceInvalid, "$.event_type", fmt.Sprintf("first event must be TraceStarted, got %s", env.EventType))
	}
	return nil
}

func sameOpt(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
