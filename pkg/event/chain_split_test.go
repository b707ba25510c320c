package event

import (
	"strings"
	"testing"
)

// TestEventHashInputMatchesEventHash: the hash input prepared without
// log_seq gives EventHash for any log_seq, and fails exactly when EventHash
// does, with the same message.
func TestEventHashInputMatchesEventHash(t *testing.T) {
	sub, corr, cause := "sub\u2028\"x\"", "c\x01", "😀"
	events := []*StoredEvent{chainEvent()}
	e := chainEvent()
	e.Source.Subsystem, e.CorrelationID, e.CausationEventID = &sub, &corr, &cause
	e.Tags = []string{"a", "<b>", "é"}
	e.TenantID, e.TraceSeq, e.SchemaVersion = "tenant\\1", -3, 0
	events = append(events, e)
	long := chainEvent()
	long.Tags = []string{strings.Repeat("x", 2000)}
	events = append(events, long)
	for _, ev := range events {
		in, err := NewEventHashInput(ev)
		if err != nil || !in.Ready() {
			t.Fatal(err)
		}
		for _, seq := range []int64{0, 1, 9, 10, 12345, 1 << 62, -1} {
			ev.LogSeq = seq
			want, err := EventHash(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := in.Hash(seq); got != want {
				t.Errorf("log_seq %d: got %s, want %s", seq, got, want)
			}
		}
	}
	if (EventHashInput{}).Ready() {
		t.Error("zero EventHashInput is ready")
	}
	for _, bad := range []func(*StoredEvent){
		func(e *StoredEvent) { e.Tags = []string{"ok", "\xff"} },
		func(e *StoredEvent) { e.TenantID = "\xff" },
		func(e *StoredEvent) { e.Actor.ActorID = "\xff" },
	} {
		e := chainEvent()
		bad(e)
		_, werr := EventHash(e)
		in, gerr := NewEventHashInput(e)
		if werr == nil || gerr == nil || werr.Error() != gerr.Error() || in.Ready() {
			t.Errorf("EventHash error %v, NewEventHashInput error %v (ready %v)", werr, gerr, in.Ready())
		}
	}
}
