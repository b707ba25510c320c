package event

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// This file renders stored JSON text (payloads and tags as the log keeps
// them) straight into a response, without decoding it into maps and
// encoding it again. The output is byte for byte what encoding/json with
// HTML escaping on (json.Marshal's default, and what the API's envelope
// writer produces) makes of the decoded value: objects with their members
// sorted by key, strings with encoding/json's escapes, and number
// literals as written. The stored canonical text (CanonicalJSON) is
// already in that shape except for `<`, `>`, `&`, U+2028 and U+2029, so the
// common case is a copy with a few escapes. Anything the fast walk cannot
// prove identical (keys out of order or with escapes, an escape
// encoding/json would not write, invalid UTF-8, malformed or deeply nested
// JSON) makes it report false, and the caller takes the decoding path.

// rawMaxDepth bounds the walk; deeper documents take the decoding path.
const rawMaxDepth = 1000

const rawHex = "0123456789abcdef"

// htmlSafe marks the ASCII bytes encoding/json writes unescaped with
// HTML escaping on: printable ASCII except `"`, `\`, `<`, `>` and `&`.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// safePrefix is the length of s's prefix of bytes encoding/json writes as
// they are (htmlSafe ASCII), eight bytes at a time while it can.
func safePrefix(s []byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		// Any byte >= 0x80, < 0x20, or one of " \ < > & stops the run.
		// (v-lo)&^v&hi is non-zero exactly when some byte of v is zero.
		q, bs, lt, gt, am := x^(lo*'"'), x^(lo*'\\'), x^(lo*'<'), x^(lo*'>'), x^(lo*'&')
		special := x | ((x - lo*0x20) &^ x) |
			((q - lo) &^ q) | ((bs - lo) &^ bs) | ((lt - lo) &^ lt) | ((gt - lo) &^ gt) | ((am - lo) &^ am)
		if special&hi != 0 {
			break
		}
	}
	for i < len(s) && s[i] < utf8.RuneSelf && htmlSafe[s[i]] {
		i++
	}
	return i
}

// AppendJSONString appends s as a JSON string exactly as encoding/json
// writes a Go string with HTML escaping on: `"` and `\` backslashed,
// \b \f \n \r \t short, other controls and `<` `>` `&` as \u00xx, U+2028
// and U+2029 as \u2028 and \u2029, invalid UTF-8 bytes as \ufffd.
func AppendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		i += safePrefix(s[i:])
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
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
			default:
				dst = append(dst, '\\', 'u', '0', '0', rawHex[c>>4], rawHex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', rawHex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendStoredPayload appends the stored JSON text of a payload (a JSON
// object) as encoding/json would render its decoded value with HTML
// escaping on. ok is false, with dst unspecified beyond its original
// length, when src is not in the shape the fast walk handles; the caller
// then decodes the payload instead.
func AppendStoredPayload(dst, src []byte) (out []byte, ok bool) {
	w := rawWalker{src: src, dst: dst}
	w.ws()
	if w.i >= len(src) || src[w.i] != '{' {
		return dst, false
	}
	if !w.value(0) {
		return dst, false
	}
	w.ws()
	if w.i != len(src) {
		return dst, false
	}
	return w.dst, true
}

// AppendStoredTags appends stored tags text (a JSON array of strings, or
// null for none) as encoding/json renders the decoded []string with HTML
// escaping on (null as []). ok is false for anything else.
func AppendStoredTags(dst, src []byte) (out []byte, ok bool) {
	w := rawWalker{src: src, dst: dst}
	w.ws()
	if bytes.Equal(src[w.i:], []byte("null")) {
		return append(dst, '[', ']'), true
	}
	if w.i >= len(src) || src[w.i] != '[' {
		return dst, false
	}
	w.i++
	w.dst = append(w.dst, '[')
	w.ws()
	if w.i < len(src) && src[w.i] == ']' {
		w.i++
	} else {
		for {
			w.ws()
			if w.i >= len(src) || src[w.i] != '"' || !w.str(false) {
				return dst, false
			}
			w.ws()
			if w.i >= len(src) {
				return dst, false
			}
			if src[w.i] == ',' {
				w.i++
				w.dst = append(w.dst, ',')
				continue
			}
			if src[w.i] != ']' {
				return dst, false
			}
			w.i++
			break
		}
	}
	w.dst = append(w.dst, ']')
	w.ws()
	if w.i != len(src) {
		return dst, false
	}
	return w.dst, true
}

type rawWalker struct {
	src []byte
	i   int
	dst []byte
}

func (w *rawWalker) ws() {
	for w.i < len(w.src) {
		switch w.src[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

func (w *rawWalker) value(depth int) bool {
	if w.i >= len(w.src) {
		return false
	}
	switch c := w.src[w.i]; {
	case c == '{':
		return depth < rawMaxDepth && w.object(depth+1)
	case c == '[':
		return depth < rawMaxDepth && w.array(depth+1)
	case c == '"':
		return w.str(false)
	case c == '-' || (c >= '0' && c <= '9'):
		return w.number()
	case c == 't':
		return w.literal("true")
	case c == 'f':
		return w.literal("false")
	case c == 'n':
		return w.literal("null")
	}
	return false
}

func (w *rawWalker) literal(lit string) bool {
	if len(w.src)-w.i < len(lit) || string(w.src[w.i:w.i+len(lit)]) != lit {
		return false
	}
	w.dst = append(w.dst, lit...)
	w.i += len(lit)
	return true
}

// number copies a JSON number literal verbatim (encoding/json writes a
// json.Number as its literal) after checking its grammar.
func (w *rawWalker) number() bool {
	s, i := w.src, w.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	w.dst = append(w.dst, s[w.i:i]...)
	w.i = i
	return true
}

func (w *rawWalker) array(depth int) bool {
	w.i++ // [
	w.dst = append(w.dst, '[')
	w.ws()
	if w.i < len(w.src) && w.src[w.i] == ']' {
		w.i++
		w.dst = append(w.dst, ']')
		return true
	}
	for {
		w.ws()
		if !w.value(depth) {
			return false
		}
		w.ws()
		if w.i >= len(w.src) {
			return false
		}
		switch w.src[w.i] {
		case ',':
			w.i++
			w.dst = append(w.dst, ',')
		case ']':
			w.i++
			w.dst = append(w.dst, ']')
			return true
		default:
			return false
		}
	}
}

// object copies an object whose keys are strictly increasing in byte
// order and free of escapes: then the decoded map has the same members and
// encoding/json's sorted output has the same order. Anything else (a
// duplicate, which decoding would collapse, or an escaped key, whose
// decoded order may differ) is left to the decoding path.
func (w *rawWalker) object(depth int) bool {
	w.i++ // {
	w.dst = append(w.dst, '{')
	w.ws()
	if w.i < len(w.src) && w.src[w.i] == '}' {
		w.i++
		w.dst = append(w.dst, '}')
		return true
	}
	var prev []byte
	first := true
	for {
		w.ws()
		if w.i >= len(w.src) || w.src[w.i] != '"' {
			return false
		}
		kstart := w.i + 1
		if !w.str(true) {
			return false
		}
		key := w.src[kstart : w.i-1]
		if !first && bytes.Compare(prev, key) >= 0 {
			return false
		}
		prev, first = key, false
		w.ws()
		if w.i >= len(w.src) || w.src[w.i] != ':' {
			return false
		}
		w.i++
		w.dst = append(w.dst, ':')
		w.ws()
		if !w.value(depth) {
			return false
		}
		w.ws()
		if w.i >= len(w.src) {
			return false
		}
		switch w.src[w.i] {
		case ',':
			w.i++
			w.dst = append(w.dst, ',')
		case '}':
			w.i++
			w.dst = append(w.dst, '}')
			return true
		default:
			return false
		}
	}
}

// str copies the string at w.i (its opening quote), re-escaping what
// encoding/json escapes and the stored text may hold raw (`<`, `>`, `&`,
// U+2028, U+2029). It accepts only the escapes encoding/json itself
// writes (\" \\ \b \f \n \r \t, and \u00xx in lower-case hex for the other
// controls), so that copying them keeps the output identical; noEscapes
// refuses any backslash (object keys).
func (w *rawWalker) str(noEscapes bool) bool {
	s := w.src
	i := w.i + 1
	w.dst = append(w.dst, '"')
	start := i
	for i < len(s) {
		i += safePrefix(s[i:])
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				w.dst = append(w.dst, s[start:i]...)
				w.dst = append(w.dst, '"')
				w.i = i + 1
				return true
			case '<', '>', '&':
				w.dst = append(w.dst, s[start:i]...)
				w.dst = append(w.dst, '\\', 'u', '0', '0', rawHex[c>>4], rawHex[c&0xF])
				i++
				start = i
				continue
			case '\\':
				if noEscapes || i+1 >= len(s) {
					return false
				}
				switch s[i+1] {
				case '"', '\\', 'b', 'f', 'n', 'r', 't':
					i += 2
					continue
				case 'u':
					if !goControlEscape(s[i:]) {
						return false
					}
					i += 6
					continue
				}
				return false
			}
			return false // a raw control character: not JSON
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if r == '\u2028' || r == '\u2029' {
			w.dst = append(w.dst, s[start:i]...)
			w.dst = append(w.dst, '\\', 'u', '2', '0', '2', rawHex[r&0xF])
			start = i + size
		}
		i += size
	}
	return false // unterminated
}

// goControlEscape reports whether e starts with a \u00xx escape (lower-case
// hex) of a control character that encoding/json writes in that form, that
// is below U+0020 and not one of \b \f \n \r \t.
func goControlEscape(e []byte) bool {
	if len(e) < 6 || e[2] != '0' || e[3] != '0' || (e[4] != '0' && e[4] != '1') {
		return false
	}
	var lo byte
	switch d := e[5]; {
	case d >= '0' && d <= '9':
		lo = d - '0'
	case d >= 'a' && d <= 'f':
		lo = d - 'a' + 10
	default:
		return false
	}
	c := (e[4]-'0')<<4 | lo
	switch c {
	case '\b', '\f', '\n', '\r', '\t':
		return false
	}
	return true
}
