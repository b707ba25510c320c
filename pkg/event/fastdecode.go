package event

import (
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// fastDecode is DecodeValue's fast path: a hand-written parser that builds
// exactly the value encoding/json with UseNumber builds (map[string]any,
// []any, string, json.Number with the literal as written, bool, nil; the
// last of duplicate keys wins) and accepts exactly what DecodeValue
// accepts. It gives up (ok false) on anything DecodeValue would reject or
// that it is not sure about (invalid UTF-8, lone surrogate escapes, control
// characters in strings, nesting beyond MaxDepth, trailing data, any
// syntax error); DecodeValue then runs the original encoding/json path,
// which produces the error. So it only changes speed, never an answer: a
// fuzz test holds the two paths to the same values and the same failures.
func fastDecode(data []byte) (any, bool) {
	p := fastParser{data: data}
	p.ws()
	v, ok := p.value(0)
	if !ok {
		return nil, false
	}
	p.ws()
	if p.i != len(p.data) {
		return nil, false
	}
	return v, true
}

type kv struct {
	k string
	v any
}

// fastParser holds the input, the position and scratch stacks reused by
// every object and array of the document, so building a container
// allocates only the container itself.
type fastParser struct {
	data []byte
	i    int
	kvs  []kv
	sub  []kv // see kvObjectValue
	vals []any
	buf  []byte // unescaping scratch
	// cache interns short strings (see intern).
	cache [251]string
	// src, when not "", holds the same bytes as data: strings without
	// escapes (and number literals) are then substrings of it instead of
	// copies, so the values share src's memory (DecodeEvents).
	src string
}

// Strings up to these lengths are interned.
const (
	maxInternLen  = 16
	maxInternKeys = 32
)

func (p *fastParser) ws() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) value(depth int) (any, bool) {
	if p.i >= len(p.data) {
		return nil, false
	}
	switch c := p.data[p.i]; c {
	case '{':
		return p.object(depth + 1)
	case '[':
		return p.array(depth + 1)
	case '"':
		s, ok := p.str(maxInternLen)
		if !ok {
			return nil, false
		}
		return s, true
	case 't':
		return true, p.lit("true")
	case 'f':
		return false, p.lit("false")
	case 'n':
		return nil, p.lit("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.number()
		}
		return nil, false
	}
}

func (p *fastParser) lit(s string) bool {
	if len(p.data)-p.i < len(s) || string(p.data[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

func (p *fastParser) number() (any, bool) {
	d, start := p.data, p.i
	i := p.i
	if d[i] == '-' {
		i++
	}
	if i >= len(d) {
		return nil, false
	}
	switch {
	case d[i] == '0':
		i++
	case d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			return nil, false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			return nil, false
		}
	}
	p.i = i
	if p.src != "" {
		return json.Number(p.src[start:i]), true
	}
	return json.Number(p.intern(d[start:i], maxInternLen)), true
}

func (p *fastParser) object(depth int) (any, bool) {
	if depth > MaxDepth {
		return nil, false
	}
	p.i++ // '{'
	p.ws()
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
		return map[string]any{}, true
	}
	mark := len(p.kvs)
	for {
		if p.i >= len(p.data) || p.data[p.i] != '"' {
			return nil, false
		}
		k, ok := p.str(maxInternKeys)
		if !ok {
			return nil, false
		}
		p.ws()
		if p.i >= len(p.data) || p.data[p.i] != ':' {
			return nil, false
		}
		p.i++
		p.ws()
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		p.kvs = append(p.kvs, kv{k, v})
		p.ws()
		if p.i >= len(p.data) {
			return nil, false
		}
		if c := p.data[p.i]; c == ',' {
			p.i++
			p.ws()
			continue
		} else if c != '}' {
			return nil, false
		}
		p.i++
		break
	}
	members := p.kvs[mark:]
	m := make(map[string]any, len(members))
	for _, e := range members {
		m[e.k] = e.v // duplicate keys: the last one wins, as in encoding/json
	}
	clear(members)
	p.kvs = p.kvs[:mark]
	return m, true
}

func (p *fastParser) array(depth int) (any, bool) {
	if depth > MaxDepth {
		return nil, false
	}
	p.i++ // '['
	p.ws()
	if p.i < len(p.data) && p.data[p.i] == ']' {
		p.i++
		return []any{}, true
	}
	mark := len(p.vals)
	for {
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		p.vals = append(p.vals, v)
		p.ws()
		if p.i >= len(p.data) {
			return nil, false
		}
		if c := p.data[p.i]; c == ',' {
			p.i++
			p.ws()
			continue
		} else if c != ']' {
			return nil, false
		}
		p.i++
		break
	}
	elems := p.vals[mark:]
	out := make([]any, len(elems))
	copy(out, elems)
	clear(elems)
	p.vals = p.vals[:mark]
	return out, true
}

// str reads a string starting at its opening quote. Strings up to
// internLen bytes are interned.
func (p *fastParser) str(internLen int) (string, bool) {
	d := p.data
	i := p.i + 1
	start := i
	for i < len(d) {
		c := d[i]
		if c == '"' {
			p.i = i + 1
			if p.src != "" {
				return p.src[start:i], true
			}
			return p.intern(d[start:i], internLen), true
		}
		if c == '\\' {
			return p.strEscaped(start, i, internLen)
		}
		if c < 0x20 {
			return "", false
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(d[i:])
		if r == utf8.RuneError && size == 1 {
			return "", false
		}
		i += size
	}
	return "", false
}

// strEscaped continues str from the first backslash at i, unescaping into
// the scratch buffer.
func (p *fastParser) strEscaped(start, i, internLen int) (string, bool) {
	d := p.data
	b := append(p.buf[:0], d[start:i]...)
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.i = i + 1
			p.buf = b
			return p.intern(b, internLen), true
		case c == '\\':
			if i+1 >= len(d) {
				return "", false
			}
			switch d[i+1] {
			case '"', '\\', '/':
				b = append(b, d[i+1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(d, i+2)
				if !ok {
					return "", false
				}
				i += 6
				if r >= 0xD800 && r <= 0xDFFF {
					// Only a high surrogate followed by an escaped low one
					// is Unicode; DecodeValue rejects anything else.
					if r >= 0xDC00 || i+1 >= len(d) || d[i] != '\\' || d[i+1] != 'u' {
						return "", false
					}
					lo, ok := hex4(d, i+2)
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return "", false
					}
					r = utf16.DecodeRune(r, lo)
					i += 6
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				return "", false
			}
			i += 2
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			b = append(b, d[i:i+size]...)
			i += size
		}
	}
	return "", false
}

// intern returns b as a string, sharing one copy of each short string
// through a small direct-mapped cache (no hashing: a slot is chosen by the
// length and three bytes), so the keys and common values of many similar
// objects are allocated once. A slot holds the last string that mapped to
// it; a miss just allocates.
func (p *fastParser) intern(b []byte, maxLen int) string {
	n := len(b)
	if n > maxLen || n == 0 {
		return string(b)
	}
	slot := (uint(n)*31 + uint(b[0])*7 + uint(b[n/2])*3 + uint(b[n-1])) % uint(len(p.cache))
	if s := p.cache[slot]; s == string(b) {
		return s
	}
	s := string(b)
	p.cache[slot] = s
	return s
}
