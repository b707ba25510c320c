package event

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/decisiongraph/dg/internal/fixtures"
)

// checkFastDecode holds fastDecode to decodeValueSlow (encoding/json behind
// the prescan): the same value when both accept, and the fast path accepts
// exactly what the slow one accepts.
func checkFastDecode(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := fastDecode(data)
	slow, err := decodeValueSlow(data)
	if ok != (err == nil) {
		t.Fatalf("fast path ok=%v, slow path error %v, for %q", ok, err, data)
	}
	if ok && !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast %#v, slow %#v, for %q", fast, slow, data)
	}
}

var fastDecodeCases = []string{
	``, ` `, `{}`, `[]`, `null`, `true`, `false`, `nul`, `tru`, `-`, `-0`, `0`, `01`, `-01`, `1.`, `1.0`, `.5`, `1e`, `1e+`, `1E-3`, `-0.0e0`,
	`123456789012345678901234567890`, `"\u0000\u001f\u007f\u2028"`, `"a\/b"`, `"\x"`, `"\u12"`, `"\u12G4"`,
	`{"b":1,"a":[1,{"d":null,"c":"é😀"}]}`, ` {"a" : [ 1 , 2 ] } `, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`,
	`{"a":1,"a":2}`, `{"a":{"x":1},"a":[2]}`, `{"\ud83d\ude00":"x","｡":"y"}`, `"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`, `"\ud83dx"`,
	`"\uD83D\uDE00"`, "\"\xff\"", "\"\xed\xa0\x80\"", "\"a\tb\"", "\"a\x7fb\"", `{} {}`, `{}x`, `[] `, "\ufeff{}",
	`"abc`, `{"a":1`, `[1`, `[[[[[[[[[[]]]]]]]]]]`, `{"s":"<>&/\\\"\b\f\n\r\t"}`, "\t\r\n[\t1\r]\n",
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth),
	strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1),
	`NaN`, `Infinity`, `-Infinity`, `+1`, `0x10`, `1_000`,
}

func TestFastDecodeMatchesEncodingJSON(t *testing.T) {
	for _, c := range fastDecodeCases {
		checkFastDecode(t, []byte(c))
	}
	for _, c := range jsonSeeds {
		checkFastDecode(t, []byte(c))
	}
	addFixtureSeeds(nil, func(b []byte) { checkFastDecode(t, b) })
	if dir, ok := fixtures.Find(); ok {
		files, _ := filepath.Glob(filepath.Join(dir, "*", "*", "events*.json"))
		for _, fn := range files {
			data, err := os.ReadFile(fn)
			if err != nil {
				t.Fatal(err)
			}
			checkFastDecode(t, data)
		}
	}
}

func FuzzFastDecode(f *testing.F) {
	for _, c := range fastDecodeCases {
		f.Add([]byte(c))
	}
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	addFixtureSeeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, data []byte) { checkFastDecode(t, data) })
}

// checkSplitEvents holds decodeEventsSplit to decodeEventsWhole: whenever
// the split path answers, it answers exactly what decoding the whole
// document gives (envelopes, or the same error).
func checkSplitEvents(t *testing.T, data []byte) bool {
	t.Helper()
	got, gerr, ok := decodeEventsSplit(data)
	if !ok {
		return false
	}
	want, werr := decodeEventsWhole(data)
	if !reflect.DeepEqual(gerr, werr) && !(gerr == nil && werr == nil) {
		t.Fatalf("split error %#v, whole %#v, for %.200q", gerr, werr, data)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("split and whole envelopes differ for %.200q", data)
	}
	return true
}

var splitEventsCases = []string{
	`[]`, `{"events":[]}`, `{}`, `{"events":{}}`, `{"events":[],"events":[]}`, `{"a":1,"events":[ ],"b":[{"c":"]"}]}`,
	`[1]`, `[{}]`, `["x"]`, `[[]]`, `[{},]`, `[,{}]`, `[{} {}]`, `[{}]x`, `[{"a":"}"}]`, `[{"a":"\"}"}]`, `[{"a":"\\"}]`,
	`{"events":[` + minimalEnvelope + `,` + minimalEnvelope + `]}`, `[` + minimalEnvelope + `]`,
	`{"events":[` + minimalEnvelope + `,{"event_id":1}]}`, `{"events":[{"event_id":1},` + minimalEnvelope + `]}`,
	`[` + minimalEnvelope + `,` + minimalEnvelope[:len(minimalEnvelope)-1] + `]`, `[{"a":[}]`, `[{"a":1}}]`, `[tru]`, `[true,null]`,
	`{"events":[` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `]}`,
	`{"events":[` + strings.Repeat("[", MaxDepth-2) + strings.Repeat("]", MaxDepth-2) + `]}`,
	`[` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `]`,
	`[` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `]`,
}

func TestDecodeEventsSplitMatchesWhole(t *testing.T) {
	for _, c := range splitEventsCases {
		checkSplitEvents(t, []byte(c))
	}
	answered := 0
	addFixtureSeeds(nil, func(b []byte) {
		for _, doc := range [][]byte{b, append(append([]byte(`{"x":[1],"events":[`), b...), `],"y":"z"}`...)} {
			if checkSplitEvents(t, doc) {
				answered++
			}
		}
	})
	if dir, ok := fixtures.Find(); ok {
		files, _ := filepath.Glob(filepath.Join(dir, "*", "*", "events*.json"))
		for _, fn := range files {
			data, err := os.ReadFile(fn)
			if err != nil {
				t.Fatal(err)
			}
			if !checkSplitEvents(t, data) {
				t.Errorf("%s: the split path did not answer", fn)
			}
			// A large file made of the fixture's events many times over,
			// with one broken event near the end: DecodeEvents takes the
			// split path and must report what the whole path reports.
			envs, err := DecodeEvents(data)
			if err != nil {
				t.Fatal(err)
			}
			var big bytes.Buffer
			big.WriteString(`{"events":[`)
			for i := 0; i < 400; i++ {
				for j := range envs {
					if i+j > 0 {
						big.WriteByte(',')
					}
					b, _ := EncodeEnvelope(&envs[j])
					if i == 399 && j == 0 {
						b = bytes.Replace(b, []byte(`"trace_seq":`), []byte(`"trace_seq":"x",`+`"t":`), 1)
					}
					big.Write(b)
				}
			}
			big.WriteString("]}")
			if !checkSplitEvents(t, big.Bytes()) {
				t.Errorf("%s x400: the split path did not answer", fn)
			}
			if _, err := DecodeEvents(big.Bytes()); err == nil || !strings.Contains(err.Error(), "trace_seq") {
				t.Errorf("%s x400: error %v", fn, err)
			}
		}
	}
}

func FuzzDecodeEventsSplit(f *testing.F) {
	for _, c := range splitEventsCases {
		f.Add([]byte(c))
	}
	addFixtureSeeds(f, func(b []byte) { f.Add(append(append([]byte(`{"events":[`), b...), `]}`...)) })
	f.Fuzz(func(t *testing.T, data []byte) { checkSplitEvents(t, data) })
}
