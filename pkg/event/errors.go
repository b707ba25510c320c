package event

import (
	"errors"
	"strings"
)

// Code is a DecisionGraph error category (events spec §4). The code is the
// contract; message text is not.
type Code string

// The error codes of the reference core. Callers branch on these; the HTTP
// layer maps them to statuses and to the lower-case names of Code.Name.
const (
	CodeInvalidArgument      Code = "DG_ERR_INVALID_ARGUMENT"
	CodeSchemaViolation      Code = "DG_ERR_SCHEMA_VIOLATION"
	CodePIIPolicyViolation   Code = "DG_ERR_PII_POLICY_VIOLATION"
	CodeIdempotencyConflict  Code = "DG_ERR_IDEMPOTENCY_CONFLICT"
	CodeEventSequenceInvalid Code = "DG_ERR_EVENT_SEQUENCE_INVALID"
	CodeConflict             Code = "DG_ERR_CONFLICT"
	CodeNotFound             Code = "DG_ERR_NOT_FOUND"
	CodeProjectionOutOfDate  Code = "DG_ERR_PROJECTION_OUT_OF_DATE"
	CodeStorage              Code = "DG_ERR_STORAGE"
)

// Name is the code as the HTTP API spells it: lower case without the
// DG_ERR_ prefix, e.g. "schema_violation".
func (c Code) Name() string {
	return strings.ToLower(strings.TrimPrefix(string(c), "DG_ERR_"))
}

// Error is a validation or domain error with its category and the JSON path
// of the offending value ("$" is the whole document, "$.payload.facts[0]" a
// nested value; empty when no single value is at fault).
type Error struct {
	Code    Code
	Path    string
	Message string
	// Details carries machine-readable facts for API error bodies, e.g.
	// {"expected_trace_seq": 3} or {"mismatches": ["actor","tags"]}. May be nil.
	Details map[string]any
}

// Error renders "CODE: path: message" (path omitted when empty).
func (e *Error) Error() string {
	if e.Path == "" {
		return string(e.Code) + ": " + e.Message
	}
	return string(e.Code) + ": " + e.Path + ": " + e.Message
}

// Is lets errors.Is(err, &Error{Code: c}) match any *Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Path == "" && t.Message == ""
}

// CodeOf returns the code of the first *Error in err's chain.
func CodeOf(err error) (Code, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	return "", false
}

func newError(code Code, path, msg string) *Error {
	return &Error{Code: code, Path: path, Message: msg}
}
