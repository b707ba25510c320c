package store_test

import (
	"errors"
	"fmt"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// MemLog applies the same append rules as the PostgreSQL store, without a
// database: a retry returns the original event, a gap in trace_seq is
// refused.
func ExampleMemLog() {
	log := store.NewMemLog(event.Options{})
	start := &event.Envelope{
		EventID: "e1", TraceID: "t1", TraceSeq: 0, EventType: event.TypeTraceStarted,
		OccurredAt:     "2025-12-31T10:00:00Z",
		Source:         event.Source{ProducerID: "agent_service", System: "crm"},
		Actor:          event.Actor{ActorType: "agent", ActorID: "bot"},
		IdempotencyKey: "start:t1", SchemaVersion: 1,
		Payload: map[string]any{"workflow": "renewal", "title": "Renewal",
			"primary_entity": map[string]any{"entity_type": "account", "entity_id": "a1"}},
	}
	ev, replayed, _ := log.Append("acme", start)
	fmt.Println(ev.LogSeq, ev.TraceSeq, replayed)

	ev, replayed, _ = log.Append("acme", start)
	fmt.Println(ev.LogSeq, replayed)

	gap := *start
	gap.EventID, gap.TraceSeq, gap.EventType, gap.IdempotencyKey = "e3", 2, event.TypeTraceFinished, "finish:t1"
	gap.Payload = map[string]any{"outcome": "success"}
	_, _, err := log.Append("acme", &gap)
	var ee *event.Error
	fmt.Println(errors.As(err, &ee), ee.Code)
	// Output:
	// 1 0 false
	// 1 true
	// true DG_ERR_EVENT_SEQUENCE_INVALID
}
