package event

import (
	"os"
	"testing"
)

// TestCanonicalVectorsFromPython checks CanonicalJSON and PayloadHash
// against vectors computed by Python's json module (the reference's
// encoder) on random documents full of control characters, separators,
// non-BMP characters and integers beyond 64 bits; see
// testdata/gen_canonical_vectors.py.
func TestCanonicalVectorsFromPython(t *testing.T) {
	data, err := os.ReadFile("testdata/canonical_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, derr := DecodeValue(data)
	if derr != nil {
		t.Fatal(derr)
	}
	vectors := doc.(map[string]any)["vectors"].([]any)
	if len(vectors) < 100 {
		t.Fatalf("only %d vectors", len(vectors))
	}
	for i, raw := range vectors {
		v := raw.(map[string]any)
		in, want, hash := v["input"].(string), v["canonical"].(string), v["payload_hash"].(string)
		payload, perr := DecodePayload([]byte(in))
		if perr != nil {
			t.Errorf("vector %d: decode: %v", i, perr)
			continue
		}
		got, err := CanonicalJSON(payload)
		if err != nil {
			t.Errorf("vector %d: %v", i, err)
			continue
		}
		if string(got) != want {
			t.Errorf("vector %d:\n got %q\nwant %q", i, got, want)
		}
		if h, _ := PayloadHash(payload); h != hash {
			t.Errorf("vector %d: hash %s, want %s", i, h, hash)
		}
	}
}
