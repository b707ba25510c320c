package event

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Expected values below were computed independently with Python's
// hashlib and json.dumps(sort_keys=True, separators=(",", ":"),
// ensure_ascii=False), following the byte formats documented on the
// functions.
const renewalStartHash = "sha256:dfc8d015d17ad8207da2ea0ce420691ab1df9e6eabc67856c6d3dca1fe9fc252"

func chainEvent() *StoredEvent {
	return &StoredEvent{
		Envelope: Envelope{
			EventID: "e1", TraceID: "tr1", TraceSeq: 0, EventType: TypeTraceStarted,
			OccurredAt:     "2025-12-31T10:00:00Z",
			Source:         Source{ProducerID: "p", System: "s"},
			Actor:          Actor{ActorType: "agent", ActorID: "a1"},
			IdempotencyKey: "k1", SchemaVersion: 1,
			Payload: map[string]any{"ignored": "payload_hash stands for it"},
		},
		TenantID: "t1", LogSeq: 1, PayloadHash: renewalStartHash,
		RecordedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestEventHashKnownValues(t *testing.T) {
	e := chainEvent()
	if got, _ := EventHash(e); got != "sha256:2cc75700486c1356630a7b9060130ce5197947f368611a71d78c67fe94685a71" {
		t.Errorf("event hash %s", got)
	}
	sub, corr := "sub", "c"
	e.TenantID = "tenant-é"
	e.Tags = []string{"x", "y"}
	e.CorrelationID = &corr
	e.Source.Subsystem = &sub
	e.LogSeq = 12345678901234
	e.TraceSeq = 7
	if got, _ := EventHash(e); got != "sha256:52da21832bfd1022e729da262afe3c06a3b8dc242aaefd4a93e903d02f821e48" {
		t.Errorf("event hash with every field set %s", got)
	}
}

func TestEventHashInputsAndNonInputs(t *testing.T) {
	base, _ := EventHash(chainEvent())
	str := func(s string) *string { return &s }
	changes := map[string]func(*StoredEvent){
		"tenant_id":          func(e *StoredEvent) { e.TenantID = "t2" },
		"event_id":           func(e *StoredEvent) { e.EventID = "e2" },
		"trace_id":           func(e *StoredEvent) { e.TraceID = "tr2" },
		"trace_seq":          func(e *StoredEvent) { e.TraceSeq = 1 },
		"log_seq":            func(e *StoredEvent) { e.LogSeq = 2 },
		"event_type":         func(e *StoredEvent) { e.EventType = TypeTraceFinished },
		"occurred_at":        func(e *StoredEvent) { e.OccurredAt = "2025-12-31T10:00:00+00:00" },
		"producer_id":        func(e *StoredEvent) { e.Source.ProducerID = "q" },
		"system":             func(e *StoredEvent) { e.Source.System = "q" },
		"subsystem":          func(e *StoredEvent) { e.Source.Subsystem = str("") },
		"actor_type":         func(e *StoredEvent) { e.Actor.ActorType = "person" },
		"actor_id":           func(e *StoredEvent) { e.Actor.ActorID = "a2" },
		"correlation_id":     func(e *StoredEvent) { e.CorrelationID = str("") },
		"causation_event_id": func(e *StoredEvent) { e.CausationEventID = str("e0") },
		"idempotency_key":    func(e *StoredEvent) { e.IdempotencyKey = "k2" },
		"schema_version":     func(e *StoredEvent) { e.SchemaVersion = 2 },
		"tags":               func(e *StoredEvent) { e.Tags = []string{""} },
		"payload_hash":       func(e *StoredEvent) { e.PayloadHash = strings.Replace(renewalStartHash, "d", "e", 1) },
	}
	for name, change := range changes {
		e := chainEvent()
		change(e)
		if h, _ := EventHash(e); h == base {
			t.Errorf("changing %s does not change the event hash", name)
		}
	}
	same := map[string]func(*StoredEvent){
		"recorded_at":  func(e *StoredEvent) { e.RecordedAt = time.Now() },
		"payload":      func(e *StoredEvent) { e.Payload = map[string]any{"other": "x"} },
		"event_hash":   func(e *StoredEvent) { e.EventHash = "x" },
		"chain_hash":   func(e *StoredEvent) { e.ChainHash = "x" },
		"nil vs empty": func(e *StoredEvent) { e.Tags = []string{} },
	}
	for name, change := range same {
		e := chainEvent()
		change(e)
		if h, _ := EventHash(e); h != base {
			t.Errorf("changing %s changes the event hash", name)
		}
	}
	if _, err := EventHash(nil); err == nil {
		t.Error("nil event hashed")
	}
}

func TestChainKnownValues(t *testing.T) {
	g := ChainGenesis("t1")
	if g != "sha256:300644e7853f952c81b593c0b026ddfe7e47ee79f83d73218748424111619663" {
		t.Errorf("genesis %s", g)
	}
	if g2 := ChainGenesis("tenant-é"); g2 != "sha256:2d426c57a417607410afda9b6d93a13c7d86d3536adcb530d3e3f8e40d2f46ba" {
		t.Errorf("genesis of a non-ASCII tenant %s", g2)
	}
	next := NextChainHash(g, "sha256:2cc75700486c1356630a7b9060130ce5197947f368611a71d78c67fe94685a71")
	if next != "sha256:2f3f2ee843f5165305466fdbe86e08c981ffd7fb84ef2562a4c25235160c938e" {
		t.Errorf("chain %s", next)
	}
}

// buildChain stores n events of one tenant with their hashes.
func buildChain(t *testing.T, n int) []*StoredEvent {
	t.Helper()
	prev := ChainGenesis("t1")
	var out []*StoredEvent
	for i := 0; i < n; i++ {
		e := chainEvent()
		e.EventID = "e" + string(rune('a'+i))
		e.LogSeq = int64(i + 1)
		e.TraceSeq = int64(i)
		e.Payload = map[string]any{"i": string(rune('a' + i))}
		e.PayloadHash, _ = PayloadHash(e.Payload)
		e.EventHash, _ = EventHash(e)
		e.ChainHash = NextChainHash(prev, e.EventHash)
		prev = e.ChainHash
		out = append(out, e)
	}
	return out
}

func verifyAll(events []*StoredEvent) error {
	prev := ChainGenesis("t1")
	for _, e := range events {
		var err error
		if prev, err = VerifyStored(prev, e); err != nil {
			return err
		}
	}
	return nil
}

func TestVerifyStoredDetectsTampering(t *testing.T) {
	if err := verifyAll(buildChain(t, 4)); err != nil {
		t.Fatalf("intact chain: %v", err)
	}
	tamper := map[string]struct {
		change func([]*StoredEvent) []*StoredEvent
		path   string
	}{
		"payload edited": {func(es []*StoredEvent) []*StoredEvent { es[1].Payload["i"] = "z"; return es }, "$.payload_hash"},
		"payload and its hash edited": {func(es []*StoredEvent) []*StoredEvent {
			es[1].Payload["i"] = "z"
			es[1].PayloadHash, _ = PayloadHash(es[1].Payload)
			return es
		}, "$.event_hash"},
		"field edited":  {func(es []*StoredEvent) []*StoredEvent { es[2].Actor.ActorID = "mallory"; return es }, "$.event_hash"},
		"event deleted": {func(es []*StoredEvent) []*StoredEvent { return append(es[:1], es[2:]...) }, "$.chain_hash"},
		"reordered": {func(es []*StoredEvent) []*StoredEvent {
			es[1], es[2] = es[2], es[1]
			return es
		}, "$.chain_hash"},
		"event rehashed after an edit": {func(es []*StoredEvent) []*StoredEvent {
			es[1].Actor.ActorID = "mallory"
			es[1].EventHash, _ = EventHash(es[1])
			return es
		}, "$.chain_hash"},
	}
	for name, c := range tamper {
		err := verifyAll(c.change(buildChain(t, 4)))
		assertCode(t, name, err, CodeConflict, c.path)
	}
}

// eventHashMap is the hash input built as a map, to check the hand-ordered
// writer of EventHash against CanonicalJSON.
func eventHashMap(e *StoredEvent) map[string]any {
	opt := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	tags := []any{}
	for _, t := range e.Tags {
		tags = append(tags, t)
	}
	return map[string]any{
		"tenant_id": e.TenantID, "event_id": e.EventID, "trace_id": e.TraceID,
		"trace_seq": e.TraceSeq, "log_seq": e.LogSeq, "event_type": e.EventType,
		"occurred_at": e.OccurredAt,
		"source": map[string]any{"producer_id": e.Source.ProducerID, "system": e.Source.System,
			"subsystem": opt(e.Source.Subsystem)},
		"actor":              map[string]any{"actor_id": e.Actor.ActorID, "actor_type": e.Actor.ActorType},
		"correlation_id":     opt(e.CorrelationID),
		"causation_event_id": opt(e.CausationEventID),
		"idempotency_key":    e.IdempotencyKey,
		"schema_version":     e.SchemaVersion,
		"tags":               tags,
		"payload_hash":       e.PayloadHash,
	}
}

func TestEventHashWriterMatchesCanonicalJSON(t *testing.T) {
	sub, corr, cause := "sub\u2028\"x\"", "c\x01", "😀"
	events := []*StoredEvent{chainEvent()}
	e := chainEvent()
	e.Source.Subsystem, e.CorrelationID, e.CausationEventID = &sub, &corr, &cause
	e.Tags = []string{"a", "<b>", "é"}
	e.TenantID, e.LogSeq, e.TraceSeq, e.SchemaVersion = "tenant\\1", 1<<62, -3, 0
	events = append(events, e)
	for _, ev := range events {
		want, err := CanonicalJSON(eventHashMap(ev))
		if err != nil {
			t.Fatal(err)
		}
		got, gerr := appendEventHashInput(nil, ev)
		if gerr != nil {
			t.Fatal(gerr)
		}
		if string(got) != string(want) {
			t.Errorf("hash input\n got %s\nwant %s", got, want)
		}
	}
	bad := chainEvent()
	bad.Tags = []string{"ok", "\xff"}
	if _, err := EventHash(bad); err == nil {
		t.Error("a tag that is not UTF-8 was hashed")
	}
	bad = chainEvent()
	bad.TenantID = "\xff"
	_, err := EventHash(bad)
	var e2 *Error
	if !errors.As(err, &e2) || e2.Path != "$.tenant_id" || e2.Code != CodeInvalidArgument {
		t.Errorf("tenant not UTF-8: %v", err)
	}
}
