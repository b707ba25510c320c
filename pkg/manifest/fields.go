package manifest

import (
	"reflect"
	"strings"
	"time"
)

// kind is how a leaf field is written in YAML and the environment.
type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
	kindDuration
	kindBytes
	kindStringList
	kindWebhooks
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	webhooksType = reflect.TypeFor[[]Webhook]()
)

// field describes one leaf of the manifest, read from the struct tags.
type field struct {
	path    string // dotted YAML path, e.g. "database.managed.port"
	name    string // YAML key
	index   []int  // reflect index path from the containing struct
	kind    kind
	doc     string
	enum    []string
	min     string
	max     string
	format  string // hostport, url
	secret  string // "true" (whole value) or "password" (URL password)
	unique  bool
	pattern string
	require bool
}

// envName is the DG_<FIELD_PATH> variable that overrides the field.
func (f field) envName() string {
	return "DG_" + strings.ToUpper(strings.ReplaceAll(f.path, ".", "_"))
}

// yamlName returns the key of a struct field, or "" when it is not part of
// the YAML form.
func yamlName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	if name == "-" || !sf.IsExported() {
		return ""
	}
	return name
}

func fieldFromStruct(sf reflect.StructField, path string, index []int) field {
	f := field{
		path:    path,
		name:    yamlName(sf),
		index:   index,
		doc:     sf.Tag.Get("doc"),
		min:     sf.Tag.Get("min"),
		max:     sf.Tag.Get("max"),
		format:  sf.Tag.Get("kind"),
		secret:  sf.Tag.Get("secret"),
		unique:  sf.Tag.Get("unique") == "true",
		pattern: sf.Tag.Get("pattern"),
		require: sf.Tag.Get("required") == "true",
	}
	if e := sf.Tag.Get("enum"); e != "" {
		f.enum = strings.Split(e, ",")
	}
	switch {
	case sf.Type == durationType:
		f.kind = kindDuration
	case sf.Type == webhooksType:
		f.kind = kindWebhooks
	case f.format == "bytes":
		f.kind = kindBytes
	case sf.Type.Kind() == reflect.String:
		f.kind = kindString
	case sf.Type.Kind() == reflect.Int || sf.Type.Kind() == reflect.Int64:
		f.kind = kindInt
	case sf.Type.Kind() == reflect.Bool:
		f.kind = kindBool
	case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.String:
		f.kind = kindStringList
	default:
		panic("manifest: unsupported field type " + sf.Type.String() + " at " + path)
	}
	return f
}

// isSection reports whether a struct field is a nested mapping.
func isSection(sf reflect.StructField) bool {
	return sf.Type.Kind() == reflect.Struct && sf.Type != durationType
}

// leafFields lists every leaf of t (recursively), in declaration order, with
// index paths relative to t.
func leafFields(t reflect.Type, prefix string, index []int) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		name := yamlName(sf)
		if name == "" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		if isSection(sf) {
			out = append(out, leafFields(sf.Type, path, idx)...)
			continue
		}
		out = append(out, fieldFromStruct(sf, path, idx))
	}
	return out
}

// manifestFields lists the manifest's leaves.
func manifestFields() []field {
	return leafFields(reflect.TypeFor[Manifest](), "", nil)
}

// keysOf lists the YAML keys of a struct type (for "did you mean").
func keysOf(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if n := yamlName(t.Field(i)); n != "" {
			keys = append(keys, n)
		}
	}
	return keys
}

// FieldPaths lists every settable field path, in declaration order.
func FieldPaths() []string {
	var out []string
	for _, f := range manifestFields() {
		out = append(out, f.path)
	}
	return out
}
