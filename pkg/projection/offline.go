package projection

import (
	"fmt"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// EventFile is one decoded event file: its name (for messages) and its
// envelopes in file order.
type EventFile struct {
	Name   string
	Events []event.Envelope
}

// OfflineResult is what an offline digest run did.
type OfflineResult struct {
	Digests Digests `json:"digests"`
	// Submitted counts envelopes read; Appended counts new log entries
	// (idempotent retries are not appended again).
	Submitted int   `json:"submitted"`
	Appended  int   `json:"appended"`
	Head      int64 `json:"head"`
}

// InputError is an envelope the append rules refused.
type InputError struct {
	File  string
	Index int
	Err   error
}

func (e *InputError) Error() string {
	return fmt.Sprintf("%s: event %d: %v", e.File, e.Index, e.Err)
}

func (e *InputError) Unwrap() error { return e.Err }

// DigestOffline appends the files' envelopes, in order, to one fresh
// in-memory log of tenant (through the same validation and append rules as
// the Postgres store), projects the log and returns its digests. It needs no
// database.
func DigestOffline(tenant string, files []EventFile, opts event.Options) (*OfflineResult, error) {
	log := store.NewMemLog(opts)
	res := &OfflineResult{}
	for _, f := range files {
		// AppendAll is Append for each envelope in turn, with the pure
		// preparation (validation, canonical JSON, hashes) spread over the
		// cores. The log is private to this call, so the payloads it keeps
		// from f.Events are never seen by anyone else.
		n, failed, err := log.AppendAll(tenant, f.Events, nil)
		if err != nil {
			return nil, &InputError{File: f.Name, Index: failed, Err: err}
		}
		res.Submitted += len(f.Events)
		res.Appended += n
	}
	m := newMemoryFor(res.Appended)
	if err := m.Project(log.Events(tenant, 0, 0)); err != nil {
		return nil, fmt.Errorf("project the offline log: %w", err)
	}
	res.Head = m.Cursor()
	res.Digests = m.Digests()
	return res, nil
}

// EventData is one undecoded event file: its name (for messages) and its
// bytes in the golden fixture format ({"events": [...]} or a bare array).
type EventData struct {
	Name string
	Data []byte
}

// DecodeError is an event file that cannot be decoded into envelopes.
type DecodeError struct {
	File string
	Err  error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("%s: %v", e.File, e.Err) }

func (e *DecodeError) Unwrap() error { return e.Err }

// DigestOfflineData is `dg events digest` without a database: it decodes
// the files (event.DecodeEvents), then does what DigestOffline does. A file
// that does not decode is a *DecodeError, an event the rules refuse an
// *InputError.
func DigestOfflineData(tenant string, files []EventData, opts event.Options) (*OfflineResult, error) {
	decoded := make([]EventFile, 0, len(files))
	for _, f := range files {
		envs, err := event.DecodeEvents(f.Data)
		if err != nil {
			return nil, &DecodeError{File: f.Name, Err: err}
		}
		decoded = append(decoded, EventFile{Name: f.Name, Events: envs})
	}
	return DigestOffline(tenant, decoded, opts)
}
