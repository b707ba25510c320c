package projection_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/decisiongraph/dg/internal/fixtures"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// fixturesDir is ../shared/fixtures beside the repository (skips when absent).
func fixturesDir(t testing.TB) string { return fixtures.Dir(t) }

// goldenScenarios lists the scenario directories under fixtures/golden.
func goldenScenarios(t testing.TB) map[string]string {
	t.Helper()
	root := filepath.Join(fixturesDir(t), "golden")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			out[e.Name()] = filepath.Join(root, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatalf("no scenarios in %s", root)
	}
	return out
}

func readEnvelopes(t testing.TB, path string) []event.Envelope {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := event.DecodeEvents(data)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return envs
}

// appendAll appends envelopes in order to a fresh in-memory log through the
// store's append rules and returns the log.
func appendAll(t testing.TB, tenant string, envs ...[]event.Envelope) *store.MemLog {
	t.Helper()
	log := store.NewMemLog(event.Options{})
	for _, list := range envs {
		for i := range list {
			if _, _, err := log.Append(tenant, &list[i]); err != nil {
				t.Fatalf("append %s: %v", list[i].EventID, err)
			}
		}
	}
	return log
}

func projectMemory(t testing.TB, log *store.MemLog, tenant string) *projection.Memory {
	t.Helper()
	m := projection.NewMemory()
	if err := m.Project(log.Events(tenant, 0, 0)); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGoldenDigestsInMemory(t *testing.T) {
	for name, dir := range goldenScenarios(t) {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "expected_digest.txt"))
			if err != nil {
				t.Fatal(err)
			}
			log := appendAll(t, "default", readEnvelopes(t, filepath.Join(dir, "events.json")))
			got := projectMemory(t, log, "default").Digests().Lines()
			if got != string(want) {
				t.Errorf("digests differ\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
