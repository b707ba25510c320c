package seed

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
)

// Dataset names.
const (
	// ReleaseDemo is the only dataset: three renewal traces (an approved
	// precedent, a rejected renewal under incident review, a live
	// exception awaiting review) plus one exception close to its deadline.
	ReleaseDemo = "release-demo"
	// Profile is the seed profile the report names (the reference's).
	Profile = "phase10_release_demo"
	// DefaultTenant is where release-demo goes without --tenant.
	DefaultTenant = "release-demo"
)

// Datasets lists the dataset names dg seed knows.
func Datasets() []string { return []string{ReleaseDemo} }

// Trace ids of the dataset.
const (
	PrecedentTrace = "trace-precedent-renewal-001"
	IncidentTrace  = "trace-incident-review-003"
	LiveTrace      = "trace-live-renewal-002"
	AtRiskTrace    = "trace-quote-review-004"
)

// Workflow ids the first refresh creates.
const (
	PrecedentWorkflow = PrecedentTrace + ":exception:ex-precedent-renewal-001"
	IncidentException = IncidentTrace + ":exception:ex-incident-review-003"
	IncidentWorkflow  = IncidentTrace + ":trace_review:incident_triage"
	LiveWorkflow      = LiveTrace + ":exception:ex-live-renewal-002"
	AtRiskWorkflow    = AtRiskTrace + ":exception:ex-quote-review-004"
)

// The reference dataset's times are fixed literals around 2026-03-07; dg
// keeps their spacing but moves them so that the reference's "seeding
// time" (anchor) becomes the actual seeding time. With the anchor two
// hours after the live exception's 4 h SLA ran out, both open reviews are
// overdue on first load, whatever the date.
var anchor = time.Date(2026, 3, 7, 16, 0, 0, 0, time.UTC)

// refTime is a reference literal time (2026-03-DDTHH:MM:00Z).
func refTime(day, hour, minute int) time.Time {
	return time.Date(2026, 3, day, hour, minute, 0, 0, time.UTC)
}

// spec is one event of the dataset before the times are placed.
type spec struct {
	trace    string
	typ      string
	at       time.Time // reference time; shifted by (seed time - anchor)
	producer string    // producer/subsystem; "" is release-demo/seed
	causedBy int       // trace_seq of the causing event, -1 for none
	payload  func(asOf string) map[string]any
}

var snakeRe = regexp.MustCompile(`([a-z0-9])([A-Z])`)

func snake(t string) string { return strings.ToLower(snakeRe.ReplaceAllString(t, "${1}_${2}")) }

func num(n int64) json.Number { return json.Number(fmt.Sprint(n)) }

func numFact(asOf, key string, v int64) map[string]any {
	return map[string]any{"as_of": asOf, "key": key, "value": map[string]any{"type": "number", "value": num(v)}}
}

func strFact(asOf, key, v string) map[string]any {
	return map[string]any{"as_of": asOf, "key": key, "value": map[string]any{"type": "string", "value": v}}
}

func entity(id, typ, system string) map[string]any {
	return map[string]any{"entity_id": id, "entity_type": typ, "system": system}
}

func policy() map[string]any {
	return map[string]any{"policy_id": "discount-cap", "policy_version": "2026.03"}
}

func locators(ls ...string) []any {
	out := make([]any, len(ls))
	for k, l := range ls {
		out[k] = map[string]any{"locator": l}
	}
	return out
}

func started(title, account string) func(string) map[string]any {
	return func(string) map[string]any {
		return map[string]any{"primary_entity": entity(account, "account", "crm"), "title": title, "workflow": "revenue_exception"}
	}
}

func input(id, oppty string, discount, acv int64) func(string) map[string]any {
	return func(asOf string) map[string]any {
		return map[string]any{
			"facts": []any{numFact(asOf, "requested_discount_pct", discount), numFact(asOf, "annual_contract_value_usd", acv),
				strFact(asOf, "sales_stage", "renewal")},
			"input_id": id,
			"source":   map[string]any{"object_id": oppty, "object_type": "opportunity", "system": "crm"},
		}
	}
}

func evaluated(input, summary string) func(string) map[string]any {
	return func(string) map[string]any {
		return map[string]any{"decision": "require_exception", "explanation": map[string]any{"summary": summary},
			"inputs": []any{input}, "policy": policy(), "violations": []any{map[string]any{"code": "discount_threshold"}}}
	}
}

func exception(id, reason string, evidence ...string) func(string) map[string]any {
	return func(string) map[string]any {
		return map[string]any{"evidence": locators(evidence...), "exception_id": id, "policy": policy(), "reason": reason}
	}
}

func fixed(p map[string]any) func(string) map[string]any {
	return func(string) map[string]any { return p }
}

// specs is the dataset in append order: the reference's 22 events, then
// the three events of the at-risk trace.
func specs() []spec {
	return []spec{
		// trace-precedent-renewal-001: an approved precedent, finished.
		{PrecedentTrace, "TraceStarted", refTime(6, 9, 0), "", -1, started("Approved renewal precedent for Acme Platform", "acct-acme-platform")},
		{PrecedentTrace, "InputObserved", refTime(6, 9, 1), "", -1, input("input:revops:precedent:001", "oppty-acme-renewal-2026-001", 18, 540000)},
		{PrecedentTrace, "EntityObserved", refTime(6, 9, 2), "", -1, func(asOf string) map[string]any {
			return map[string]any{"entity": entity("contract-acme-multi-year", "contract", "billing"),
				"facts": []any{numFact(asOf, "term_months", 36), strFact(asOf, "segment", "enterprise")}, "role": "related"}
		}},
		{PrecedentTrace, "PolicyEvaluated", refTime(6, 9, 3), "policy-engine/policy", 1, evaluated("input:revops:precedent:001",
			"Discount exceeds standard renewal cap but strategic value is high.")},
		{PrecedentTrace, "ExceptionRequested", refTime(6, 9, 4), "policy-engine/policy", 3, exception("ex-precedent-renewal-001",
			"Strategic renewal needed finance approval above the standard cap.",
			"crm://opportunity/oppty-acme-renewal-2026-001", "policy://discount-cap/2026.03#threshold")},
		{PrecedentTrace, "ApprovalRecorded", refTime(6, 9, 6), "finance-review/workflow", 4, fixed(map[string]any{
			"approval_id": "approval:precedent:001", "approver": map[string]any{"actor_id": "finance-maya", "actor_type": "person"},
			"decision": "approved", "evidence": locators("review://finance/acme-renewal-001"),
			"reason":  "Renewal is strategic and margin floor remains acceptable.",
			"subject": map[string]any{"subject_id": "ex-precedent-renewal-001", "subject_type": "exception"}})},
		{PrecedentTrace, "ActionProposed", refTime(6, 9, 7), "", 5, fixed(map[string]any{
			"action_id": "action:precedent:001", "action_type": "update",
			"changes": []any{map[string]any{"new_value": map[string]any{"type": "number", "value": num(18)},
				"old_value": map[string]any{"type": "number", "value": num(12)}, "path": "discount_pct"}},
			"target_entity": entity("oppty-acme-renewal-2026-001", "opportunity", "crm"), "target_system": "crm"})},
		{PrecedentTrace, "ActionCommitted", refTime(6, 9, 8), "", 6, fixed(map[string]any{
			"action_id": "action:precedent:001", "external_reference": "crm-sync-2001", "status": "success"})},
		{PrecedentTrace, "TraceFinished", refTime(6, 9, 9), "", 7, fixed(map[string]any{
			"outcome": "success", "summary": "Acme renewal approved with finance exception."})},

		// trace-incident-review-003: a rejected renewal under incident review, finished.
		{IncidentTrace, "TraceStarted", refTime(7, 8, 30), "", -1, started("Rejected renewal review for Delta Logistics", "acct-delta-logistics")},
		{IncidentTrace, "InputObserved", refTime(7, 8, 31), "", -1, input("input:revops:incident:003", "oppty-delta-renewal-2026-003", 26, 110000)},
		{IncidentTrace, "PolicyEvaluated", refTime(7, 8, 32), "policy-engine/policy", 1, evaluated("input:revops:incident:003",
			"Requested discount exceeds guardrail and precedent confidence is weak.")},
		{IncidentTrace, "ExceptionRequested", refTime(7, 8, 33), "policy-engine/policy", 2, exception("ex-incident-review-003",
			"Sales requested a discount above policy for a price-sensitive renewal.", "crm://opportunity/oppty-delta-renewal-2026-003")},
		{IncidentTrace, "ApprovalRecorded", refTime(7, 8, 36), "finance-review/workflow", 3, fixed(map[string]any{
			"approval_id": "approval:incident:003", "approver": map[string]any{"actor_id": "finance-owen", "actor_type": "person"},
			"decision": "rejected", "reason": "Margin would fall below the approved floor for this account.",
			"subject": map[string]any{"subject_id": "ex-incident-review-003", "subject_type": "exception"}})},
		{IncidentTrace, "WorkflowReviewRequested", refTime(7, 8, 37), "operator-console/workflow", 4, fixed(map[string]any{
			"assignee": map[string]any{"account_id": nil, "role": "admin"}, "priority": "high",
			"reason": "Review why the Delta renewal could not be approved and capture operator guidance.",
			"simulation": map[string]any{"current_outcome": "failure", "precedent_trace_ids": []any{PrecedentTrace},
				"risk_signals": []any{"rejected_exception", "high_discount"}},
			"sla_hours": num(6), "subject": map[string]any{"subject_id": "incident_triage", "subject_type": "trace_review"},
			"template_id": "incident_triage", "title": "Incident review for Delta Logistics rejection", "workflow_kind": "incident_review"})},
		{IncidentTrace, "TraceFinished", refTime(7, 8, 38), "", 5, fixed(map[string]any{
			"outcome": "failure", "summary": "Delta renewal rejected after finance review."})},

		// trace-live-renewal-002: a live exception awaiting review (not finished).
		{LiveTrace, "TraceStarted", refTime(7, 10, 0), "", -1, started("Live renewal exception review for Acme Platform", "acct-acme-platform")},
		{LiveTrace, "InputObserved", refTime(7, 10, 1), "", -1, input("input:revops:live:002", "oppty-acme-renewal-2026-002", 21, 620000)},
		{LiveTrace, "EntityObserved", refTime(7, 10, 2), "", -1, func(asOf string) map[string]any {
			return map[string]any{"entity": entity("quote-acme-renewal-2026-002", "quote", "quoting"),
				"facts": []any{strFact(asOf, "quote_status", "needs_exception"), strFact(asOf, "currency", "USD")}, "role": "related"}
		}},
		{LiveTrace, "PolicyEvaluated", refTime(7, 10, 3), "policy-engine/policy", 1, evaluated("input:revops:live:002",
			"Discount is above the standard cap but historical enterprise renewals suggest approval is possible.")},
		{LiveTrace, "ExceptionRequested", refTime(7, 10, 4), "policy-engine/policy", 3, exception("ex-live-renewal-002",
			"Strategic enterprise renewal requires manual review above the cap.",
			"crm://opportunity/oppty-acme-renewal-2026-002", "quote://quote-acme-renewal-2026-002")},
		{LiveTrace, "PrecedentCited", refTime(7, 10, 5), "precedent-engine/query", 4, fixed(map[string]any{
			"cited_trace_id": PrecedentTrace, "reason": "Matches strategic renewal posture with a similar approved exception.",
			"similarity_score": "0.92"})},

		// trace-quote-review-004 (dg's addition): an exception requested
		// 3 h 40 min before the seeding time, so its 4 h SLA ends 20 min
		// after it: open, not overdue, and flagged as at risk.
		{AtRiskTrace, "TraceStarted", refTime(7, 12, 18), "", -1, started("Quote discount review for Northwind Retail", "acct-northwind-retail")},
		{AtRiskTrace, "PolicyEvaluated", refTime(7, 12, 19), "policy-engine/policy", -1, evaluated("input:revops:quote:004",
			"Quote discount is just above the standard cap for a mid-market renewal.")},
		{AtRiskTrace, "ExceptionRequested", refTime(7, 12, 20), "policy-engine/policy", 1, exception("ex-quote-review-004",
			"Mid-market renewal asks for two points above the cap.", "quote://quote-northwind-2026-004")},
	}
}

// DatasetEvents is how many events the reference dataset has; Envelopes
// returns them plus dg's at-risk trace.
const (
	DatasetEvents = 22
	TotalEvents   = 25
)

// Envelopes returns the dataset's envelopes in append order with their
// times placed relative to at (UTC, whole seconds).
func Envelopes(at time.Time) []*event.Envelope {
	shift := at.UTC().Truncate(time.Second).Sub(anchor)
	asOf := formatTime(refTime(7, 10, 0).Add(shift))
	ss := specs()
	out := make([]*event.Envelope, 0, len(ss))
	seq := map[string]int64{}
	ids := map[string][]string{}
	for _, s := range ss {
		n := seq[s.trace]
		seq[s.trace] = n + 1
		id := fmt.Sprintf("%s-%s-%d", s.trace, snake(s.typ), n)
		ids[s.trace] = append(ids[s.trace], id)
		producer, subsystem := "release-demo", "seed"
		if s.producer != "" {
			producer, subsystem, _ = strings.Cut(s.producer, "/")
		}
		corr := "phase10:" + s.trace
		var cause *string
		if s.causedBy >= 0 {
			c := ids[s.trace][s.causedBy]
			cause = &c
		}
		sub := subsystem
		out = append(out, &event.Envelope{
			EventID:          id,
			TraceID:          s.trace,
			TraceSeq:         n,
			EventType:        s.typ,
			OccurredAt:       formatTime(s.at.Add(shift)),
			Source:           event.Source{ProducerID: producer, System: "decisiongraph", Subsystem: &sub},
			Actor:            event.Actor{ActorType: "system", ActorID: "phase10-seeder"},
			CorrelationID:    &corr,
			CausationEventID: cause,
			IdempotencyKey:   fmt.Sprintf("%s:%s:%d", strings.ToLower(s.typ), s.trace, n),
			SchemaVersion:    1,
			Payload:          s.payload(asOf),
			Tags:             []string{"phase10", "release-demo"},
		})
	}
	return out
}

// seedTimeOf recovers the seeding time from the stored occurred_at of the
// dataset's first event (the precedent's TraceStarted).
func seedTimeOf(firstOccurredAt string) (time.Time, error) {
	t, err := event.ParseOccurredAt(firstOccurredAt)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the seeding time back from %q: %w", firstOccurredAt, err)
	}
	return t.Add(anchor.Sub(refTime(6, 9, 0))), nil
}

// formatTime renders an occurred_at literal: RFC 3339, UTC, whole seconds.
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
