package event

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/decisiongraph/dg/internal/fixtures"
)

// fixturesDir is ../shared/fixtures beside the repository (skips when absent).
func fixturesDir(t testing.TB) string { return fixtures.Dir(t) }

func fixtureFiles(t *testing.T) []string {
	fx := fixturesDir(t)
	files, err := filepath.Glob(filepath.Join(fx, "golden", "*", "events.json"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(fx, "release-demo", "events.transcribed.json"))
	if len(files) < 4 {
		t.Fatalf("expected at least 3 golden fixtures and the release demo, found %v", files)
	}
	return files
}

func TestFixturesDecodeAndValidate(t *testing.T) {
	for _, f := range fixtureFiles(t) {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			events, err := DecodeEvents(data)
			if err != nil {
				t.Fatalf("decode %s: %v", f, err)
			}
			wantCount := map[string]int{"dealdesk": 9, "renewal": 9, "support": 8, "release-demo": 22}
			if n, known := wantCount[filepath.Base(filepath.Dir(f))]; (known && len(events) != n) || len(events) == 0 {
				t.Fatalf("%s: %d events, want %d", f, len(events), n)
			}
			for i := range events {
				e := &events[i]
				before, _ := EncodeEnvelope(e)
				for _, strict := range []bool{false, true} {
					if verr := Validate(e, Options{Strict: strict}); verr != nil {
						t.Errorf("%s event %d (%s, strict=%v): %v", f, i, e.EventID, strict, verr)
					}
				}
				if after, _ := EncodeEnvelope(e); string(after) != string(before) {
					t.Errorf("event %d: Validate modified the envelope", i)
				}
				// Encoding and decoding again gives the same event and hash.
				b, err := EncodeEnvelope(e)
				if err != nil {
					t.Fatal(err)
				}
				back, derr := DecodeEnvelope(b)
				if derr != nil {
					t.Fatalf("re-decode event %d: %v", i, derr)
				}
				h1, _ := PayloadHash(e.Payload)
				h2, _ := PayloadHash(back.Payload)
				if h1 != h2 || !SameForIdempotency(&StoredEvent{Envelope: *e, PayloadHash: h1}, back) {
					t.Errorf("event %d changed on an encode/decode round trip", i)
				}
			}
		})
	}
}
