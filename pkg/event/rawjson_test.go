package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// legacyPayloadRender is what the API wrote for a stored payload before
// AppendStoredPayload: decode with UseNumber into a map (as the store
// does), encode without HTML escaping (EncodeStoredEvent), then the
// envelope writer's compaction with HTML escaping.
func legacyPayloadRender(src []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not an object")
	}
	return legacyValueRender(m)
}

func legacyValueRender(v any) ([]byte, error) {
	b, err := marshalCompact(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	json.HTMLEscape(&out, b)
	return out.Bytes(), nil
}

// checkPayload asserts the fast path's contract on src: when it answers,
// its bytes are the legacy rendering; wantFast says it must answer.
func checkPayload(t *testing.T, src []byte, wantFast bool) {
	t.Helper()
	got, ok := AppendStoredPayload([]byte("prefix"), src)
	if !ok {
		if wantFast {
			t.Errorf("fast path refused %q", src)
		}
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("prefix lost: %q", got)
	}
	got = got[len("prefix"):]
	want, err := legacyPayloadRender(src)
	if err != nil {
		t.Errorf("fast path rendered %q, which the decoding path refuses: %v", src, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("payload %q:\n fast   %q\n legacy %q", src, got, want)
	}
}

var rawStrings = []string{
	"", "plain", "é😀 ｡ 漢字", "<script>&amp;</script>", "\u2028\u2029 x \u2028", "\x00\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f",
	"\x7f DEL", `quote " backslash \ slash /`, "tab\tnewline\n", "\ufeff bom", "\U0010FFFF max",
	"mixed <\u2028>&\"\\\n😀",
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	all := append([]string{}, rawStrings...)
	all = append(all, "\xff invalid", "\xed\xa0\x80 surrogate", "trunc \xe2\x80", "\xc0\xaf overlong")
	for c := 0; c < 256; c++ {
		all = append(all, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"b")
	}
	for _, s := range all {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendJSONString(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s want %s", s, got, want)
		}
	}
}

func TestAppendStoredPayloadCanonical(t *testing.T) {
	fixed := []any{
		map[string]any{},
		map[string]any{"a": nil, "b": true, "c": false, "d": []any{}, "e": map[string]any{}},
		map[string]any{"big": json.Number("1234567890123456789012345678901234567890"), "neg": json.Number("-98765432109876543210987654321098765432"), "zero": json.Number("0")},
		map[string]any{"nested": []any{[]any{[]any{json.Number("1"), nil, "x"}}, map[string]any{"z": []any{}}}},
		map[string]any{"<key>&": "v", "é": "ü", "😀": "\u2028", "\u2029k": "\x00", "a\nb": "c\td", "ctrl\x1f": "\x1f", "q\"": "\\"},
		map[string]any{"tags": []any{"a", "b<c"}, "primary_entity": map[string]any{"system": "crm & <billing>", "id": "E-1"}},
	}
	for _, s := range rawStrings {
		fixed = append(fixed, map[string]any{"s": s, s: json.Number("7")})
	}
	for _, v := range fixed {
		canon, err := CanonicalJSON(v)
		if err != nil {
			t.Fatal(err)
		}
		// Keys with escapes (controls, quotes) are left to the decoding
		// path; every other canonical payload takes the fast path.
		checkPayload(t, canon, !keyHasEscape(v))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		v := randomObject(r, 0)
		canon, err := CanonicalJSON(v)
		if err != nil {
			t.Fatal(err)
		}
		checkPayload(t, canon, !keyHasEscape(v))
	}
}

func keyHasEscape(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			for i := 0; i < len(k); i++ {
				if k[i] < 0x20 || k[i] == '"' || k[i] == '\\' {
					return true
				}
			}
			if keyHasEscape(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if keyHasEscape(e) {
				return true
			}
		}
	}
	return false
}

var randomRunes = []rune{'a', 'Z', '0', ' ', '<', '>', '&', '"', '\\', '/', '\n', '\t', '\b', '\f', '\r', 0, 1, 0x1f, 0x7f,
	'é', 'ß', '漢', '😀', '\u2028', '\u2029', '\ufeff', '\U0010FFFF', 0xfffd}

func randomString(r *rand.Rand) string {
	var b strings.Builder
	for n := r.IntN(8); n > 0; n-- {
		b.WriteRune(randomRunes[r.IntN(len(randomRunes))])
	}
	return b.String()
}

func randomValue(r *rand.Rand, depth int) any {
	switch k := r.IntN(10); {
	case k == 0:
		return nil
	case k == 1:
		return r.IntN(2) == 0
	case k <= 3:
		digits := 1 + r.IntN(45)
		var b strings.Builder
		if r.IntN(3) == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(byte('1' + r.IntN(9)))
		for i := 1; i < digits; i++ {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		return json.Number(b.String())
	case k <= 6 || depth > 4:
		return randomString(r)
	case k <= 8:
		n := r.IntN(4)
		a := make([]any, n)
		for i := range a {
			a[i] = randomValue(r, depth+1)
		}
		return a
	}
	return randomObject(r, depth+1)
}

func randomObject(r *rand.Rand, depth int) map[string]any {
	m := map[string]any{}
	for n := r.IntN(6); n > 0; n-- {
		m[randomString(r)] = randomValue(r, depth)
	}
	return m
}

// TestAppendStoredPayloadNonCanonical feeds text the log never holds
// (whitespace, unsorted or duplicate keys, escapes encoding/json would not
// write, bad UTF-8, malformed JSON): the fast path either declines or
// agrees with the decoding path.
func TestAppendStoredPayloadNonCanonical(t *testing.T) {
	for _, s := range []string{
		`{ "a" : 1 , "b" : [ 1 , 2 ] }`, `{"b":1,"a":2}`, `{"a":1,"a":2}`, `{"a":"\u00e9"}`, `{"a":"\/"}`,
		`{"a":"\u001F"}`, `{"a":"\u001f"}`, `{"a":"\u000a"}`, `{"a":"\u003c"}`, `{"a\n":1}`, "{\"a\":\"\xff\"}",
		`{"a":"\ud83d\ude00"}`, `{"a":1.5}`, `{"a":1e5}`, `{"a":-0}`, `{"a":01}`, `{"a":1.}`, `{"a":tru}`,
		`{"a":1}x`, `{"a":1`, `[1]`, `null`, `"s"`, `{"a":[1,]}`, `{,}`, `{"a" 1}`, `{"a":1,}`,
		"{\"a\":\"\x01\"}", `{"a":"\x"}`, `{"a":"\u12"}`, strings.Repeat("[", 2000), `{"":1,"a":{"":[]}}`,
	} {
		checkPayload(t, []byte(s), false)
	}
	checkPayload(t, []byte(`{"a":{"b":[1,{"c":null}]},"d":"<&>"}`), true)
}

func FuzzAppendStoredPayload(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"a":"<\u2028>","b":[1,-2,{"c":"\u0001"}]}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		checkPayload(t, src, false)
		// The canonical text of whatever decodes must take the fast path
		// unless a key needs an escape.
		if v, err := DecodeValue(src); err == nil {
			if m, ok := v.(map[string]any); ok {
				if canon, err := CanonicalJSON(m); err == nil {
					checkPayload(t, canon, !keyHasEscape(m))
				}
			}
		}
	})
}

func TestAppendStoredTags(t *testing.T) {
	legacy := func(src []byte) ([]byte, error) {
		var tags []string
		if err := json.Unmarshal(src, &tags); err != nil {
			return nil, err
		}
		if tags == nil {
			tags = []string{}
		}
		return legacyValueRender(tags)
	}
	for _, s := range []string{`[]`, `null`, `["a"]`, `["a","b<c>&","é\u2028","\n\u0001"]`, ` [ "a" , "b" ] `,
		`[1]`, `["a",null]`, `{}`, `"a"`, `["a"`, `["\u00e9"]`, "[\"\xff\"]", `[]x`, `[,]`} {
		got, ok := AppendStoredTags(nil, []byte(s))
		want, err := legacy([]byte(s))
		if !ok {
			if err == nil && (s == `[]` || s == `null` || s == `["a"]`) {
				t.Errorf("tags %q refused", s)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("tags %q: got %q want %q (%v)", s, got, want, err)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 500; i++ {
		tags := make([]any, r.IntN(4))
		for j := range tags {
			tags[j] = randomString(r)
		}
		canon, err := CanonicalJSON(tags)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := AppendStoredTags(nil, canon)
		want, err := legacy(canon)
		if !ok || err != nil || !bytes.Equal(got, want) {
			t.Errorf("tags %q: ok=%v got %q want %q (%v)", canon, ok, got, want, err)
		}
	}
}

// TestAppendJSONStringWordBoundaries puts every byte at every position of
// a 24-byte run, so the eight-bytes-at-a-time scan meets each at each
// offset of a word.
func TestAppendJSONStringWordBoundaries(t *testing.T) {
	for c := 0; c < 256; c++ {
		for p := 0; p < 24; p++ {
			s := []byte(strings.Repeat("x", p) + string([]byte{byte(c)}) + strings.Repeat("y", 23-p))
			want, _ := json.Marshal(string(s))
			if got := AppendJSONString(nil, s); !bytes.Equal(got, want) {
				t.Fatalf("byte %#x at %d: got %s want %s", c, p, got, want)
			}
			payload := append(append([]byte(`{"k":"`), bytes.ReplaceAll(bytes.ReplaceAll(s, []byte(`\`), []byte(`\\`)), []byte(`"`), []byte(`\"`))...), `"}`...)
			checkPayload(t, payload, false)
		}
	}
}
