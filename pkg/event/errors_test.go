package event

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorFormatting(t *testing.T) {
	e := &Error{Code: CodeSchemaViolation, Path: "$.payload.title", Message: "title must be a non-empty string"}
	if got := e.Error(); got != "DG_ERR_SCHEMA_VIOLATION: $.payload.title: title must be a non-empty string" {
		t.Errorf("Error() = %q", got)
	}
	e.Path = ""
	if got := e.Error(); got != "DG_ERR_SCHEMA_VIOLATION: title must be a non-empty string" {
		t.Errorf("Error() without path = %q", got)
	}
}

func TestCodeNames(t *testing.T) {
	want := map[Code]string{
		CodeInvalidArgument: "invalid_argument", CodeSchemaViolation: "schema_violation",
		CodePIIPolicyViolation: "pii_policy_violation", CodeIdempotencyConflict: "idempotency_conflict",
		CodeEventSequenceInvalid: "event_sequence_invalid", CodeConflict: "conflict",
		CodeNotFound: "not_found", CodeProjectionOutOfDate: "projection_out_of_date", CodeStorage: "storage",
	}
	for c, name := range want {
		if c.Name() != name {
			t.Errorf("%s.Name() = %s, want %s", c, c.Name(), name)
		}
		if string(c) != "DG_ERR_"+strings.ToUpper(name) {
			t.Errorf("%s does not spell DG_ERR_%s", c, strings.ToUpper(name))
		}
	}
}

func TestErrorMatching(t *testing.T) {
	wrapped := fmt.Errorf("append: %w", &Error{Code: CodeConflict, Path: "$", Message: "finished"})
	if !errors.Is(wrapped, &Error{Code: CodeConflict}) {
		t.Error("errors.Is by code failed")
	}
	if errors.Is(wrapped, &Error{Code: CodeNotFound}) {
		t.Error("errors.Is matched another code")
	}
	if c, ok := CodeOf(wrapped); !ok || c != CodeConflict {
		t.Errorf("CodeOf = %s %v", c, ok)
	}
	if _, ok := CodeOf(errors.New("plain")); ok {
		t.Error("CodeOf found a code in a plain error")
	}
}
