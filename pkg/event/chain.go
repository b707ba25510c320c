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
	var err *Error
	// str writes prefix and then v as a JSON string; path names v in errors.
	str := func(prefix, path, v string) {
		if err != nil {
			return
		}
		b = append(b, prefix...)
		if b, err = appendCanonicalString(b, v); err != nil {
			err.Path = path
		}
	}
	opt := func(prefix, path string, v *string) {
		if v == nil {
			b = append(b, prefix...)
			b = append(b, "null"...)
			return
		}
		str(prefix, path, *v)
	}
	str(`{"actor":{"actor_id":`, "$.actor.actor_id", e.Actor.ActorID)
	str(`,"actor_type":`, "$.actor.actor_type", e.Actor.ActorType)
	opt(`},"causation_event_id":`, "$.causation_event_id", e.CausationEventID)
	opt(`,"correlation_id":`, "$.correlation_id", e.CorrelationID)
	str(`,"event_id":`, "$.event_id", e.EventID)
	str(`,"event_type":`, "$.event_type", e.EventType)
	str(`,"idempotency_key":`, "$.idempotency_key", e.IdempotencyKey)
	b = append(b, `,"log_seq":`...)
	b = strconv.AppendInt(b, e.LogSeq, 10)
	str(`,"occurred_at":`, "$.occurred_at", e.OccurredAt)
	str(`,"payload_hash":`, "$.payload_hash", e.PayloadHash)
	b = append(b, `,"schema_version":`...)
	b = strconv.AppendInt(b, e.SchemaVersion, 10)
	str(`,"source":{"producer_id":`, "$.source.producer_id", e.Source.ProducerID)
	opt(`,"subsystem":`, "$.source.subsystem", e.Source.Subsystem)
	str(`,"system":`, "$.source.system", e.Source.System)
	b = append(b, `},"tags":[`...)
	for i, t := range e.Tags {
		sep := ","
		if i == 0 {
			sep = ""
		}
		str(sep, "$.tags", t)
	}
	str(`],"tenant_id":`, "$.tenant_id", e.TenantID)
	str(`,"trace_id":`, "$.trace_id", e.TraceID)
	b = append(b, `,"trace_seq":`...)
	b = strconv.AppendInt(b, e.TraceSeq, 10)
	b = append(b, '}')
	if err != nil {
		return nil, err
	}
	return b, nil
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
