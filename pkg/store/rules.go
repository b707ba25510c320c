package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
)

// The append rules of events spec §10 live here, once, over a logIndex: the
// Postgres appender fills a logIndex per batch with what the database holds
// for the batch's keys, MemLog keeps one for its whole life. Both run the
// same prepare -> decide -> accept sequence, so offline and online appends
// cannot drift apart.

type idemKey struct{ tenant, producer, key string }
type idKey struct{ tenant, eventID string }
type traceKey struct{ tenant, traceID string }

type traceState struct {
	next     int64 // max(trace_seq)+1, 0 for a trace with no events
	finished bool  // the trace has a TraceFinished event
}

type chainState struct {
	hash  string // chain_hash of the tenant's last event
	count int64  // events of the tenant
}

// logIndex is what the rules need to know about the log. A missing map entry
// means "not in the log", so a partial index (the Postgres batch view) must
// hold every key the events it judges touch.
type logIndex struct {
	idem   map[idemKey]*event.StoredEvent
	ids    map[idKey]struct{}
	traces map[traceKey]traceState
	chains map[string]chainState
	head   int64 // highest log_seq
}

func newLogIndex() *logIndex {
	return &logIndex{
		idem:   map[idemKey]*event.StoredEvent{},
		ids:    map[idKey]struct{}{},
		traces: map[traceKey]traceState{},
		chains: map[string]chainState{},
	}
}

// prepared is an envelope that passed validation, with what storage derives
// from it before looking at the log. Preparing is pure and runs in the
// caller's goroutine, so validation and hashing use every core while the
// appender serialises only the rules.
type prepared struct {
	tenant      string
	env         *event.Envelope
	payloadJSON []byte // canonical JSON; what is stored and what payload_hash covers
	payloadHash string
	tagsJSON    []byte
	// specHash, when not "", is the event hash for log_seq specSeq,
	// computed ahead (prepareAt) by a caller that expects the event at
	// that position (MemLog.AppendAll); accept uses it when the event
	// does land there.
	specSeq  int64
	specHash string
}

// MaxTenantIDBytes bounds tenant ids.
const MaxTenantIDBytes = 200

// prepare runs the validation of events spec §5.1 and computes the stored
// payload text and hash. It never looks at the log.
func prepare(tenant string, env *event.Envelope, opts event.Options) (*prepared, error) {
	return prepareBuf(tenant, env, opts, nil)
}

// prepareBuf is prepare with the canonical payload written into scratch
// (reused; nil to allocate): payloadJSON then aliases it, so the caller
// must be done with it before reusing scratch.
func prepareBuf(tenant string, env *event.Envelope, opts event.Options, scratch []byte) (*prepared, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	if env == nil {
		return nil, &event.Error{Code: event.CodeInvalidArgument, Path: "$", Message: "no event given"}
	}
	// Work on a shallow copy: the caller's envelope is never modified.
	cp := *env
	env = &cp
	if env.Tags == nil {
		// Absent tags mean [] (events spec §2.1); keep nil and [] identical
		// so idempotency comparison and hashing agree.
		env.Tags = []string{}
	}
	// ValidateCanonical canonicalises the payload once for validation,
	// storage and the hash.
	if scratch == nil {
		scratch = make([]byte, 0, 512)
	}
	canon, verr := event.ValidateCanonicalAppend(scratch, env, opts)
	if verr != nil {
		return nil, verr
	}
	if err := checkStorable(env); err != nil {
		return nil, err
	}
	tags, err := event.CanonicalJSON(env.Tags)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(canon)
	return &prepared{
		tenant:      tenant,
		env:         env,
		payloadJSON: canon,
		payloadHash: hashString(sum),
		tagsJSON:    tags,
	}, nil
}

// prepareAt is prepare for an envelope expected to become log_seq seq: it
// also computes the event hash for that position (everything the hash
// covers but log_seq is known before the log is looked at), so the
// appender does not have to when the guess is right. An event hash that
// cannot be computed is left to accept, which reports the error.
func prepareAt(tenant string, env *event.Envelope, opts event.Options, seq int64, scratch []byte) (*prepared, error) {
	p, err := prepareBuf(tenant, env, opts, scratch)
	if err != nil {
		return nil, err
	}
	ev := event.StoredEvent{Envelope: *p.env, TenantID: tenant, LogSeq: seq, PayloadHash: p.payloadHash}
	if h, herr := event.EventHash(&ev); herr == nil {
		p.specSeq, p.specHash = seq, h
	}
	return p, nil
}

// hashString renders a SHA-256 sum as "sha256:" + lower-case hex in one
// allocation.
func hashString(sum [sha256.Size]byte) string {
	var out [7 + 2*sha256.Size]byte
	copy(out[:], "sha256:")
	hex.Encode(out[7:], sum[:])
	return string(out[:])
}

func checkTenant(tenant string) error {
	switch {
	case strings.TrimSpace(tenant) == "":
		return &event.Error{Code: event.CodeInvalidArgument, Path: "tenant_id", Message: "tenant id is required and must not be blank"}
	case len(tenant) > MaxTenantIDBytes:
		return &event.Error{Code: event.CodeInvalidArgument, Path: "tenant_id", Message: fmt.Sprintf("tenant id is %d bytes; at most %d are allowed", len(tenant), MaxTenantIDBytes)}
	case strings.ContainsRune(tenant, 0):
		return &event.Error{Code: event.CodeInvalidArgument, Path: "tenant_id", Message: "tenant id must not contain NUL"}
	}
	return nil
}

// checkStorable rejects NUL characters in envelope strings stored as
// PostgreSQL text, which cannot hold them. (Payload and tags are stored as
// JSON text, where NUL is the escape \u0000, so they may contain it.) The
// in-memory log applies the same rule so both logs accept the same events.
func checkStorable(env *event.Envelope) error {
	fields := []struct {
		path string
		v    *string
	}{
		{"$.event_id", &env.EventID}, {"$.trace_id", &env.TraceID}, {"$.event_type", &env.EventType},
		{"$.occurred_at", &env.OccurredAt}, {"$.source.producer_id", &env.Source.ProducerID},
		{"$.source.system", &env.Source.System}, {"$.source.subsystem", env.Source.Subsystem},
		{"$.actor.actor_type", &env.Actor.ActorType}, {"$.actor.actor_id", &env.Actor.ActorID},
		{"$.correlation_id", env.CorrelationID}, {"$.causation_event_id", env.CausationEventID},
		{"$.idempotency_key", &env.IdempotencyKey},
	}
	for _, f := range fields {
		if f.v != nil && strings.ContainsRune(*f.v, 0) {
			return &event.Error{Code: event.CodeInvalidArgument, Path: f.path, Message: "must not contain the NUL character (U+0000)"}
		}
	}
	return nil
}

// decide applies the storage rules of events spec §10.1 steps 2-4 to a
// prepared envelope, in this order:
//
//  1. idempotency: an event with the same (tenant, producer_id, key) makes
//     this a retry: the stored event is returned if it matches (§10.2),
//     else DG_ERR_IDEMPOTENCY_CONFLICT;
//  2. event_id unique per tenant: a duplicate that is not a retry is
//     DG_ERR_CONFLICT;
//  3. finished lock: DG_ERR_CONFLICT if the trace has a TraceFinished;
//  4. sequencing: event.CheckSequence against max(trace_seq)+1.
//
// It returns (stored, nil) for an idempotent replay, (nil, nil) when the
// event is to be appended, and (nil, err) when it is rejected.
func (ix *logIndex) decide(p *prepared) (*event.StoredEvent, *event.Error) {
	env := p.env
	if prev, ok := ix.idem[idemKey{p.tenant, env.Source.ProducerID, env.IdempotencyKey}]; ok {
		if m := event.IdempotencyMismatches(prev, env); len(m) > 0 {
			return nil, event.IdempotencyConflict(env, m)
		}
		return prev, nil
	}
	if _, dup := ix.ids[idKey{p.tenant, env.EventID}]; dup {
		return nil, &event.Error{Code: event.CodeConflict, Path: "$.event_id",
			Message: fmt.Sprintf("event_id %q already exists in tenant %q under another idempotency key; give each new event a new event_id", env.EventID, p.tenant)}
	}
	ts := ix.traces[traceKey{p.tenant, env.TraceID}]
	if ts.finished {
		return nil, &event.Error{Code: event.CodeConflict, Path: "$.trace_id",
			Message: fmt.Sprintf("trace %q is finished; no event can be appended after its TraceFinished (start a new trace)", env.TraceID)}
	}
	if err := event.CheckSequence(env, ts.next); err != nil {
		return nil, err
	}
	return nil, nil
}

// accept turns a prepared envelope that decide let through into the stored
// event: the next log_seq, the tenant's next chain link, and the index
// updated so later events of the same batch see it.
func (ix *logIndex) accept(p *prepared, recordedAt time.Time) (*event.StoredEvent, error) {
	ev := &event.StoredEvent{
		Envelope:    *p.env,
		TenantID:    p.tenant,
		LogSeq:      ix.head + 1,
		RecordedAt:  recordedAt,
		PayloadHash: p.payloadHash,
	}
	eh := p.specHash
	if eh == "" || p.specSeq != ev.LogSeq {
		var err error
		if eh, err = event.EventHash(ev); err != nil {
			return nil, err
		}
	}
	cs, ok := ix.chains[p.tenant]
	if !ok {
		cs.hash = event.ChainGenesis(p.tenant)
	}
	ev.EventHash = eh
	ev.ChainHash = event.NextChainHash(cs.hash, eh)

	ix.head = ev.LogSeq
	ix.chains[p.tenant] = chainState{hash: ev.ChainHash, count: cs.count + 1}
	ix.idem[idemKey{p.tenant, ev.Source.ProducerID, ev.IdempotencyKey}] = ev
	ix.ids[idKey{p.tenant, ev.EventID}] = struct{}{}
	tk := traceKey{p.tenant, ev.TraceID}
	ts := ix.traces[tk]
	ts.next = ev.TraceSeq + 1
	ts.finished = ts.finished || ev.EventType == event.TypeTraceFinished
	ix.traces[tk] = ts
	return ev, nil
}

// recordedNow is the recorded_at of events appended now, at the microsecond
// precision PostgreSQL keeps, so a returned event equals its stored row.
func recordedNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// decodePayload decodes stored payload JSON keeping numbers as json.Number.
func decodePayload(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("payload is not a JSON object")
	}
	return m, nil
}
