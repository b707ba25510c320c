package event

import (
	"bytes"
	"encoding/json"
	"time"
)

// RecordedAtLayout is how recorded_at is rendered: UTC, exactly six
// fractional digits and a literal Z (events spec §7).
const RecordedAtLayout = "2006-01-02T15:04:05.000000Z"

// wireEnvelope fixes the member order and the empty-tags rendering of an
// encoded envelope.
type wireEnvelope struct {
	EventID          string         `json:"event_id"`
	TraceID          string         `json:"trace_id"`
	TraceSeq         int64          `json:"trace_seq"`
	EventType        string         `json:"event_type"`
	OccurredAt       string         `json:"occurred_at"`
	Source           Source         `json:"source"`
	Actor            Actor          `json:"actor"`
	CorrelationID    *string        `json:"correlation_id"`
	CausationEventID *string        `json:"causation_event_id"`
	IdempotencyKey   string         `json:"idempotency_key"`
	SchemaVersion    int64          `json:"schema_version"`
	Tags             []string       `json:"tags"`
	Payload          map[string]any `json:"payload"`
}

type wireStored struct {
	wireEnvelope
	TenantID    string `json:"tenant_id"`
	LogSeq      int64  `json:"log_seq"`
	RecordedAt  string `json:"recorded_at"`
	PayloadHash string `json:"payload_hash"`
	EventHash   string `json:"event_hash,omitempty"`
	ChainHash   string `json:"chain_hash,omitempty"`
}

func toWire(env *Envelope) wireEnvelope {
	tags := env.Tags
	if tags == nil {
		tags = []string{}
	}
	return wireEnvelope{
		EventID: env.EventID, TraceID: env.TraceID, TraceSeq: env.TraceSeq,
		EventType: env.EventType, OccurredAt: env.OccurredAt, Source: env.Source,
		Actor: env.Actor, CorrelationID: env.CorrelationID,
		CausationEventID: env.CausationEventID, IdempotencyKey: env.IdempotencyKey,
		SchemaVersion: env.SchemaVersion, Tags: tags, Payload: env.Payload,
	}
}

// EncodeEnvelope renders env as compact JSON for responses and storage.
// Numbers in the payload are written exactly as their json.Number literal,
// `<>&` are not escaped, and nil tags are written as []. The output
// decodes back (DecodeEnvelope) to an equal envelope. It is not the
// canonical form: hash with PayloadHash or EventHash instead.
func EncodeEnvelope(env *Envelope) ([]byte, error) {
	return marshalCompact(toWire(env))
}

// EncodeStoredEvent renders a stored event: the envelope members followed
// by tenant_id, log_seq, recorded_at (RecordedAtLayout, UTC), payload_hash
// and, when set, event_hash and chain_hash.
func EncodeStoredEvent(e *StoredEvent) ([]byte, error) {
	return marshalCompact(wireStored{
		wireEnvelope: toWire(&e.Envelope),
		TenantID:     e.TenantID,
		LogSeq:       e.LogSeq,
		RecordedAt:   FormatRecordedAt(e.RecordedAt),
		PayloadHash:  e.PayloadHash,
		EventHash:    e.EventHash,
		ChainHash:    e.ChainHash,
	})
}

// FormatRecordedAt renders t in UTC with microseconds (RecordedAtLayout).
func FormatRecordedAt(t time.Time) string {
	return t.UTC().Format(RecordedAtLayout)
}

func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
