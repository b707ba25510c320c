package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of JSON arrays and objects dg accepts, in
// decoded documents and in values given to CanonicalJSON. Deeper input is
// rejected with CodeInvalidArgument instead of recursing without bound; it
// also stops a value that contains itself.
const MaxDepth = 512

// CanonicalJSON renders v as the payload-hash dialect of events spec §8: the
// bytes Python produces with json.dumps(v, sort_keys=True,
// separators=(",", ":"), ensure_ascii=False) encoded as UTF-8.
//
//   - object keys sorted by code point (byte order of UTF-8) at every level;
//   - no whitespace; true, false, null;
//   - integers in plain base 10 of any size, "-0" written as "0";
//   - strings escape only `"`, `\`, \b \f \n \r \t and the other controls
//     below U+0020 (as \u00xx, lower-case hex); everything else, including
//     `<>&`, U+007F, U+2028/U+2029 and emoji, is raw UTF-8.
//
// v holds decoded JSON: map[string]any, []any, string, json.Number, bool
// and nil; Go integers, []string and map[string]string are accepted too.
//
// Errors are *Error values with the JSON path of the offending value. A
// float anywhere (a json.Number whose literal has '.', 'e' or 'E', or a Go
// float) is CodeSchemaViolation (§8.3); anything that is not JSON at all
// (invalid UTF-8, a malformed json.Number, an unsupported Go type, nesting
// beyond MaxDepth) is CodeInvalidArgument and takes precedence over a float
// found elsewhere, matching the reference's order (§5.1 steps 2 and 5).
func CanonicalJSON(v any) ([]byte, error) {
	size := 256
	if l, ok := v.([]string); ok && len(l) == 0 {
		size = 2 // no tags, the common case
	}
	b, err := appendCanonicalDoc(make([]byte, 0, size), v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// appendCanonicalDoc appends the canonical form of v to b. It returns a
// plain *Error so callers can keep it typed.
func appendCanonicalDoc(b []byte, v any) ([]byte, *Error) {
	// The member stack comes from a pool: a local array would escape
	// (the canonicalizer's methods keep c.members), costing one heap
	// allocation per document.
	sp := memberStacks.Get().(*[]kv)
	c := canonicalizer{members: (*sp)[:0]}
	b, err := c.append(b, v, 0)
	if cap(c.members) <= 4096 {
		*sp = c.members[:0]
		memberStacks.Put(sp)
	}
	if err != nil {
		err.Path = "$" + err.Path
		return nil, err
	}
	if c.float != nil {
		c.float.Path = "$" + c.float.Path
		return nil, c.float
	}
	return b, nil
}

// memberStacks holds canonicalizer member stacks (empty, cleared slices).
var memberStacks = sync.Pool{New: func() any {
	s := make([]kv, 0, 32)
	return &s
}}

// PayloadHash is "sha256:" + lower-case hex SHA-256 of the canonical JSON of
// payload (events spec §9.1).
func PayloadHash(payload map[string]any) (string, error) {
	if payload == nil {
		return "", newError(CodeSchemaViolation, "$", "payload is missing; it must be a JSON object")
	}
	b, err := appendCanonicalDoc(make([]byte, 0, 512), payload)
	if err != nil {
		return "", err
	}
	return sha256Hex(b), nil
}

func sha256Hex(b []byte) string {
	return hashString(sha256.Sum256(b))
}

// hashString renders a SHA-256 sum as "sha256:" + lower-case hex in one
// allocation.
func hashString(sum [sha256.Size]byte) string {
	var out [7 + 2*sha256.Size]byte
	copy(out[:], "sha256:")
	hex.Encode(out[7:], sum[:])
	return string(out[:])
}

// canonicalizer walks one value. The first float it meets is remembered in
// float and reported only if nothing worse turns up, so that "not JSON"
// (invalid argument) wins over "float" (schema violation). Paths are built
// while unwinding, so the happy path allocates none.
type canonicalizer struct {
	float *Error
	// members is a stack of object members shared by every level: each
	// object sorts its members in its own top segment, so a document
	// allocates no slices per object.
	members []kv
}

func (c *canonicalizer) noteFloat(path, msg string) {
	if c.float == nil {
		c.float = newError(CodeSchemaViolation, path, msg)
	}
}

func (c *canonicalizer) append(b []byte, v any, depth int) ([]byte, *Error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case string:
		return appendCanonicalString(b, x)
	case json.Number:
		return c.appendNumber(b, string(x))
	case map[string]any:
		if depth >= MaxDepth {
			return nil, depthError()
		}
		if x == nil {
			return append(b, "null"...), nil
		}
		mark := len(c.members)
		for k, v := range x {
			c.members = append(c.members, kv{k, v})
		}
		members := c.members[mark:]
		sortMembers(members)
		// No defer (it would not be open-coded here): dropMembers runs on
		// every way out.
		b = append(b, '{')
		for i, mb := range members {
			k := mb.k
			if i > 0 {
				b = append(b, ',')
			}
			var err *Error
			if b, err = appendCanonicalString(b, k); err != nil {
				c.dropMembers(mark)
				err.Path = keySegment(k) + err.Path
				err.Message = "object key: " + err.Message
				return nil, err
			}
			b = append(b, ':')
			saved := c.float
			if b, err = c.append(b, mb.v, depth+1); err != nil {
				c.dropMembers(mark)
				err.Path = keySegment(k) + err.Path
				return nil, err
			}
			if saved == nil && c.float != nil {
				c.float.Path = keySegment(k) + c.float.Path
			}
		}
		c.dropMembers(mark)
		return append(b, '}'), nil
	case []any:
		if depth >= MaxDepth {
			return nil, depthError()
		}
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err *Error
			saved := c.float
			if b, err = c.append(b, e, depth+1); err != nil {
				err.Path = indexSegment(i) + err.Path
				return nil, err
			}
			if saved == nil && c.float != nil {
				c.float.Path = indexSegment(i) + c.float.Path
			}
		}
		return append(b, ']'), nil
	case []string:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err *Error
			if b, err = appendCanonicalString(b, s); err != nil {
				err.Path = indexSegment(i) + err.Path
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]string:
		if x == nil {
			return append(b, "null"...), nil
		}
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return c.append(b, m, depth)
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case float64, float32:
		c.noteFloat("", "floats are not allowed in payloads; send decimals as strings")
		return append(b, '0'), nil // placeholder; the float error is returned at the end
	default:
		return nil, newError(CodeInvalidArgument, "", fmt.Sprintf("a value of Go type %T is not JSON; use map[string]any, []any, string, json.Number, bool or nil", v))
	}
}

// sortMembers sorts object members by key in byte order: insertion sort
// for the few members of a typical object, slices.SortFunc otherwise.
// Keys of a map are distinct, so the order is total.
func sortMembers(ms []kv) {
	if len(ms) > 12 {
		slices.SortFunc(ms, func(a, b kv) int { return strings.Compare(a.k, b.k) })
		return
	}
	for i := 1; i < len(ms); i++ {
		m := ms[i]
		j := i
		for j > 0 && ms[j-1].k > m.k {
			ms[j] = ms[j-1]
			j--
		}
		ms[j] = m
	}
}

func depthError() *Error {
	return newError(CodeInvalidArgument, "", fmt.Sprintf("JSON nested deeper than %d levels; flatten the document", MaxDepth))
}

// appendNumber writes an integer literal canonically; a float literal is
// noted (see canonicalizer) and anything that is not a JSON number is an
// invalid argument.
// dropMembers clears and pops the member stack down to mark.
func (c *canonicalizer) dropMembers(mark int) {
	clear(c.members[mark:])
	c.members = c.members[:mark]
}

func (c *canonicalizer) appendNumber(b []byte, lit string) ([]byte, *Error) {
	switch numberKind(lit) {
	case numInteger:
		if lit == "-0" {
			return append(b, '0'), nil
		}
		return append(b, lit...), nil
	case numFloat:
		c.noteFloat("", fmt.Sprintf("number %s is a float; floats are not allowed in payloads, send decimals as strings", lit))
		return append(b, '0'), nil
	default:
		return nil, newError(CodeInvalidArgument, "", fmt.Sprintf("%q is not a JSON number", lit))
	}
}

type numKind int

const (
	numInvalid numKind = iota
	numInteger
	numFloat
)

// numberKind classifies a JSON number literal the way Python's json module
// does: an integer unless it has a fraction or an exponent. NaN and
// Infinity, which Python reads as floats, count as floats.
func numberKind(s string) numKind {
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return numFloat
	}
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return numInvalid
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return numInvalid
	}
	kind := numInteger
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return numInvalid
		}
		kind = numFloat
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return numInvalid
		}
		kind = numFloat
	}
	if i != len(s) {
		return numInvalid
	}
	return kind
}

const hexDigits = "0123456789abcdef"

// appendCanonicalString writes s as a JSON string with Python's
// ensure_ascii=False escaping. Invalid UTF-8 (including encoded surrogates)
// cannot come from JSON text and is rejected.
func appendCanonicalString(b []byte, s string) ([]byte, *Error) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return nil, newError(CodeInvalidArgument, "", fmt.Sprintf("string is not valid UTF-8 (bad byte 0x%02x at offset %d)", s[i], i))
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"'), nil
}

// keySegment is the JSON-path step to an object member: .name for simple
// names, ["..."] otherwise.
func keySegment(k string) string {
	if isSimpleName(k) {
		return "." + k
	}
	return "[" + strconv.Quote(k) + "]"
}

func indexSegment(i int) string { return "[" + strconv.Itoa(i) + "]" }

func isSimpleName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
