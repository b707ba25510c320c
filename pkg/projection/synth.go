package projection

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/decisiongraph/dg/pkg/event"
)

// SynthOptions shape a synthetic log.
type SynthOptions struct {
	Seed   uint64
	Traces int
	// FirstTrace numbers the first generated trace, so a large log can be
	// generated in chunks that never repeat an id.
	FirstTrace int
	// OpenEvery leaves every n-th trace unfinished (0: 7).
	OpenEvery int
	// Retries re-submits this fraction of envelopes (idempotent retries,
	// which must not add log entries). 0 means none.
	Retries float64
}

var synthTitles = []string{
	"Renewal discount for acct %d",
	"Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e order %d",
	"\u65e5\u672c\u8a9e\u306e\u30bf\u30a4\u30c8\u30eb %d",
	"emoji \U0001F600 and line\u2028sep %d",
	"controls \x01\x1b\t\n quote \" back\\slash %d",
	"del \x7f and nbsp\u00a0 %d",
}

// Synthetic returns a deterministic log of envelopes exercising every
// projection rule: interleaved traces sharing entities, unicode and
// control characters in text, 40-digit integers, open traces, citations of
// earlier and of unknown traces, approvals of exceptions and of actions,
// committed actions never proposed, and (optionally) idempotent retries.
// Append it in order; retries are repeats of earlier envelopes.
func Synthetic(o SynthOptions) []event.Envelope {
	if o.OpenEvery <= 0 {
		o.OpenEvery = 7
	}
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	perTrace := make([][]event.Envelope, o.Traces)
	for i := range perTrace {
		perTrace[i] = synthTrace(r, o, o.FirstTrace+i)
	}
	// Interleave: repeatedly take the next event of a random unfinished
	// trace among a sliding window, so traces overlap in the log.
	out := make([]event.Envelope, 0, o.Traces*10)
	pos := make([]int, o.Traces)
	const window = 8
	lo := 0
	for lo < o.Traces {
		hi := min(lo+window, o.Traces)
		i := lo + r.IntN(hi-lo)
		if pos[i] < len(perTrace[i]) {
			out = append(out, perTrace[i][pos[i]])
			pos[i]++
			if o.Retries > 0 && r.Float64() < o.Retries {
				// A producer retry of an earlier envelope of the same trace.
				out = append(out, perTrace[i][r.IntN(pos[i])])
			}
		}
		for lo < o.Traces && pos[lo] == len(perTrace[lo]) {
			lo++
		}
	}
	return out
}

func synthTraceID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

func synthTrace(r *rand.Rand, o SynthOptions, i int) []event.Envelope {
	traceID := synthTraceID(i)
	producer := "synth_producer"
	var evs []event.Envelope
	add := func(typ string, payload map[string]any) {
		seq := int64(len(evs))
		evs = append(evs, event.Envelope{
			EventID: fmt.Sprintf("%s-e%02d", traceID, seq), TraceID: traceID, TraceSeq: seq, EventType: typ,
			OccurredAt:     fmt.Sprintf("2026-01-%02dT%02d:%02d:%02dZ", 1+i%28, i%24, int(seq)%60, i%60),
			Source:         event.Source{ProducerID: producer, System: "synth"},
			Actor:          event.Actor{ActorType: "agent", ActorID: fmt.Sprintf("agent_%d", i%5)},
			IdempotencyKey: fmt.Sprintf("%s:%d", traceID, seq), SchemaVersion: 1,
			Payload: payload, Tags: []string{},
		})
	}
	acct := fmt.Sprintf("acct:%d", r.IntN(max((o.FirstTrace+o.Traces)/3, 1)))
	big := strings.Repeat("9", 20) + fmt.Sprintf("%020d", r.Uint64()%1e18)
	add(event.TypeTraceStarted, map[string]any{
		"workflow":       []string{"renewal_discount", "deal_approval", "support_escalation"}[i%3],
		"title":          fmt.Sprintf(synthTitles[i%len(synthTitles)], i),
		"primary_entity": map[string]any{"entity_type": "account", "entity_id": acct, "system": "crm"},
	})
	add(event.TypeEntityObserved, map[string]any{
		"entity": map[string]any{"entity_type": "account", "entity_id": acct, "system": "crm"},
		"role":   "primary", "facts": []any{},
	})
	inputID := fmt.Sprintf("input:%d", r.IntN(50))
	add(event.TypeInputObserved, map[string]any{
		"input_id": inputID,
		"source":   map[string]any{"system": "crm", "object_type": "account", "object_id": acct},
		"facts":    []any{map[string]any{"key": "big", "value": map[string]any{"type": "int", "value": big}, "raw": json.Number(big)}},
	})
	policy := map[string]any{"policy_id": fmt.Sprintf("policy_%d", r.IntN(10)), "policy_version": fmt.Sprintf("%d.0", 1+r.IntN(3))}
	add(event.TypePolicyEvaluated, map[string]any{"policy": policy, "inputs": []any{inputID}, "decision": "require_exception"})
	excID := fmt.Sprintf("exc:%d", i)
	if r.IntN(2) == 0 {
		add(event.TypeExceptionRequested, map[string]any{"exception_id": excID, "policy": policy, "reason": "needs an exception \u00e9"})
		add(event.TypeApprovalRecorded, map[string]any{
			"approval_id": fmt.Sprintf("appr:%d", i),
			"subject":     map[string]any{"subject_type": "exception", "subject_id": excID},
			"approver":    map[string]any{"actor_type": "person", "actor_id": fmt.Sprintf("approver_%d", r.IntN(4))},
			"decision":    "approved",
		})
	}
	if i > 0 && r.IntN(3) == 0 {
		add(event.TypePrecedentCited, map[string]any{"cited_trace_id": synthTraceID(r.IntN(i)), "reason": "similar"})
	}
	if r.IntN(5) == 0 {
		add(event.TypePrecedentCited, map[string]any{"cited_trace_id": fmt.Sprintf("unknown-trace-%d", i), "reason": "remembered"})
	}
	actID := fmt.Sprintf("act:%d", i)
	if r.IntN(4) != 0 {
		add(event.TypeActionProposed, map[string]any{
			"action_id": actID, "action_type": "update", "target_system": "crm", "changes": []any{},
			"target_entity": map[string]any{"entity_type": "account", "entity_id": acct},
		})
		if r.IntN(2) == 0 {
			add(event.TypeApprovalRecorded, map[string]any{
				"approval_id": fmt.Sprintf("appr:act:%d", i),
				"subject":     map[string]any{"subject_type": "action", "subject_id": actID},
				"approver":    map[string]any{"actor_type": "role", "actor_id": "finance"},
				"decision":    "approved",
			})
		}
	}
	add(event.TypeActionCommitted, map[string]any{"action_id": actID, "status": "success"})
	if i%o.OpenEvery != o.OpenEvery-1 {
		add(event.TypeTraceFinished, map[string]any{"outcome": []string{"success", "failure", "abandoned"}[r.IntN(3)]})
	}
	return evs
}

// EncodeEventsFile renders envelopes as an event file in the golden fixture
// format ({"events": [...]}, two-space indented like the fixtures), which
// `dg events digest` and event.DecodeEvents read back to the same
// envelopes.
func EncodeEventsFile(envs []event.Envelope) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("{\n  \"events\": [")
	for i := range envs {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := event.EncodeEnvelope(&envs[i])
		if err != nil {
			return nil, fmt.Errorf("encode event %d: %w", i, err)
		}
		buf.WriteString("\n    ")
		if err := json.Indent(&buf, b, "    ", "  "); err != nil {
			return nil, fmt.Errorf("indent event %d: %w", i, err)
		}
	}
	buf.WriteString("\n  ]\n}\n")
	return buf.Bytes(), nil
}
