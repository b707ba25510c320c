package ops_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/decisiongraph/dg/pkg/ops"
)

// jsonFields lists the JSON names of a struct's fields, nested structs and
// slices of structs included, as dotted paths ("timings.restore_ms").
func jsonFields(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() != reflect.TypeOf(ops.DrillReport{}).PkgPath() {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, prefix+name)
		out = append(out, jsonFields(f.Type, prefix+name+".")...)
	}
	return out
}

// TestFormatsDocumented: every field of the backup manifest and of the
// drill report is named in docs/backup.md.
func TestFormatsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../../docs/backup.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, typ := range []reflect.Type{reflect.TypeOf(ops.BackupManifest{}), reflect.TypeOf(ops.DrillReport{})} {
		for _, path := range jsonFields(typ, "") {
			leaf := path[strings.LastIndex(path, ".")+1:]
			documented := strings.Contains(doc, "`"+path+"`") || strings.Contains(doc, "`"+leaf+"`") || strings.Contains(doc, "."+leaf+"`") ||
				strings.Contains(doc, "`"+path+".") || strings.Contains(doc, "`"+path+"[]") // a documented object or list
			if !documented {
				t.Errorf("%s field %s is not documented in docs/backup.md", typ.Name(), path)
			}
		}
	}
	for _, c := range ops.DrillCheckNames() {
		if !strings.Contains(doc, "| `"+c+"` |") {
			t.Errorf("drill check %s is not in the checks table of docs/backup.md", c)
		}
	}
	for _, f := range ops.Faults() {
		if !strings.Contains(doc, "| `"+f+"` |") {
			t.Errorf("fault %s is not in the fault table of docs/backup.md", f)
		}
	}
}
