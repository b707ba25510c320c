package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Source says where a field's effective value came from.
type Source struct {
	// Kind is "default", "file" or "env".
	Kind string `json:"kind"`
	// Origin is "file:line:col" for file values and the variable name for
	// environment values; "" for defaults.
	Origin string `json:"origin,omitempty"`
	// Vars lists the variables a file value interpolated with ${VAR}.
	Vars []string `json:"vars,omitempty"`
}

// Source kinds.
const (
	SourceDefault = "default"
	SourceFile    = "file"
	SourceEnv     = "env"
)

type position struct{ line, col int }

// loader holds the state of one Load: the manifest being filled, what has
// been found wrong, and where each value came from.
type loader struct {
	name  string
	env   func(string) (string, bool)
	m     *Manifest
	diags Diagnostics
	pos   map[string]position // value positions by path (list items as path[i])
}

// Load reads the manifest at path and returns it with every problem found.
// env looks up environment variables (os.LookupEnv in production; nil means
// no environment). The error is non-nil only when the file cannot be read;
// an invalid manifest is reported through Diagnostics (see HasErrors).
func Load(path string, env func(string) (string, bool)) (*Manifest, Diagnostics, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest %s: %w (pass an existing file with -f, or run dg from a directory holding dg.yaml)", path, err)
	}
	return LoadBytes(path, data, env)
}

// LoadBuiltin loads the embedded default manifest (manifests/local.yaml).
func LoadBuiltin(env func(string) (string, bool)) (*Manifest, Diagnostics, error) {
	return LoadBytes(BuiltinName, BuiltinYAML(), env)
}

// LoadBytes is Load for a manifest already in memory; name is used in
// diagnostics and as Manifest.Path (BuiltinName gives Path "").
func LoadBytes(name string, data []byte, env func(string) (string, bool)) (*Manifest, Diagnostics, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	l := &loader{name: name, env: env, m: Default(), pos: map[string]position{}}
	l.m.sources = map[string]Source{}
	if name != BuiltinName {
		l.m.Path = name
	}
	if l.parse(data) {
		l.applyEnv()
		l.applyDependentDefaults()
		l.checkFields()
		l.checkRules()
	}
	l.diags.sort()
	return l.m, l.diags, nil
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse decodes the YAML text into l.m. It returns false when the text is
// not YAML at all, in which case nothing else is worth checking.
func (l *loader) parse(data []byte) bool {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return true // empty file: all defaults
	}
	if err == nil {
		var extra yaml.Node
		if dec.Decode(&extra) == nil {
			n := &extra
			if len(extra.Content) > 0 {
				n = extra.Content[0]
			}
			l.errorAt(n, "", "a manifest is a single YAML document, found another one",
				"remove the --- separator and what follows, or merge the two")
		}
	}
	if err != nil {
		d := Diagnostic{File: l.name, Message: strings.TrimPrefix(err.Error(), "yaml: "), Severity: SeverityError,
			Hint: "fix the YAML syntax (indent with spaces, quote values containing ': ' or '#')"}
		if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
			d.Line, _ = strconv.Atoi(m[1])
			d.Column = firstColumn(data, d.Line)
			d.Message = m[2]
		}
		l.diags = append(l.diags, d)
		return false
	}
	if len(doc.Content) == 0 {
		return true // empty file: all defaults
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return true
	}
	if root.Kind != yaml.MappingNode {
		l.errorAt(root, "", "the manifest must be a mapping of sections, got "+describe(root),
			"start with section keys such as server:, database:")
		return false
	}
	l.decodeMapping(root, reflect.ValueOf(l.m).Elem(), "")
	return true
}

// firstColumn is the 1-based column of the first non-blank character of a
// line: the YAML parser reports only lines, and that is where the offending
// token usually starts.
func firstColumn(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	return len(lines[line-1]) - len(bytes.TrimLeft(lines[line-1], " \t")) + 1
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// describe names a node's kind for "got ..." messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!bool":
			return "the boolean " + n.Value
		case "!!int", "!!float":
			return "the number " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "an unexpected node"
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (l *loader) add(d Diagnostic) { l.diags = append(l.diags, d) }

func (l *loader) errorAt(n *yaml.Node, path, msg, hint string) {
	l.add(Diagnostic{File: l.name, Line: n.Line, Column: n.Column, Path: path, Message: msg, Hint: hint, Severity: SeverityError})
}

func (l *loader) warnAt(n *yaml.Node, path, msg, hint string) {
	l.add(Diagnostic{File: l.name, Line: n.Line, Column: n.Column, Path: path, Message: msg, Hint: hint, Severity: SeverityWarning})
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// decodeMapping fills the struct v (of type t) from a YAML mapping.
func (l *loader) decodeMapping(node *yaml.Node, v reflect.Value, prefix string) {
	t := v.Type()
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, val := resolve(node.Content[i]), resolve(node.Content[i+1])
		key := k.Value
		path := join(prefix, key)
		if first, dup := seen[key]; dup {
			l.errorAt(k, path, fmt.Sprintf("duplicate key (first set at line %d)", first.Line),
				"keep one of them; YAML would silently use the last")
			continue
		}
		seen[key] = k
		sf, ok := structField(t, key)
		if !ok {
			l.unknownKey(k, t, prefix, key)
			continue
		}
		l.pos[path] = position{val.Line, val.Column}
		if isSection(sf) {
			// A section is reported at its key: its value starts on the
			// line of its first child.
			l.pos[path] = position{k.Line, k.Column}
			if isNull(val) {
				continue
			}
			if val.Kind != yaml.MappingNode {
				l.errorAt(val, path, "must be a mapping of keys, got "+describe(val),
					fmt.Sprintf("write it as a section: %s: followed by indented keys", key))
				continue
			}
			l.decodeMapping(val, v.FieldByIndex(sf.Index), path)
			continue
		}
		f := fieldFromStruct(sf, path, sf.Index)
		l.decodeLeaf(f, val, v.FieldByIndex(sf.Index))
	}
}

func structField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		sf := t.Field(i)
		if yamlName(sf) == key {
			return sf, true
		}
	}
	return reflect.StructField{}, false
}

func (l *loader) unknownKey(k *yaml.Node, t reflect.Type, prefix, key string) {
	path := join(prefix, key)
	where := "the top level"
	if prefix != "" {
		where = prefix
	}
	msg := fmt.Sprintf("unknown key %q in %s", key, where)
	keys := keysOf(t)
	if s := suggest(key, keys); s != "" {
		l.errorAt(k, path, msg, fmt.Sprintf("did you mean %q?", s))
		return
	}
	// A key that belongs to another section.
	for _, f := range manifestFields() {
		if f.name == key && !strings.HasPrefix(f.path, prefix+".") {
			l.errorAt(k, path, msg, fmt.Sprintf("%s belongs under %s", key, strings.TrimSuffix(f.path, "."+key)))
			return
		}
	}
	l.errorAt(k, path, msg, "valid keys: "+strings.Join(keys, ", "))
}

// decodeLeaf sets one field from its YAML value.
func (l *loader) decodeLeaf(f field, val *yaml.Node, dst reflect.Value) {
	if isNull(val) {
		return // an empty value keeps the default
	}
	src := Source{Kind: SourceFile, Origin: fmt.Sprintf("%s:%d:%d", l.name, val.Line, val.Column)}
	switch f.kind {
	case kindStringList:
		if val.Kind != yaml.SequenceNode {
			l.errorAt(val, f.path, "must be a list of strings, got "+describe(val), fmt.Sprintf("write a list, e.g. %s: [%s]", f.name, exampleItem(f)))
			return
		}
		items := make([]string, 0, len(val.Content))
		ok := true
		for i, item := range val.Content {
			item = resolve(item)
			ipath := fmt.Sprintf("%s[%d]", f.path, i)
			l.pos[ipath] = position{item.Line, item.Column}
			if item.Kind != yaml.ScalarNode || isNull(item) {
				l.errorAt(item, ipath, "must be a string, got "+describe(item), "")
				ok = false
				continue
			}
			s, vars, good := l.interpolate(item, ipath)
			src.Vars = append(src.Vars, vars...)
			if !good {
				ok = false
				continue
			}
			items = append(items, s)
		}
		if ok {
			dst.Set(reflect.ValueOf(items))
			l.m.sources[f.path] = src
		}
	case kindWebhooks:
		if val.Kind != yaml.SequenceNode {
			l.errorAt(val, f.path, "must be a list of webhooks, got "+describe(val), "write a list: - url: https://...")
			return
		}
		hooks := make([]Webhook, len(val.Content))
		for i, item := range val.Content {
			item = resolve(item)
			ipath := fmt.Sprintf("%s[%d]", f.path, i)
			l.pos[ipath] = position{item.Line, item.Column}
			if item.Kind != yaml.MappingNode {
				l.errorAt(item, ipath, "must be a mapping with url, categories and secret, got "+describe(item), "")
				continue
			}
			l.decodeMapping(item, reflect.ValueOf(&hooks[i]).Elem(), ipath)
		}
		dst.Set(reflect.ValueOf(hooks))
		l.m.sources[f.path] = src
	default:
		if val.Kind != yaml.ScalarNode {
			l.errorAt(val, f.path, fmt.Sprintf("must be %s, got %s", kindName(f.kind), describe(val)), exampleHint(f))
			return
		}
		if f.kind == kindDuration && (val.Tag == "!!int" || val.Tag == "!!float") {
			l.errorAt(val, f.path, fmt.Sprintf("duration %s has no unit", val.Value), durationHint)
			return
		}
		s, vars, ok := l.interpolate(val, f.path)
		if !ok {
			return
		}
		if msg, hint := setScalar(f, s, dst); msg != "" {
			l.errorAt(val, f.path, msg, hint)
			return
		}
		src.Vars = vars
		l.m.sources[f.path] = src
	}
}

const durationHint = `use a number with a unit: "500ms", "15s", "24h" or "7d"`

func kindName(k kind) string {
	switch k {
	case kindInt:
		return "an integer"
	case kindBool:
		return "true or false"
	case kindDuration:
		return "a duration"
	case kindBytes:
		return "a size"
	case kindStringList:
		return "a list of strings"
	}
	return "a string"
}

func exampleItem(f field) string {
	if len(f.enum) > 0 {
		return f.enum[0]
	}
	if f.path == "seed" {
		return "release-demo"
	}
	return "default"
}

func exampleHint(f field) string {
	switch f.kind {
	case kindDuration:
		return durationHint
	case kindBytes:
		return bytesHint
	case kindBool:
		return "write true or false"
	}
	if len(f.enum) > 0 {
		return "one of: " + strings.Join(f.enum, ", ")
	}
	return ""
}

const bytesHint = "write a number of bytes or a size with a unit: 65536, 1MB, 8MiB"

// setScalar parses text as f's type and stores it in dst. It returns a
// message (and hint) when text is not a valid value of that type.
func setScalar(f field, text string, dst reflect.Value) (msg, hint string) {
	switch f.kind {
	case kindString:
		dst.SetString(text)
	case kindInt:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return fmt.Sprintf("must be an integer, got %q", text), ""
		}
		dst.SetInt(n)
	case kindBool:
		b, ok := parseBool(text)
		if !ok {
			return fmt.Sprintf("must be true or false, got %q", text), ""
		}
		dst.SetBool(b)
	case kindDuration:
		d, err := ParseDuration(text)
		if err != nil && strings.HasPrefix(strings.TrimSpace(text), "-") {
			return fmt.Sprintf("must not be negative, got %q", text), durationHint
		}
		if err != nil {
			if _, nerr := strconv.ParseFloat(text, 64); nerr == nil {
				return fmt.Sprintf("duration %s has no unit", text), durationHint
			}
			return fmt.Sprintf("invalid duration %q", text), durationHint
		}
		dst.SetInt(int64(d))
	case kindBytes:
		n, err := ParseByteSize(text)
		if err != nil {
			return fmt.Sprintf("invalid size %q", text), bytesHint
		}
		dst.SetInt(n)
	case kindStringList:
		var items []string
		for _, s := range strings.Split(text, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		if items == nil {
			items = []string{}
		}
		dst.Set(reflect.ValueOf(items))
	default:
		return "cannot be set from a string", ""
	}
	return "", ""
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, true
	case "false", "no", "off", "0":
		return false, true
	}
	return false, false
}

// interpolate expands ${VAR} in a scalar value. Unset variables are
// diagnosed at the value's position.
func (l *loader) interpolate(n *yaml.Node, path string) (string, []string, bool) {
	out, vars, missing, err := expand(n.Value, l.env)
	if err != "" {
		l.errorAt(n, path, err, "write ${NAME} or ${NAME:-default}; write $$ for a literal $")
		return "", nil, false
	}
	for _, name := range missing {
		l.errorAt(n, path, fmt.Sprintf("environment variable %s is not set", name),
			fmt.Sprintf("export %s, or give a default: ${%s:-value}", name, name))
	}
	return out, vars, len(missing) == 0
}

// expand replaces ${NAME} and ${NAME:-default} with values from env and $$
// with $. It returns the variables used, those unset (without default), and
// a syntax error message.
func expand(s string, env func(string) (string, bool)) (out string, used, missing []string, errMsg string) {
	if !strings.Contains(s, "$") {
		return s, nil, nil, ""
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", nil, nil, fmt.Sprintf("unterminated ${ in %q", s)
		}
		expr := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validVarName(name) {
			return "", nil, nil, fmt.Sprintf("invalid variable name %q in %q", name, s)
		}
		used = append(used, name)
		if v, ok := env(name); ok {
			b.WriteString(v)
		} else if hasDef {
			b.WriteString(def)
		} else {
			missing = append(missing, name)
		}
		i += 2 + end
	}
	return b.String(), used, missing, ""
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}
