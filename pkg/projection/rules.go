package projection

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/decisiongraph/dg/pkg/event"
)

// Node and edge types of the context graph (events spec §12.2).
const (
	nodeTrace     = "trace"
	nodeEntity    = "entity"
	nodeInput     = "input"
	nodePolicy    = "policy"
	nodeException = "exception"
	nodeAction    = "action"
	nodeActor     = "actor"

	edgeInvolvesEntity     = "trace_involves_entity"
	edgeObservedInput      = "trace_observed_input"
	edgeEvaluatedPolicy    = "trace_evaluated_policy"
	edgeRequestedException = "trace_requested_exception"
	edgeExceptionApproved  = "exception_approved_by"
	edgeCitedPrecedent     = "trace_cited_precedent"
	edgeProposedAction     = "trace_proposed_action"
	edgeCommittedAction    = "trace_committed_action"
	edgeActionTargets      = "action_targets_entity"
)

// TraceEvents returns the events of one trace that precede (and include)
// the event being projected, in trace_seq order. Only TraceStarted,
// PolicyEvaluated and ExceptionRequested events are needed; a source may
// return just those.
type TraceEvents func(traceID string) ([]event.StoredEvent, error)

// StepError is an event that could not be projected. Err is an
// *event.Error with the reference's code (conflict for a payload-hash
// mismatch, event_sequence_invalid for a trace_seq gap, schema_violation
// for missing policy data).
type StepError struct {
	EventID string
	LogSeq  int64
	TraceID string
	Err     error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("project event %s (log_seq %d, trace %s): %v", e.EventID, e.LogSeq, e.TraceID, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Projector holds the only state the rules need between events: the next
// expected trace_seq of every trace seen so far. It is not safe for
// concurrent use.
type Projector struct {
	set  Set
	next map[string]int64
}

// NewProjector returns a projector for the given projections, starting from
// an empty log (every trace expects trace_seq 0).
func NewProjector(set Set) *Projector {
	return &Projector{set: set, next: map[string]int64{}}
}

// Known reports whether the projector already tracks traceID.
func (p *Projector) Known(traceID string) bool {
	_, ok := p.next[traceID]
	return ok
}

// SetNext records the trace_seq the next event of traceID must carry. It
// is how a projector resuming from a checkpoint learns traces projected
// before it started.
func (p *Projector) SetNext(traceID string, next int64) { p.next[traceID] = next }

// Step checks one stored event (payload hash, trace_seq) and returns the
// row changes it makes to the selected projections. Events must be given in
// log_seq order. On error the projector's state is unchanged.
func (p *Projector) Step(ev *event.StoredEvent, traceEvents TraceEvents) (Changes, error) {
	hash, err := event.PayloadHash(ev.Payload)
	return p.stepHashed(ev, traceEvents, hash, err, nil)
}

// early is what can be worked out for one event before the events ahead
// of it are projected: its payload hash and, for an event whose rules do
// not read the trace's earlier events (all but TraceFinished), its rule
// output. Memory.Project computes it on every core; stepHashed only uses
// it in the order and at the point a plain Step would compute it.
type early struct {
	hash    string
	hashErr error
	ruled   bool // ch and err are rules' answer
	ch      Changes
	err     error
}

// computeEarly fills e for ev under the projection set set. With ownLog
// (see Memory.ownLog) the stored payload hash is taken as computed.
func computeEarly(e *early, ev *event.StoredEvent, set Set, ownLog bool) {
	if ownLog {
		e.hash = ev.PayloadHash
	} else {
		e.hash, e.hashErr = event.PayloadHash(ev.Payload)
	}
	if ev.EventType != event.TypeTraceFinished {
		// rules calls traceEvents only for a TraceFinished.
		e.ch, e.err = rules(ev, set, nil)
		e.ruled = true
	}
}

// stepHashed is Step given the result of event.PayloadHash(ev.Payload),
// computed beforehand (Memory.Project hashes a run of events on every core
// ahead of the sequential rules), and, when pre is not nil and ruled,
// rules' answer for ev, also computed beforehand.
func (p *Projector) stepHashed(ev *event.StoredEvent, traceEvents TraceEvents, hash string, err error, pre *early) (Changes, error) {
	fail := func(code event.Code, format string, args ...any) (Changes, error) {
		return Changes{}, &StepError{EventID: ev.EventID, LogSeq: ev.LogSeq, TraceID: ev.TraceID,
			Err: &event.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
	}
	if err != nil {
		return Changes{}, &StepError{EventID: ev.EventID, LogSeq: ev.LogSeq, TraceID: ev.TraceID, Err: err}
	}
	if hash != ev.PayloadHash {
		return fail(event.CodeConflict, "payload hash mismatch: stored %s, payload hashes to %s; the stored event was altered", ev.PayloadHash, hash)
	}
	expected := p.next[ev.TraceID]
	if ev.TraceSeq != expected {
		return fail(event.CodeEventSequenceInvalid, "trace_seq %d, expected %d", ev.TraceSeq, expected)
	}
	var ch Changes
	if pre != nil && pre.ruled {
		ch, err = pre.ch, pre.err
	} else {
		ch, err = rules(ev, p.set, traceEvents)
	}
	if err != nil {
		return Changes{}, &StepError{EventID: ev.EventID, LogSeq: ev.LogSeq, TraceID: ev.TraceID, Err: err}
	}
	p.next[ev.TraceID] = expected + 1
	return ch, nil
}

// rules is the pure emission table of events spec §12.2-12.6.
func rules(ev *event.StoredEvent, set Set, traceEvents TraceEvents) (Changes, error) {
	var ch Changes
	pl := ev.Payload
	t := nodeTrace + ":" + ev.TraceID
	node := func(id, typ string) {
		ch.Nodes = append(ch.Nodes, Node{NodeID: id, NodeType: typ, TraceID: ev.TraceID, LogSeq: ev.LogSeq, CreatedAt: ev.OccurredAt})
	}
	edge := func(typ, from, to string) {
		ch.Nodes = append(ch.Nodes, placeholder(from, ev), placeholder(to, ev))
		ch.Edges = append(ch.Edges, Edge{
			EdgeID: typ + ":" + from + ":" + to + ":" + ev.EventID, EdgeType: typ,
			FromNodeID: from, ToNodeID: to, TraceID: ev.TraceID, LogSeq: ev.LogSeq, CreatedAt: ev.OccurredAt,
		})
	}
	graph := set&SetContextGraph != 0

	switch ev.EventType {
	case event.TypeTraceStarted:
		pe, hasPE := pl["primary_entity"]
		if graph {
			node(t, nodeTrace)
			node(nodeActor+":"+ev.Actor.ActorType+":"+ev.Actor.ActorID, nodeActor)
			if hasPE {
				m := asMap(pe)
				ent := nodeEntity + ":" + getStr(m, "entity_type", "unknown") + ":" + getStr(m, "entity_id", "unknown")
				node(ent, nodeEntity)
				edge(edgeInvolvesEntity, t, ent)
			}
		}
		if set&SetTraceSummary != 0 {
			m := asMap(pe)
			ch.StartSummary = &Summary{
				TraceID: ev.TraceID, Workflow: getStr(pl, "workflow", ""), Title: getStr(pl, "title", ""),
				PrimaryEntityType: optStr(m, "entity_type"), PrimaryEntityID: optStr(m, "entity_id"),
				StartedAt: ev.OccurredAt, EventCount: 1, LastLogSeq: ev.LogSeq,
			}
		}
	case event.TypeInputObserved:
		if graph {
			in := nodeInput + ":" + getStr(pl, "input_id", ev.EventID)
			node(in, nodeInput)
			edge(edgeObservedInput, t, in)
		}
	case event.TypeEntityObserved:
		if graph {
			m := asMap(pl["entity"])
			ent := nodeEntity + ":" + getStr(m, "entity_type", "unknown") + ":" + getStr(m, "entity_id", "unknown")
			node(ent, nodeEntity)
			edge(edgeInvolvesEntity, t, ent)
		}
	case event.TypePolicyEvaluated:
		pol := asMap(pl["policy"])
		if graph {
			var id string
			if v, ok := pol["policy_id"]; !ok || v == nil {
				id = "unknown:" + ev.EventID
			} else {
				id = pyStr(v)
				if ver := pol["policy_version"]; truthy(ver) {
					id += ":" + pyStr(ver)
				}
			}
			pn := nodePolicy + ":" + id
			node(pn, nodePolicy)
			edge(edgeEvaluatedPolicy, t, pn)
		}
		if set&SetPrecedentIndex != 0 {
			pid, ver := nonEmpty(pol, "policy_id"), nonEmpty(pol, "policy_version")
			if pid == "" || ver == "" {
				return Changes{}, &event.Error{Code: event.CodeSchemaViolation, Path: "$.payload.policy",
					Message: "PolicyEvaluated needs a non-empty policy.policy_id and policy.policy_version"}
			}
			ch.PolicyEval = &PolicyEval{
				IndexID: ev.TraceID + ":" + pid + ":" + ver + ":" + ev.EventID,
				TraceID: ev.TraceID, PolicyID: pid, PolicyVersion: ver, LogSeq: ev.LogSeq, CreatedAt: ev.OccurredAt,
			}
		}
	case event.TypeExceptionRequested:
		if graph {
			ex := nodeException + ":" + getStr(pl, "exception_id", ev.EventID)
			node(ex, nodeException)
			edge(edgeRequestedException, t, ex)
		}
	case event.TypeApprovalRecorded:
		if graph {
			ap := asMap(pl["approver"])
			actor := nodeActor + ":" + getStr(ap, "actor_type", "person") + ":" + getStr(ap, "actor_id", "unknown")
			node(actor, nodeActor)
			subj := asMap(pl["subject"])
			if st, ok := subj["subject_type"].(string); ok && st == "exception" && truthy(subj["subject_id"]) {
				edge(edgeExceptionApproved, nodeException+":"+pyStr(subj["subject_id"]), actor)
			}
		}
	case event.TypePrecedentCited:
		if graph && truthy(pl["cited_trace_id"]) {
			edge(edgeCitedPrecedent, t, nodeTrace+":"+pyStr(pl["cited_trace_id"]))
		}
	case event.TypeActionProposed:
		if graph {
			an := nodeAction + ":" + getStr(pl, "action_id", ev.EventID)
			node(an, nodeAction)
			edge(edgeProposedAction, t, an)
			if te := pl["target_entity"]; truthy(te) {
				m := asMap(te)
				edge(edgeActionTargets, an, nodeEntity+":"+getStr(m, "entity_type", "unknown")+":"+getStr(m, "entity_id", "unknown"))
			}
		}
	case event.TypeActionCommitted:
		if graph && truthy(pl["action_id"]) {
			edge(edgeCommittedAction, t, nodeAction+":"+pyStr(pl["action_id"]))
		}
	case event.TypeTraceFinished:
		if set&SetTraceSummary != 0 {
			ch.FinishSummary = &Finish{TraceID: ev.TraceID, Outcome: getStr(pl, "outcome", "success"), FinishedAt: ev.OccurredAt, LogSeq: ev.LogSeq}
		}
		if set&SetPrecedentIndex != 0 {
			evs, err := traceEvents(ev.TraceID)
			if err != nil {
				return Changes{}, fmt.Errorf("read events of trace %s for its precedent rows: %w", ev.TraceID, err)
			}
			rows, err := PrecedentRows(evs)
			if err != nil {
				return Changes{}, err
			}
			ch.Precedents = &PrecedentSet{TraceID: ev.TraceID, Rows: rows}
		}
	}
	// Other types (WorkflowReviewRequested) add no rows (design §7).
	return ch, nil
}

// PrecedentRows builds the precedent-index rows of a finished trace from its
// events in trace_seq order (events spec §12.6): one row per
// PolicyEvaluated and per ExceptionRequested, each carrying the primary
// entity of the trace's first TraceStarted.
func PrecedentRows(events []event.StoredEvent) ([]Precedent, error) {
	var peType, peSystem, peID *string
	started := false
	var rows []Precedent
	for i := range events {
		ev := &events[i]
		switch ev.EventType {
		case event.TypeTraceStarted:
			if started {
				continue
			}
			started = true
			m := asMap(ev.Payload["primary_entity"])
			peType, peSystem, peID = optStr(m, "entity_type"), optStr(m, "system"), optStr(m, "entity_id")
		case event.TypePolicyEvaluated, event.TypeExceptionRequested:
			pol := asMap(ev.Payload["policy"])
			pid, ver := nonEmpty(pol, "policy_id"), nonEmpty(pol, "policy_version")
			if pid == "" || ver == "" {
				return nil, &event.Error{Code: event.CodeSchemaViolation, Path: "$.payload.policy",
					Message: fmt.Sprintf("%s %s needs a non-empty policy.policy_id and policy.policy_version", ev.EventType, ev.EventID)}
			}
			row := Precedent{SourceEventID: ev.EventID, LogSeq: ev.LogSeq, TraceID: ev.TraceID, PolicyID: pid, PolicyVersion: ver}
			if ev.EventType == event.TypeExceptionRequested {
				ex := nonEmpty(ev.Payload, "exception_id")
				if ex == "" {
					return nil, &event.Error{Code: event.CodeSchemaViolation, Path: "$.payload.exception_id",
						Message: fmt.Sprintf("ExceptionRequested %s needs a non-empty exception_id", ev.EventID)}
				}
				row.ExceptionID = &ex
			}
			rows = append(rows, row)
		}
	}
	for i := range rows {
		rows[i].PrimaryEntityType, rows[i].PrimaryEntitySystem, rows[i].PrimaryEntityID = peType, peSystem, peID
	}
	return rows, nil
}

// placeholder is the node an edge endpoint gets when it does not exist yet
// (events spec §12.3). Trace placeholders carry the referenced trace's id.
func placeholder(id string, ev *event.StoredEvent) Node {
	typ, rest, ok := strings.Cut(id, ":")
	if !ok {
		typ = "unknown"
	}
	traceID := ev.TraceID
	if ok && typ == nodeTrace {
		traceID = rest
	}
	return Node{NodeID: id, NodeType: typ, TraceID: traceID, LogSeq: ev.LogSeq, CreatedAt: ev.OccurredAt}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// getStr is Python's str(d.get(k, def)) as the reference's f-strings use it.
func getStr(m map[string]any, k, def string) string {
	v, ok := m[k]
	if !ok {
		return def
	}
	return pyStr(v)
}

// optStr is d.get(k) for a nullable text column: nil when absent or null.
func optStr(m map[string]any, k string) *string {
	v, ok := m[k]
	if !ok || v == nil {
		return nil
	}
	s := pyStr(v)
	return &s
}

func nonEmpty(m map[string]any, k string) string {
	v := m[k]
	if !truthy(v) {
		return ""
	}
	return pyStr(v)
}

// truthy is Python truthiness for decoded JSON values.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case json.Number:
		return strings.Trim(string(x), "-0") != ""
	case map[string]any:
		return len(x) > 0
	case []any:
		return len(x) > 0
	}
	return true
}

// pyStr renders a decoded JSON value the way Python's str() would. Only
// strings occur where validation has run; the rest keeps ids stable for
// logs that bypassed it.
func pyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return string(x)
	}
	b, err := event.CanonicalJSON(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
