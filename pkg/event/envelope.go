package event

import "time"

// Source names the producer of an event.
type Source struct {
	ProducerID string  `json:"producer_id"`
	System     string  `json:"system"`
	Subsystem  *string `json:"subsystem"`
}

// Actor is who (or what) acted.
type Actor struct {
	ActorType string `json:"actor_type"`
	ActorID   string `json:"actor_id"`
}

// Envelope is an event as a producer submits it, before storage.
//
// Payload holds decoded JSON in the shape produced by a json.Decoder with
// UseNumber: map[string]any, []any, string, json.Number, bool and nil.
// Numbers stay json.Number so that integers of any size round-trip exactly
// and floats can be rejected by their literal form.
type Envelope struct {
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
	Payload          map[string]any `json:"payload"`
	Tags             []string       `json:"tags"`
}

// ApplyDefaults fills what the JSON loader defaults (events spec §2.1) for
// an envelope built in Go: schema_version 0 becomes 1 and nil tags become
// []. Optional ids stay nil (null). DecodeEnvelope has already done this.
func (e *Envelope) ApplyDefaults() {
	if e.SchemaVersion == 0 {
		e.SchemaVersion = 1
	}
	if e.Tags == nil {
		e.Tags = []string{}
	}
}

// StoredEvent is an envelope plus what storage assigns to it.
type StoredEvent struct {
	Envelope
	TenantID    string    `json:"tenant_id"`
	LogSeq      int64     `json:"log_seq"`
	RecordedAt  time.Time `json:"recorded_at"`
	PayloadHash string    `json:"payload_hash"`
	// EventHash and ChainHash are dg's hash chain (design §2).
	EventHash string `json:"event_hash"`
	ChainHash string `json:"chain_hash"`
}
