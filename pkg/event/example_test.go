package event_test

import (
	"fmt"

	"github.com/decisiongraph/dg/pkg/event"
)

// A request body is decoded strictly, validated, and hashed.
func ExampleDecodeEnvelope() {
	body := []byte(`{
	  "event_id": "e-1", "trace_id": "trace-1", "trace_seq": 0,
	  "event_type": "TraceStarted", "occurred_at": "2025-12-31T10:00:00Z",
	  "source": {"producer_id": "renewal-agent-service", "system": "agent-orchestrator"},
	  "actor": {"actor_type": "agent", "actor_id": "renewal-agent-v1"},
	  "idempotency_key": "start:sf:opp:123",
	  "payload": {"workflow": "renewal_discount", "title": "Renewal discount for sf:opp:123",
	              "primary_entity": {"entity_type": "account", "entity_id": "sf:acct:001", "system": "salesforce"}}
	}`)
	env, err := event.DecodeEnvelope(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	if verr := event.Validate(env, event.Options{}); verr != nil {
		fmt.Println(verr)
		return
	}
	hash, _ := event.PayloadHash(env.Payload)
	fmt.Println(env.SchemaVersion, env.Tags, env.CorrelationID == nil)
	fmt.Println(hash)
	// Output:
	// 1 [] true
	// sha256:dfc8d015d17ad8207da2ea0ce420691ab1df9e6eabc67856c6d3dca1fe9fc252
}

// Validation errors carry a code and the JSON path of the offending value.
func ExampleValidate() {
	env, _ := event.DecodeEnvelope([]byte(`{
	  "event_id": "e-2", "trace_id": "trace-1", "trace_seq": 1,
	  "event_type": "InputObserved", "occurred_at": "2025-12-31T10:00:01Z",
	  "source": {"producer_id": "p", "system": "s"},
	  "actor": {"actor_type": "agent", "actor_id": "a"},
	  "idempotency_key": "input:1",
	  "payload": {"input_id": "deal_size",
	              "source": {"system": "crm", "object_type": "deal", "object_id": "d1"},
	              "facts": [{"key": "auth", "value": {"type": "string", "value": "Bearer abc"}}]}
	}`))
	verr := event.Validate(env, event.Options{})
	fmt.Println(verr.Code, verr.Path)
	// Output:
	// DG_ERR_PII_POLICY_VIOLATION $.payload.facts[0].value.value
}

// The canonical payload dialect: sorted keys, no whitespace, raw UTF-8,
// -0 written as 0, integers of any size kept.
func ExampleCanonicalJSON() {
	v, _ := event.DecodeValue([]byte(`{"b": "<é>", "a": [-0, 123456789012345678901234567890]}`))
	out, _ := event.CanonicalJSON(v)
	fmt.Println(string(out))
	_, err := event.CanonicalJSON(map[string]any{"price": 9.99})
	fmt.Println(err)
	// Output:
	// {"a":[0,123456789012345678901234567890],"b":"<é>"}
	// DG_ERR_SCHEMA_VIOLATION: $.price: floats are not allowed in payloads; send decimals as strings
}

// A tenant's hash chain starts from its genesis value and links each
// event's hash in log_seq order.
func ExampleNextChainHash() {
	prev := event.ChainGenesis("t1")
	fmt.Println(prev)
	fmt.Println(event.NextChainHash(prev, "sha256:2cc75700486c1356630a7b9060130ce5197947f368611a71d78c67fe94685a71"))
	// Output:
	// sha256:300644e7853f952c81b593c0b026ddfe7e47ee79f83d73218748424111619663
	// sha256:2f3f2ee843f5165305466fdbe86e08c981ffd7fb84ef2562a4c25235160c938e
}
