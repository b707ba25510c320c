package manifest

import (
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Setting is one effective value of the manifest and where it came from.
type Setting struct {
	Path   string   `json:"path"`
	Value  string   `json:"value"`
	Source string   `json:"source"`
	Origin string   `json:"origin,omitempty"`
	Vars   []string `json:"vars,omitempty"`
	Secret bool     `json:"secret,omitempty"`
}

// Mask is what a secret looks like in Explain.
const Mask = "********"

// Source returns where the value of path came from.
func (m *Manifest) Source(path string) Source {
	if s, ok := m.sources[path]; ok {
		return s
	}
	return Source{Kind: SourceDefault}
}

// Explain lists every effective value, in declaration order, with its
// source. Secrets are masked: secret_key_base and webhook secrets entirely,
// the password of database.url.
func (m *Manifest) Explain() []Setting {
	var out []Setting
	root := reflect.ValueOf(m).Elem()
	for _, f := range manifestFields() {
		v := root.FieldByIndex(f.index)
		src := m.Source(f.path)
		if f.kind == kindWebhooks {
			hooks := m.Workflows.Notifications.Webhooks
			if len(hooks) == 0 {
				out = append(out, Setting{Path: f.path, Value: "[]", Source: src.Kind, Origin: src.Origin})
			}
			for i, w := range hooks {
				base := fmt.Sprintf("%s[%d]", f.path, i)
				out = append(out,
					Setting{Path: base + ".url", Value: w.URL, Source: src.Kind, Origin: src.Origin},
					Setting{Path: base + ".categories", Value: formatList(w.Categories), Source: src.Kind, Origin: src.Origin},
					Setting{Path: base + ".secret", Value: maskAll(w.Secret), Source: src.Kind, Origin: src.Origin, Secret: w.Secret != ""},
				)
			}
			continue
		}
		s := Setting{Path: f.path, Value: formatValue(f, v), Source: src.Kind, Origin: src.Origin, Vars: src.Vars}
		switch f.secret {
		case "true":
			s.Secret = s.Value != ""
			s.Value = maskAll(s.Value)
		case "password":
			s.Value, s.Secret = maskURLPassword(s.Value)
		}
		out = append(out, s)
	}
	return out
}

func maskAll(s string) string {
	if s == "" {
		return ""
	}
	return Mask
}

// maskURLPassword hides the password of a URL; a value that does not parse
// is hidden entirely since it may still hold one.
func maskURLPassword(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil {
		return Mask, true
	}
	if _, has := u.User.Password(); !has {
		return s, false
	}
	u.User = url.UserPassword(u.User.Username(), Mask)
	return strings.Replace(u.String(), url.QueryEscape(Mask), Mask, 1), true
}

func formatList(items []string) string { return "[" + strings.Join(items, ", ") + "]" }

func formatValue(f field, v reflect.Value) string {
	switch f.kind {
	case kindInt:
		return strconv.FormatInt(v.Int(), 10)
	case kindBool:
		return strconv.FormatBool(v.Bool())
	case kindDuration:
		return FormatDuration(time.Duration(v.Int()))
	case kindBytes:
		return FormatByteSize(v.Int())
	case kindStringList:
		return formatList(v.Interface().([]string))
	}
	return v.String()
}
