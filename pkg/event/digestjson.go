package event

import (
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Digest JSON is the text projection digests hash (events spec §9.2). It is
// Python's json.dumps(x, sort_keys=True, separators=(",", ":")) with the
// default ensure_ascii=True: the same as the payload canonical JSON of §8
// except that every character at or above U+007F is written as a lowercase
// \uXXXX escape (a UTF-16 surrogate pair outside the BMP). The two encodings
// must never be mixed up: payload hashes keep raw UTF-8, digests escape it.

const lowerHex = "0123456789abcdef"

// AppendDigestString appends s to dst as a digest-JSON string literal,
// quotes included. Invalid UTF-8 is written as \ufffd, which is what a
// string decoded from JSON would already contain.
func AppendDigestString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if digestPlain[c] {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // other controls and U+007F
				dst = appendU4(dst, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			r -= 0x10000
			dst = appendU4(dst, 0xd800+(r>>10))
			dst = appendU4(dst, 0xdc00+(r&0x3ff))
		} else {
			dst = appendU4(dst, r)
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// digestPlain marks the bytes AppendDigestString copies as they are:
// printable ASCII except `"` and `\`.
var digestPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		lowerHex[(r>>12)&0xf], lowerHex[(r>>8)&0xf], lowerHex[(r>>4)&0xf], lowerHex[r&0xf])
}

// AppendDigestJSON appends the digest JSON of v to dst. v is decoded JSON
// (map[string]any, []any, string, bool, nil, json.Number) or one of the Go
// integer types, []string, []map[string]any; a float or any other type is
// an error because the reference never digests one.
func AppendDigestJSON(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case string:
		return AppendDigestString(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case *big.Int:
		return x.Append(dst, 10), nil
	case json.Number:
		n, ok := new(big.Int).SetString(string(x), 10)
		if !ok {
			return dst, fmt.Errorf("digest json: number %q is not an integer", string(x))
		}
		// big.Int normalises "-0" to "0" as Python's int does.
		return n.Append(dst, 10), nil
	case []string:
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendDigestString(dst, s)
		}
		return append(dst, ']'), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendDigestJSON(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case []map[string]any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendDigestJSON(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		// Go compares strings bytewise, and UTF-8 byte order is code-point
		// order: exactly Python's sort_keys.
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendDigestString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = AppendDigestJSON(dst, x[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	default:
		return dst, fmt.Errorf("digest json: unsupported value of type %T", v)
	}
}

// DigestJSON returns the digest JSON of v (see AppendDigestJSON).
func DigestJSON(v any) ([]byte, error) {
	return AppendDigestJSON(nil, v)
}
