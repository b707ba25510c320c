package event

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelEventsMin is the size from which DecodeEvents decodes the events
// of a file on every core.
const parallelEventsMin = 64 << 10

// decodeEventsSplit is DecodeEvents' fast path for event files: it finds
// the byte range of every element of the events array in one pass, then
// decodes the elements (fastParser) and maps them onto envelopes on every
// core. It checks the whole document as it goes: the text between and
// around the elements is checked here, each element by its own parser.
// ok is false when it cannot vouch for the answer (the document is not
// valid JSON, has no "events" array, has "events" twice, ...), and
// DecodeEvents then decodes the document as a whole, which gives the
// error. When ok, the envelopes, or the error of the first element that is
// not an envelope, are what the whole-document path gives.
func decodeEventsSplit(data []byte) (out []Envelope, err error, ok bool) {
	p := fastParser{data: data}
	p.ws()
	if p.i >= len(data) {
		return nil, nil, false
	}
	var elems [][2]int
	prefix, depth := "$", 1
	switch data[p.i] {
	case '[':
		if elems, ok = p.splitArray(); !ok {
			return nil, nil, false
		}
	case '{':
		prefix, depth = "$.events", 2
		found := false
		p.i++
		p.ws()
		if p.i < len(data) && data[p.i] == '}' {
			return nil, nil, false // no events member
		}
		for {
			if p.i >= len(data) || data[p.i] != '"' {
				return nil, nil, false
			}
			k, ok := p.str(maxInternKeys)
			if !ok {
				return nil, nil, false
			}
			p.ws()
			if p.i >= len(data) || data[p.i] != ':' {
				return nil, nil, false
			}
			p.i++
			p.ws()
			if k == "events" {
				if found || p.i >= len(data) || data[p.i] != '[' {
					return nil, nil, false
				}
				found = true
				if elems, ok = p.splitArray(); !ok {
					return nil, nil, false
				}
			} else if _, ok := p.value(1); !ok {
				return nil, nil, false
			}
			p.ws()
			if p.i >= len(data) {
				return nil, nil, false
			}
			if c := data[p.i]; c == ',' {
				p.i++
				p.ws()
				continue
			} else if c != '}' {
				return nil, nil, false
			}
			p.i++
			break
		}
		if !found {
			return nil, nil, false
		}
	default:
		return nil, nil, false
	}
	p.ws()
	if p.i != len(data) {
		return nil, nil, false
	}

	out = make([]Envelope, len(elems))
	errs := make([]*Error, len(elems))
	const chunk = 128
	chunks := (len(elems) + chunk - 1) / chunk
	var next atomic.Int64
	var bad atomic.Bool
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), chunks)
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			ep := new(fastParser)
			for !bad.Load() {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				first, end := c*chunk, min((c+1)*chunk, len(elems))
				// One immutable copy of the chunk's input: its decoded
				// strings without escapes are substrings of it rather than
				// one allocation each. (The decoded envelopes keep the copy
				// alive as long as any of those strings is.)
				base := elems[first][0]
				src := string(data[base:elems[end-1][1]])
				for i := first; i < end; i++ {
					ep.data, ep.i = data[elems[i][0]:elems[i][1]], 0
					ep.src = src[elems[i][0]-base : elems[i][1]-base]
					v, ok := ep.envelopeValue(depth)
					if !ok || ep.i != len(ep.data) {
						bad.Store(true)
						return
					}
					errs[i] = envelopeFromValue(&out[i], v, prefix, i)
					ep.release()
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() {
		return nil, nil, false
	}
	for _, e := range errs {
		if e != nil {
			return nil, e, true
		}
	}
	return out, nil, true
}

// splitArray steps over the array at p.i, checking the text between its
// elements and returning each element's byte range. The ranges are found by
// matching brackets outside strings; each is checked later by parsing it on
// its own, so a wrong guess on malformed input only makes that parse fail.
func (p *fastParser) splitArray() ([][2]int, bool) {
	d := p.data
	p.i++ // '['
	p.ws()
	elems := make([][2]int, 0, len(d)/1024+1)
	if p.i < len(d) && d[p.i] == ']' {
		p.i++
		return elems, true
	}
	for {
		start := p.i
		end, ok := skipElement(d, start)
		if !ok {
			return nil, false
		}
		elems = append(elems, [2]int{start, end})
		p.i = end
		p.ws()
		if p.i >= len(d) {
			return nil, false
		}
		if c := d[p.i]; c == ',' {
			p.i++
			p.ws()
			continue
		} else if c != ']' {
			return nil, false
		}
		p.i++
		return elems, true
	}
}

// skipElement returns the end of the JSON value starting at i, found
// without validating it: the matching bracket for an object or array, the
// closing quote for a string, the next delimiter for anything else.
func skipElement(d []byte, i int) (int, bool) {
	if i >= len(d) {
		return 0, false
	}
	switch d[i] {
	case '{', '[':
		depth := 0
		for j := i; j < len(d); j++ {
			switch d[j] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			case '"':
				end, ok := skipString(d, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			}
		}
		return 0, false
	case '"':
		return skipString(d, i)
	}
	j := i
	for j < len(d) {
		switch d[j] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return j, j > i
		}
		j++
	}
	return j, j > i
}

// skipString returns the index after the closing quote of the string
// whose opening quote is at i.
func skipString(d []byte, i int) (int, bool) {
	for j := i + 1; j < len(d); j++ {
		switch d[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// kvObject is a JSON object as its members in document order; a lookup
// takes the last member with the key, as decoding into a map does. The
// split decoder hands envelopes over in this form so the envelope, source
// and actor objects, which only the reader looks at, are never built as
// maps.
type kvObject []kv

func (o kvObject) get(key string) (any, bool) {
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].k == key {
			return o[i].v, true
		}
	}
	return nil, false
}

// envelopeValue parses one element of an events array at nesting depth
// depth like value(depth), except that an object, and its "source" and
// "actor" members when they are objects, come back as kvObjects living in
// the parser's scratch stacks. They are valid until release is called.
func (p *fastParser) envelopeValue(depth int) (v any, ok bool) {
	if p.i >= len(p.data) || p.data[p.i] != '{' {
		return p.value(depth)
	}
	return p.kvObjectValue(depth+1, true)
}

// kvObjectValue parses the object at p.i (nesting depth depth) into a
// kvObject on the scratch stacks; top selects the envelope level, whose
// source and actor members are parsed the same way.
func (p *fastParser) kvObjectValue(depth int, top bool) (any, bool) {
	if depth > MaxDepth {
		return nil, false
	}
	p.i++ // '{'
	p.ws()
	// The envelope's members go on kvs (above them, nested generic objects
	// come and go); source and actor go on sub, which is not truncated
	// until release, so the kvObjects handed out stay intact.
	stack := &p.sub
	if top {
		stack = &p.kvs
	}
	mark := len(*stack)
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
		return kvObject((*stack)[mark:mark:mark]), true
	}
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
		var v any
		if top && (k == "source" || k == "actor") && p.i < len(p.data) && p.data[p.i] == '{' {
			v, ok = p.kvObjectValue(depth+1, false)
		} else {
			v, ok = p.value(depth)
		}
		if !ok {
			return nil, false
		}
		*stack = append(*stack, kv{k, v})
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
	s := *stack
	return kvObject(s[mark:len(s):len(s)]), true
}

// release empties the scratch stacks after an envelope has been read.
func (p *fastParser) release() {
	clear(p.kvs)
	p.kvs = p.kvs[:0]
	clear(p.sub)
	p.sub = p.sub[:0]
}
