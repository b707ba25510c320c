package manifest

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadBytes checks that no input makes the loader panic and that every
// diagnostic it reports for file content carries a position inside it.
func FuzzLoadBytes(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.yaml"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("server: &s {listen: ':1'}\nbackup: *s\n"))
	f.Add([]byte("<<: {server: {}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, diags, err := LoadBytes("fuzz.yaml", data, goldenEnv)
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			t.Fatal("nil manifest")
		}
		for _, d := range diags {
			if d.Severity != SeverityError && d.Severity != SeverityWarning {
				t.Fatalf("bad severity in %+v", d)
			}
			if d.File == "fuzz.yaml" && d.Line < 0 {
				t.Fatalf("negative line in %+v", d)
			}
		}
	})
}
