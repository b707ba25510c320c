package workflow_test

import (
	"strings"
	"testing"

	"github.com/decisiongraph/dg/pkg/workflow"
)

// The whole transition table of A.7.2 (plus claim and release): for every
// status and action, either the resulting status or the refusal message.
func TestTransitionTable(t *testing.T) {
	const wid = "tr-1:exception:ex-1"
	const refused = ""
	statuses := []string{"requested", "in_review", "changes_requested", "escalated", "approved", "rejected", "overridden"}
	actions := []string{"approve", "reject", "request_change", "comment", "reassign", "escalate", "override", "claim", "release"}
	// want[status] lists the outcome per action, in the order of actions.
	want := map[string][]string{
		"requested":         {"approved", "rejected", "changes_requested", "requested", "requested", "escalated", "overridden", "in_review", refused},
		"in_review":         {"approved", "rejected", "changes_requested", "in_review", "in_review", "escalated", "overridden", refused, "requested"},
		"changes_requested": {"approved", "rejected", "changes_requested", "changes_requested", "changes_requested", "escalated", "overridden", "in_review", refused},
		"escalated":         {"approved", "rejected", "changes_requested", "escalated", "escalated", refused, "overridden", "in_review", refused},
		"approved":          {refused, refused, refused, "approved", refused, refused, refused, refused, refused},
		"rejected":          {refused, refused, refused, "rejected", refused, refused, refused, refused, refused},
		"overridden":        {refused, refused, refused, "overridden", refused, refused, refused, refused, refused},
	}
	for _, st := range statuses {
		for k, a := range actions {
			err := workflow.CheckTransition(wid, workflow.KindExceptionReview, st, a)
			exp := want[st][k]
			if exp == refused {
				if err == nil {
					t.Errorf("%s on %s: allowed, want refused", a, st)
					continue
				}
				if workflow.ErrorCode(err) != workflow.CodeInvalidArgument {
					t.Errorf("%s on %s: code %q, want invalid_argument", a, st, workflow.ErrorCode(err))
				}
				var msg string
				switch {
				case a == "escalate" && st == "escalated":
					msg = "Workflow " + wid + " is already escalated"
				case workflow.IsTerminal(st):
					msg = "Workflow " + wid + " is already " + st
				case a == "claim":
					msg = "is already in review"
				case a == "release":
					msg = "is not claimed"
				}
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("%s on %s: error %q, want it to contain %q", a, st, err, msg)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s on %s: refused (%v), want %s", a, st, err, exp)
				continue
			}
			if got := workflow.NextStatus(st, a); got != exp {
				t.Errorf("%s on %s: -> %s, want %s", a, st, got, exp)
			}
		}
	}
}

// Overrides are for exception reviews only (A.7.1 step 4), after the
// escalated and terminal checks.
func TestOverrideOnlyForExceptionReviews(t *testing.T) {
	for _, kind := range []string{workflow.KindIncidentReview, workflow.KindOverrideReview} {
		err := workflow.CheckTransition("w", kind, "requested", "override")
		if err == nil || !strings.Contains(err.Error(), "overrides are only for exception reviews") {
			t.Errorf("override on %s: %v", kind, err)
		}
		if err := workflow.CheckTransition("w", kind, "approved", "override"); err == nil || !strings.Contains(err.Error(), "already approved") {
			t.Errorf("override on approved %s: %v (the terminal check comes first)", kind, err)
		}
	}
}

func TestNormalizeAction(t *testing.T) {
	for in, want := range map[string]string{"APPROVE": "approve", " Request_Change ": "request_change", "claim": "claim"} {
		got, err := workflow.NormalizeAction(in)
		if err != nil || got != want {
			t.Errorf("NormalizeAction(%q) = %q, %v", in, got, err)
		}
	}
	for in, msg := range map[string]string{"": "action is required", "delete": `Unsupported workflow action "delete"`, "export": "not an action"} {
		_, err := workflow.NormalizeAction(in)
		if err == nil || !strings.Contains(err.Error(), msg) || workflow.ErrorCode(err) != "invalid_argument" {
			t.Errorf("NormalizeAction(%q) error %v, want %q", in, err, msg)
		}
	}
}

func TestActionPermissions(t *testing.T) {
	want := map[string]string{
		"approve": "workflow_review", "reject": "workflow_review", "request_change": "workflow_review", "comment": "workflow_review",
		"reassign": "workflow_assign", "claim": "workflow_assign", "release": "workflow_assign",
		"escalate": "workflow_escalate", "override": "workflow_override",
	}
	if len(workflow.ActionPermission) != len(want) {
		t.Fatalf("ActionPermission has %d actions, want %d", len(workflow.ActionPermission), len(want))
	}
	for a, p := range want {
		if workflow.ActionPermission[a] != p {
			t.Errorf("%s needs %q, want %q", a, workflow.ActionPermission[a], p)
		}
	}
	c := &workflow.Caller{AccountID: "x", Permissions: []string{"workflow_review"}}
	if !c.Can("workflow_review") || c.Can("workflow_assign") {
		t.Error("Can does not follow the permission list")
	}
	if !(&workflow.Caller{Permissions: []string{"*"}}).Can("workflow_override") {
		t.Error("* must grant every permission")
	}
}

func TestOverridePhrase(t *testing.T) {
	if got := workflow.OverridePhrase("trace-42:exception:ex-42"); got != "OVERRIDE TRACE-42:EXCEPTION:EX-42" {
		t.Errorf("OverridePhrase = %q", got)
	}
}
