package projection_test

import (
	"fmt"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
)

// Digests of a log held in memory: what `dg events digest` prints. (The
// values were checked against Python's json.dumps with sort_keys and the
// default ensure_ascii, which escapes the é of the title.)
func ExampleDigestOffline() {
	env := func(seq int64, typ string, payload map[string]any) event.Envelope {
		return event.Envelope{
			EventID: fmt.Sprintf("e%d", seq), TraceID: "t1", TraceSeq: seq, EventType: typ,
			OccurredAt: "2026-01-01T00:00:00Z", Source: event.Source{ProducerID: "example", System: "docs"},
			Actor: event.Actor{ActorType: "agent", ActorID: "a1"}, IdempotencyKey: fmt.Sprintf("k%d", seq),
			SchemaVersion: 1, Payload: payload, Tags: []string{},
		}
	}
	res, err := projection.DigestOffline("default", []projection.EventFile{{Name: "inline", Events: []event.Envelope{
		env(0, event.TypeTraceStarted, map[string]any{"workflow": "w", "title": "Caf\u00e9",
			"primary_entity": map[string]any{"entity_type": "account", "entity_id": "1"}}),
		env(1, event.TypeTraceFinished, map[string]any{"outcome": "success"}),
	}}}, event.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(res.Digests.Lines())
	// Output:
	// context_graph:sha256:ad6326b3f712203d93ed192174b767fe3742f23a18c2b5c451104a4268074e96
	// full_projection:sha256:75b73f343adc9adbf674f4fc97041a4872d601784a38d9699f41cb74cfdc95d2
	// precedent_index:sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
	// trace_summary:sha256:58c4ba261819a8902fda3e16c6f11df3a63fe338e55c7c095190b7bd67a0019c
}
