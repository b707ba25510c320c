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
	total := 0
	for _, f := range files {
		total += len(f.Events)
	}
	// The projection follows the appends in a goroutine of its own: each
	// batch of new log entries is projected (in log_seq order, as from
	// log.Events) while the next ones are being appended. If any envelope
	// is refused, that error is the answer, as when projecting after all
	// appends.
	m := newMemoryFor(total)
	// The log is private to this call and made its payload hashes from
	// the payloads it stores: projecting it does not hash them again.
	m.ownLog = true
	batches := make(chan []*event.StoredEvent, 64)
	projected := make(chan error, 1)
	go func() {
		var err error
		for b := range batches {
			if err == nil {
				err = m.Project(b)
			}
		}
		projected <- err
	}()
	const batchSize = 512
	batch := make([]*event.StoredEvent, 0, batchSize)
	onEach := func(_ int, ev *event.StoredEvent, replay bool) {
		if replay {
			return
		}
		batch = append(batch, ev)
		if len(batch) == batchSize {
			batches <- batch
			batch = make([]*event.StoredEvent, 0, batchSize)
		}
	}
	for _, f := range files {
		// AppendAll is Append for each envelope in turn, with the pure
		// preparation (validation, canonical JSON, hashes) spread over the
		// cores. The log is private to this call, so the payloads it keeps
		// from f.Events are never seen by anyone else.
		n, failed, err := log.AppendAll(tenant, f.Events, onEach)
		if err != nil {
			close(batches)
			<-projected
			return nil, &InputError{File: f.Name, Index: failed, Err: err}
		}
		res.Submitted += len(f.Events)
		res.Appended += n
	}
	if len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	if err := <-projected; err != nil {
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
