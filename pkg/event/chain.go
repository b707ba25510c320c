package event

import (
	"crypto/sha256"
	"fmt"
	"strconv"
)

// EventHash is dg's per-event hash for the hash chain (design §2):
//
//	"sha256:" + lower-case hex( SHA-256( CanonicalJSON(h) ) )
//
// where CanonicalJSON is the payload dialect of events spec §8 (sorted keys,
// no whitespace, raw UTF-8) and h is the object with exactly these members:
//
//	tenant_id          string
//	event_id           string
//	trace_id           string
//	trace_seq          integer
//	log_seq            integer
//	event_type         string
//	occurred_at        string, verbatim as submitted
//	source             {"producer_id": string, "system": string, "subsystem": string|null}
//	actor              {"actor_id": string, "actor_type": string}
//	correlation_id     string|null
//	causation_event_id string|null
//	idempotency_key    string
//	schema_version     integer
//	tags               array of strings ([] when empty)
//	payload_hash       string, the stored "sha256:..." value
//
// recorded_at, the payload itself (covered by payload_hash), event_hash and
// chain_hash are not inputs. For example a TraceStarted of tenant "t1" hashes
// the bytes
//
//	{"actor":{"actor_id":"a1","actor_type":"agent"},"causation_event_id":null,"correlation_id":null,"event_id":"e1","event_type":"TraceStarted","idempotency_key":"k1","log_seq":1,"occurred_at":"2025-12-31T10:00:00Z","payload_hash":"sha256:…","schema_version":1,"source":{"producer_id":"p","subsystem":null,"system":"s"},"tags":[],"tenant_id":"t1","trace_id":"tr1","trace_seq":0}
//
// EventHash trusts e.PayloadHash: a verifier must also check that
// PayloadHash(e.Payload) equals it (VerifyStored does both).
func EventHash(e *StoredEvent) (string, error) {
	if e == nil {
		return "", newError(CodeInvalidArgument, "", "no event to hash")
	}
	b, err := appendEventHashInput(make([]byte, 0, 640), e)
	if err != nil {
		return "", fmt.Errorf("hash event %s: %w", e.EventID, err)
	}
	return sha256Hex(b), nil
}

// appendEventHashInput writes the canonical JSON of the hash input
// directly, members already in code-point order, because the single
// appender computes it for every event. chain_test.go checks it against
// CanonicalJSON of the same object built as a map.
func appendEventHashInput(b []byte, e *StoredEvent) ([]byte, *Error) {
	b, err := appendHashInputBeforeSeq(b, e)
	if err != nil {
		return nil, err
	}
	b = strconv.AppendInt(b, e.LogSeq, 10)
	return appendHashInputAfterSeq(b, e)
}

// appendHashInputBeforeSeq writes the hash input up to the log_seq value:
// every member that sorts before "log_seq" and the `,"log_seq":` key.
func appendHashInputBeforeSeq(b []byte, e *StoredEvent) ([]byte, *Error) {
	w := hashInputWriter{b: b}
	w.str(`{"actor":{"actor_id":`, "$.actor.actor_id", e.Actor.ActorID)
	w.str(`,"actor_type":`, "$.actor.actor_type", e.Actor.ActorType)
	w.opt(`},"causation_event_id":`, "$.causation_event_id", e.CausationEventID)
	w.opt(`,"correlation_id":`, "$.correlation_id", e.CorrelationID)
	w.str(`,"event_id":`, "$.event_id", e.EventID)
	w.str(`,"event_type":`, "$.event_type", e.EventType)
	w.str(`,"idempotency_key":`, "$.idempotency_key", e.IdempotencyKey)
	w.b = append(w.b, `,"log_seq":`...)
	if w.err != nil {
		return nil, w.err
	}
	return w.b, nil
}

// appendHashInputAfterSeq writes the hash input after the log_seq value.
func appendHashInputAfterSeq(b []byte, e *StoredEvent) ([]byte, *Error) {
	w := hashInputWriter{b: b}
	w.str(`,"occurred_at":`, "$.occurred_at", e.OccurredAt)
	w.str(`,"payload_hash":`, "$.payload_hash", e.PayloadHash)
	w.b = append(w.b, `,"schema_version":`...)
	w.b = strconv.AppendInt(w.b, e.SchemaVersion, 10)
	w.str(`,"source":{"producer_id":`, "$.source.producer_id", e.Source.ProducerID)
	w.opt(`,"subsystem":`, "$.source.subsystem", e.Source.Subsystem)
	w.str(`,"system":`, "$.source.system", e.Source.System)
	w.b = append(w.b, `},"tags":[`...)
	for i, t := range e.Tags {
		sep := ","
		if i == 0 {
			sep = ""
		}
		w.str(sep, "$.tags", t)
	}
	w.str(`],"tenant_id":`, "$.tenant_id", e.TenantID)
	w.str(`,"trace_id":`, "$.trace_id", e.TraceID)
	w.b = append(w.b, `,"trace_seq":`...)
	w.b = strconv.AppendInt(w.b, e.TraceSeq, 10)
	w.b = append(w.b, '}')
	if w.err != nil {
		return nil, w.err
	}
	return w.b, nil
}

// hashInputWriter appends hash input members, keeping the first error.
type hashInputWriter struct {
	b   []byte
	err *Error
}

// str writes prefix and then v as a JSON string; path names v in errors.
func (w *hashInputWriter) str(prefix, path, v string) {
	if w.err != nil {
		return
	}
	w.b = append(w.b, prefix...)
	var err *Error
	if w.b, err = appendCanonicalString(w.b, v); err != nil {
		err.Path = path
		w.err = err
	}
}

func (w *hashInputWriter) opt(prefix, path string, v *string) {
	if v == nil {
		w.b = append(w.b, prefix...)
		w.b = append(w.b, "null"...)
		return
	}
	w.str(prefix, path, *v)
}

// EventHashInput is an event's hash input (see EventHash) with its log_seq
// left open, so that everything but the log position can be prepared
// ahead of the appender. The zero value is not usable; see Ready.
type EventHashInput struct {
	b     []byte // the input with log_seq removed
	split int    // where the log_seq digits go
}

// NewEventHashInput prepares e's hash input without its LogSeq. It fails
// exactly when EventHash(e) would, with the same error.
func NewEventHashInput(e *StoredEvent) (EventHashInput, error) {
	b, err := appendHashInputBeforeSeq(make([]byte, 0, 640), e)
	if err != nil {
		return EventHashInput{}, fmt.Errorf("hash event %s: %w", e.EventID, err)
	}
	split := len(b)
	if b, err = appendHashInputAfterSeq(b, e); err != nil {
		return EventHashInput{}, fmt.Errorf("hash event %s: %w", e.EventID, err)
	}
	return EventHashInput{b: b, split: split}, nil
}

// Ready reports whether h was made by NewEventHashInput.
func (h EventHashInput) Ready() bool { return h.b != nil }

// Hash is EventHash of the event h was made from with the given log_seq.
func (h EventHashInput) Hash(logSeq int64) string {
	var buf [1024]byte
	b := buf[:0]
	if len(h.b)+20 > len(buf) {
		b = make([]byte, 0, len(h.b)+20)
	}
	b = append(b, h.b[:h.split]...)
	b = strconv.AppendInt(b, logSeq, 10)
	b = append(b, h.b[h.split:]...)
	return hashString(sha256.Sum256(b))
}

// ChainGenesis is the chain value before a tenant's first event:
//
//	"sha256:" + lower-case hex( SHA-256( "dg-chain-v1:" + tenantID ) )
//
// with tenantID's UTF-8 bytes appended to the ASCII prefix as they are.
func ChainGenesis(tenantID string) string {
	return sha256Hex([]byte("dg-chain-v1:" + tenantID))
}

// NextChainHash links one event into a tenant's chain, in log_seq order:
//
//	"sha256:" + lower-case hex( SHA-256( prev + ":" + eventHash ) )
//
// where prev is the previous event's chain_hash (ChainGenesis for the first)
// and eventHash is EventHash of this event, both as their full
// "sha256:<hex>" strings.
func NextChainHash(prev, eventHash string) string {
	var buf [160]byte
	b := append(buf[:0], prev...)
	b = append(b, ':')
	b = append(b, eventHash...)
	return hashString(sha256.Sum256(b))
}

// VerifyStored recomputes e's payload hash, event hash and chain hash given
// the previous chain value prev, and reports the first that differs from
// what e carries. It returns the recomputed chain hash so a caller can walk
// a log in log_seq order.
func VerifyStored(prev string, e *StoredEvent) (string, error) {
	ph, err := PayloadHash(e.Payload)
	if err != nil {
		return "", fmt.Errorf("event %s (log_seq %d): recompute payload hash: %w", e.EventID, e.LogSeq, err)
	}
	if ph != e.PayloadHash {
		return "", &Error{Code: CodeConflict, Path: "$.payload_hash", Message: fmt.Sprintf("event %s (log_seq %d): payload_hash is %s but the payload hashes to %s; the payload or its hash was altered", e.EventID, e.LogSeq, e.PayloadHash, ph)}
	}
	eh, err := EventHash(e)
	if err != nil {
		return "", err
	}
	if eh != e.EventHash {
		return "", &Error{Code: CodeConflict, Path: "$.event_hash", Message: fmt.Sprintf("event %s (log_seq %d): event_hash is %s but the event hashes to %s; a stored field was altered", e.EventID, e.LogSeq, e.EventHash, eh)}
	}
	ch := NextChainHash(prev, eh)
	if ch != e.ChainHash {
		return "", &Error{Code: CodeConflict, Path: "$.chain_hash", Message: fmt.Sprintf("event %s (log_seq %d): chain_hash is %s but the chain gives %s; an earlier event was altered, removed or reordered", e.EventID, e.LogSeq, e.ChainHash, ch)}
	}
	return ch, nil
}
