package manifest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// Patterns used in the schema for strings with a format. A value may also
// be a ${VAR} reference, resolved at load time.
const (
	durationPattern = `^([0-9]+d)?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*$`
	bytesPattern    = `^[0-9]+ *([kKmMgG](i?[bB])?|[bB])?$`
	varPattern      = `\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}`
)

// Schema returns the manifest's JSON Schema (draft 2020-12), generated from
// the Go types and their tags, with the built-in defaults.
func Schema() ([]byte, error) {
	s := structSchema(reflect.TypeFor[Manifest](), reflect.ValueOf(Default()).Elem())
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["title"] = "dg topology manifest"
	s["description"] = "How a dg node is laid out. See docs/manifest.md. String values may use ${VAR} or ${VAR:-default}; DG_<FIELD_PATH> and the reference's variables override fields at load time."
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func structSchema(t reflect.Type, def reflect.Value) map[string]any {
	props := map[string]any{}
	var required []string
	for i := range t.NumField() {
		sf := t.Field(i)
		name := yamlName(sf)
		if name == "" {
			continue
		}
		var dv reflect.Value
		if def.IsValid() {
			dv = def.Field(i)
		}
		var p map[string]any
		if isSection(sf) {
			p = structSchema(sf.Type, dv)
		} else {
			p = leafSchema(fieldFromStruct(sf, name, nil), sf.Type, dv)
		}
		if d := sf.Tag.Get("doc"); d != "" {
			p["description"] = d
		}
		if sf.Tag.Get("required") == "true" {
			required = append(required, name)
		}
		props[name] = p
	}
	s := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// orVar lets a typed value also be written as a ${VAR} reference.
func orVar(s map[string]any) map[string]any {
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "string", "pattern": varPattern}}}
}

func leafSchema(f field, t reflect.Type, def reflect.Value) map[string]any {
	var s map[string]any
	switch f.kind {
	case kindString:
		s = map[string]any{"type": "string"}
		if len(f.enum) > 0 {
			s["enum"] = f.enum
		}
		switch f.format {
		case "hostport":
			s["pattern"] = `^(\[[^\]]*\]|[^:\s]*):([0-9]{1,5}|\$\{[^}]*\})$`
		case "url":
			s["format"] = "uri"
		}
		if len(f.enum) > 0 {
			s = orVar(s)
		}
	case kindInt:
		s = map[string]any{"type": "integer"}
		if n, ok := intTag(f.min); ok {
			s["minimum"] = n
		}
		if n, ok := intTag(f.max); ok {
			s["maximum"] = n
		}
		s = orVar(s)
	case kindBool:
		s = orVar(map[string]any{"type": "boolean"})
	case kindDuration:
		s = orVar(map[string]any{"type": "string", "pattern": durationPattern})
	case kindBytes:
		s = orVar(map[string]any{"anyOf": []any{
			map[string]any{"type": "integer", "minimum": 1024},
			map[string]any{"type": "string", "pattern": bytesPattern},
		}})
	case kindStringList:
		item := map[string]any{"type": "string"}
		if len(f.enum) > 0 {
			item["enum"] = f.enum
		} else if f.pattern != "" {
			item["pattern"] = f.pattern
		}
		s = map[string]any{"type": "array", "items": item}
		if f.unique {
			s["uniqueItems"] = true
		}
	case kindWebhooks:
		s = map[string]any{"type": "array", "items": structSchema(t.Elem(), reflect.Value{})}
	}
	if def.IsValid() {
		if d, ok := defaultJSON(f, def); ok {
			s["default"] = d
		}
	}
	return s
}

func defaultJSON(f field, v reflect.Value) (any, bool) {
	switch f.kind {
	case kindDuration:
		return FormatDuration(time.Duration(v.Int())), true
	case kindString:
		if v.String() == "" {
			return nil, false
		}
		return v.String(), true
	case kindWebhooks:
		return nil, false
	case kindStringList:
		if v.Len() == 0 && !strings.HasPrefix(f.path, "tenants") {
			return []string{}, true
		}
	}
	return v.Interface(), true
}
