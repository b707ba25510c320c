package event

import (
	"encoding/json"
	"strings"
	"testing"
)

// mustDecode parses JSON text with the package decoder.
func mustDecode(t testing.TB, s string) any {
	t.Helper()
	v, err := DecodeValue([]byte(s))
	if err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

func canonicalString(t testing.TB, v any) string {
	t.Helper()
	b, err := CanonicalJSON(v)
	if err != nil {
		t.Fatalf("CanonicalJSON: %v", err)
	}
	return string(b)
}

func TestPayloadHashSpecExamples(t *testing.T) {
	cases := []struct {
		name, input, canonical, hash string
	}{
		{
			name:      "renewal TraceStarted",
			input:     `{"workflow": "renewal_discount", "title": "Renewal discount for sf:opp:123", "primary_entity": {"entity_type": "account", "entity_id": "sf:acct:001", "system": "salesforce"}}`,
			canonical: `{"primary_entity":{"entity_id":"sf:acct:001","entity_type":"account","system":"salesforce"},"title":"Renewal discount for sf:opp:123","workflow":"renewal_discount"}`,
			hash:      "sha256:dfc8d015d17ad8207da2ea0ce420691ab1df9e6eabc67856c6d3dca1fe9fc252",
		},
		{
			name:      "renewal TraceFinished",
			input:     `{"summary": "Discount 20% applied with Finance exception approval.", "outcome": "success"}`,
			canonical: `{"outcome":"success","summary":"Discount 20% applied with Finance exception approval."}`,
			hash:      "sha256:e9317943bdb165880456351605e9b7d3cef862a637ebb8ba8a4fc873705053ce",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := mustDecode(t, c.input).(map[string]any)
			if got := canonicalString(t, p); got != c.canonical {
				t.Errorf("canonical:\n got %s\nwant %s", got, c.canonical)
			}
			h, err := PayloadHash(p)
			if err != nil {
				t.Fatal(err)
			}
			if h != c.hash {
				t.Errorf("hash %s, want %s", h, c.hash)
			}
		})
	}
}

func TestCanonicalStrings(t *testing.T) {
	var controls strings.Builder
	for c := rune(0); c < 0x20; c++ {
		controls.WriteRune(c)
	}
	cases := []struct{ name, in, want string }{
		{"every control below U+0020", controls.String(),
			`"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f"`},
		{"escape lower-case hex", "\x1b[0m", `"\u001b[0m"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"slash raw", "a/b", `"a/b"`},
		{"html characters raw", "<a href='x'>&amp;</a>", `"<a href='x'>&amp;</a>"`},
		{"DEL raw", "\u007f", "\"\x7f\""},
		{"line and paragraph separators raw", "\u2028\u2029", "\"\xe2\x80\xa8\xe2\x80\xa9\""},
		{"emoji as four raw bytes", "😀", "\"\xf0\x9f\x98\x80\""},
		{"latin raw", "é", "\"\xc3\xa9\""},
		{"empty", "", `""`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := canonicalString(t, c.in); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestCanonicalDecodedEscapes(t *testing.T) {
	// JSON escapes in the input are decoded, then re-escaped canonically:
	// \u00e9 becomes raw é, \/ becomes /, \u001B becomes \u001b, a
	// surrogate pair becomes the raw emoji.
	got := canonicalString(t, mustDecode(t, `{"s":"\u00e9\/\u001B\ud83d\ude00\u2028"}`))
	want := "{\"s\":\"é/\\u001b😀\u2028\"}"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCanonicalKeyOrderIsCodePoint(t *testing.T) {
	// U+FF61 sorts before U+1F600 by code point but after it in UTF-16
	// order (0xD83D < 0xFF61); Python, and so dg, use code points.
	in := mustDecode(t, `{"😀":1,"｡":2,"a":3,"Z":4,"é":5,"":6,"aa":7,"n":{"b":[{"d":1,"c":2}],"a":null}}`)
	want := `{"":6,"Z":4,"a":3,"aa":7,"n":{"a":null,"b":[{"c":2,"d":1}]},"é":5,"｡":2,"😀":1}`
	if got := canonicalString(t, in); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestCanonicalScalarsAndContainers(t *testing.T) {
	cases := []struct{ in, want string }{
		{`true`, `true`},
		{`false`, `false`},
		{`null`, `null`},
		{`{}`, `{}`},
		{`[]`, `[]`},
		{`[1, [2, {}], "x", null]`, `[1,[2,{}],"x",null]`},
		{`{ "a" : [ ] , "b" : { } }`, `{"a":[],"b":{}}`},
		{`-0`, `0`},
		{`{"n":-0,"l":[-0,0]}`, `{"l":[0,0],"n":0}`},
		{`1234567890123456789012345678901234567890`, `1234567890123456789012345678901234567890`},
		{`-1234567890123456789012345678901234567890`, `-1234567890123456789012345678901234567890`},
		{`{"big":[99999999999999999999999999999999999999991]}`, `{"big":[99999999999999999999999999999999999999991]}`},
		{`{"a":1,"a":2}`, `{"a":2}`}, // duplicate keys: the last wins
	}
	for _, c := range cases {
		if got := canonicalString(t, mustDecode(t, c.in)); got != c.want {
			t.Errorf("%s: got %s, want %s", c.in, got, c.want)
		}
	}
}

func TestCanonicalGoValues(t *testing.T) {
	v := map[string]any{
		"i": 3, "i64": int64(-4), "u": uint64(18446744073709551615),
		"tags": []string{"b", "a"}, "ctx": map[string]string{"y": "1", "x": "2"},
	}
	want := `{"ctx":{"x":"2","y":"1"},"i":3,"i64":-4,"tags":["b","a"],"u":18446744073709551615}`
	if got := canonicalString(t, v); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestCanonicalRejectsFloatsAtAnyDepth(t *testing.T) {
	cases := []struct{ in, path string }{
		{`1.0`, "$"},
		{`1e3`, "$"},
		{`1E3`, "$"},
		{`-0.0`, "$"},
		{`0.0`, "$"},
		{`2e-5`, "$"},
		{`{"a":1.0}`, "$.a"},
		{`{"a":{"b":{"c":[1,2,1e3]}}}`, "$.a.b.c[2]"},
		{`[[[-0.0]]]`, "$[0][0][0]"},
		{`{"x y":[{"z":1.5}]}`, `$["x y"][0].z`},
		{`{"a":1,"b":[0,1.0],"c":2.5}`, "$.b[1]"}, // the first in key order
	}
	for _, c := range cases {
		_, err := CanonicalJSON(mustDecode(t, c.in))
		assertCode(t, c.in, err, CodeSchemaViolation, c.path)
	}
	for _, f := range []any{1.0, float32(2), map[string]any{"k": []any{0.5}}} {
		_, err := CanonicalJSON(f)
		if code, _ := CodeOf(err); code != CodeSchemaViolation {
			t.Errorf("Go float %v: got %v, want schema violation", f, err)
		}
	}
	for _, lit := range []string{"NaN", "Infinity", "-Infinity"} {
		_, err := CanonicalJSON(json.Number(lit))
		assertCode(t, lit, err, CodeSchemaViolation, "$")
	}
}

func TestCanonicalRejectsNonJSON(t *testing.T) {
	deep := any(map[string]any{})
	for i := 0; i < MaxDepth+1; i++ {
		deep = []any{deep}
	}
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	cases := []struct {
		name string
		v    any
		path string
	}{
		{"invalid UTF-8 value", map[string]any{"a": "\xff"}, "$.a"},
		{"encoded surrogate", []any{"\xed\xa0\x80"}, "$[0]"},
		{"invalid UTF-8 key", map[string]any{"\xfe": "x"}, `$["\xfe"]`},
		{"malformed number", map[string]any{"n": json.Number("01")}, "$.n"},
		{"number with plus", json.Number("+1"), "$"},
		{"empty number", json.Number(""), "$"},
		{"unsupported type", map[string]any{"c": make(chan int)}, "$.c"},
		{"struct", struct{}{}, "$"},
		{"too deep", deep, ""},
		{"cycle", cyclic, ""},
		// Not JSON outranks a float seen earlier (reference steps 2 before 5).
		{"not JSON wins over float", map[string]any{"a": 1.5, "b": "\xff"}, "$.b"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := CanonicalJSON(c.v)
			if c.path == "" {
				if code, _ := CodeOf(err); code != CodeInvalidArgument {
					t.Fatalf("got %v, want invalid argument", err)
				}
				return
			}
			assertCode(t, c.name, err, CodeInvalidArgument, c.path)
		})
	}
}

func TestCanonicalDepthLimitIsExact(t *testing.T) {
	nest := func(n int) any {
		var v any = json.Number("1")
		for i := 0; i < n; i++ {
			v = []any{v}
		}
		return v
	}
	if _, err := CanonicalJSON(nest(MaxDepth)); err != nil {
		t.Errorf("%d levels: %v", MaxDepth, err)
	}
	if _, err := CanonicalJSON(nest(MaxDepth + 1)); err == nil {
		t.Errorf("%d levels accepted", MaxDepth+1)
	}
}

func TestPayloadHashNil(t *testing.T) {
	if _, err := PayloadHash(nil); err == nil {
		t.Error("nil payload hashed")
	}
	h, err := PayloadHash(map[string]any{})
	if err != nil || h != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Errorf("empty payload: %s %v", h, err)
	}
}

// assertCode checks that err is an *Error with the given code and path.
func assertCode(t testing.TB, what string, err error, code Code, path string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s at %s", what, code, path)
		return
	}
	e, ok := err.(*Error)
	if !ok {
		t.Errorf("%s: error %T %v is not *Error", what, err, err)
		return
	}
	if e.Code != code || e.Path != path {
		t.Errorf("%s: got %s at %q (%s), want %s at %q", what, e.Code, e.Path, e.Message, code, path)
	}
}
