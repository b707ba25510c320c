package manifest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Severity of a diagnostic.
type Severity string

// Severities. An error makes the manifest invalid; a warning does not.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Diagnostic is one problem found in a manifest. Line and Column are 1-based
// positions in File; both are 0 when the value did not come from the file
// (then File names its origin, e.g. "env DG_SERVER_LISTEN").
type Diagnostic struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Column   int      `json:"column"`
	Path     string   `json:"path"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
	Severity Severity `json:"severity"`
}

// String renders the diagnostic as "file:line:col: path: message", with
// "warning: " before the message of a warning. The hint is not included.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Line, d.Column)
	}
	b.WriteString(": ")
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Diagnostics is every problem found in one manifest, in file order.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool { return ds.Errors() > 0 }

// Errors counts the error diagnostics.
func (ds Diagnostics) Errors() int {
	n := 0
	for _, d := range ds {
		if d.Severity == SeverityError {
			n++
		}
	}
	return n
}

// Warnings counts the warning diagnostics.
func (ds Diagnostics) Warnings() int { return len(ds) - ds.Errors() }

// sort orders diagnostics by file position; diagnostics from the
// environment (no line) come after those from the file.
func (ds Diagnostics) sort() {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		ka, kb := a.Line == 0, b.Line == 0
		if ka != kb {
			if ka {
				return 1
			}
			return -1
		}
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Message, b.Message),
		)
	})
}

// WriteText prints one diagnostic per line, each followed by an indented
// hint line when it has a hint.
func (ds Diagnostics) WriteText(w io.Writer) error {
	for _, d := range ds {
		if _, err := fmt.Fprintln(w, d.String()); err != nil {
			return err
		}
		if d.Hint != "" {
			if _, err := fmt.Fprintf(w, "    hint: %s\n", d.Hint); err != nil {
				return err
			}
		}
	}
	return nil
}

// Report is the structured form of a validation run (dg validate -o json).
type Report struct {
	File        string       `json:"file"`
	Valid       bool         `json:"valid"`
	Errors      int          `json:"errors"`
	Warnings    int          `json:"warnings"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

// NewReport summarises diagnostics for file.
func NewReport(file string, ds Diagnostics) Report {
	if ds == nil {
		ds = Diagnostics{}
	}
	return Report{File: file, Valid: !ds.HasErrors(), Errors: ds.Errors(), Warnings: ds.Warnings(), Diagnostics: ds}
}

// WriteJSON prints the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Summary is a one-line count such as "2 errors, 1 warning".
func (ds Diagnostics) Summary() string {
	return fmt.Sprintf("%s, %s", plural(ds.Errors(), "error"), plural(ds.Warnings(), "warning"))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
