package event

// The event types dg accepts: the reference core's ten plus the service's
// workflow extension WorkflowReviewRequested (design §7).
const (
	TypeTraceStarted            = "TraceStarted"
	TypeInputObserved           = "InputObserved"
	TypeEntityObserved          = "EntityObserved"
	TypePolicyEvaluated         = "PolicyEvaluated"
	TypeExceptionRequested      = "ExceptionRequested"
	TypeApprovalRecorded        = "ApprovalRecorded"
	TypePrecedentCited          = "PrecedentCited"
	TypeActionProposed          = "ActionProposed"
	TypeActionCommitted         = "ActionCommitted"
	TypeTraceFinished           = "TraceFinished"
	TypeWorkflowReviewRequested = "WorkflowReviewRequested"
)

// Types returns every accepted event type, core types first in the
// reference's order. The slice is fresh on every call.
func Types() []string {
	return []string{
		TypeTraceStarted, TypeInputObserved, TypeEntityObserved, TypePolicyEvaluated,
		TypeExceptionRequested, TypeApprovalRecorded, TypePrecedentCited,
		TypeActionProposed, TypeActionCommitted, TypeTraceFinished,
		TypeWorkflowReviewRequested,
	}
}

// IsKnownType reports whether t is one of the accepted event types
// (case-sensitive).
func IsKnownType(t string) bool {
	_, ok := payloadRules[t]
	return ok
}

// Actor types accepted in actor.actor_type (design §7: validated everywhere).
var actorTypes = []string{"agent", "person", "role", "system"}
