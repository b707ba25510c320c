package projection

import (
	"testing"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

// TestGraphDigestConcurrentMatchesSequential: the concurrent digest of a
// large graph (nodes rendered beside the edges) equals the sequential one.
func TestGraphDigestConcurrentMatchesSequential(t *testing.T) {
	log := store.NewMemLog(event.Options{})
	if _, _, err := log.AppendAll("t", Synthetic(SynthOptions{Seed: 11, Traces: 800}), nil); err != nil {
		t.Fatal(err)
	}
	m := NewMemory()
	if err := m.Project(log.Events("t", 0, 0)); err != nil {
		t.Fatal(err)
	}
	tables := m.Store().Tables()
	if len(tables.Nodes)+len(tables.Edges) < 4096 {
		t.Fatalf("graph too small for the concurrent path: %d rows", len(tables.Nodes)+len(tables.Edges))
	}
	seq := m.Store().Tables()
	seq.sortGraph()
	if got, want := tables.graphDigest(), graphDigestSorted(seq.Nodes, seq.Edges); got != want {
		t.Fatalf("concurrent %s, sequential %s", got, want)
	}
	if got, want := m.Digests().ContextGraph, graphDigestSorted(seq.Nodes, seq.Edges); got != want {
		t.Fatalf("Digests %s, sequential %s", got, want)
	}
}
