package manifest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden diagnostics under testdata/manifests")

// goldenDir holds the test manifests; diagnostics name them relative to the
// repository root, as `dg validate` run there would.
const goldenDir = "../../testdata/manifests"

// goldenEnv is the environment the golden manifests are loaded with.
func goldenEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"DG_TEST_PORT":     "4100",
		"DG_TEST_SECRET":   strings.Repeat("s", 64),
		"DG_TEST_PASSWORD": "hunter2",
	}[name]
	return v, ok
}

// TestGoldenDiagnostics loads every manifest under testdata/manifests and
// compares its diagnostics, as text and as JSON, with the golden files next
// to it. Files named valid-*.yaml must have no errors; all others must have
// at least one. Run with -update to rewrite the golden files.
func TestGoldenDiagnostics(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	invalid := 0
	for _, file := range files {
		base := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(base, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			name := "testdata/manifests/" + base + ".yaml"
			_, diags, err := LoadBytes(name, data, goldenEnv)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(base, "valid-") {
				if diags.HasErrors() {
					t.Errorf("%s should be valid, got:\n%s", base, text(t, diags))
				}
			} else {
				invalid++
				if !diags.HasErrors() {
					t.Errorf("%s should have errors, got none", base)
				}
			}
			checkPositions(t, data, diags)
			var js bytes.Buffer
			if err := NewReport(name, diags).WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			compareGolden(t, strings.TrimSuffix(file, ".yaml")+".txt", []byte(text(t, diags)))
			compareGolden(t, strings.TrimSuffix(file, ".yaml")+".json", js.Bytes())
		})
	}
	if invalid < 15 {
		t.Errorf("testdata/manifests holds %d invalid manifests, want at least 15", invalid)
	}
}

func text(t *testing.T, ds Diagnostics) string {
	t.Helper()
	var b bytes.Buffer
	if err := ds.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (create it with go test -run TestGoldenDiagnostics -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (rewrite with -update if the change is intended)\n--- got\n%s\n--- want\n%s", filepath.Base(path), got, want)
	}
}

// checkPositions asserts that every diagnostic with a position points at a
// token of the file: a non-blank character on an existing line.
func checkPositions(t *testing.T, data []byte, ds Diagnostics) {
	t.Helper()
	lines := strings.Split(string(data), "\n")
	for _, d := range ds {
		if d.Line == 0 {
			continue
		}
		if d.Line > len(lines) || d.Column < 1 || d.Column > len(lines[d.Line-1]) {
			t.Errorf("%s: position outside the file", d)
			continue
		}
		if c := lines[d.Line-1][d.Column-1]; c == ' ' || c == '\t' {
			t.Errorf("%s: points at blank space in %q", d, lines[d.Line-1])
		}
	}
}
