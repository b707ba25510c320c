package workflow

import (
	"reflect"
	"strings"
	"testing"
)

var decodeSamples = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":-0.5e+10,"b":[1,2,{"c":null}],"d":true,"e":false,"f":"x"}`,
	`{"evidence":[{"locator":"crm://1"}],"exception_id":"ex-1","policy":{"policy_id":"discount_limit","policy_version":"v3"}}`,
	`{"s":"esc \" \\ \/ \n \u00e9 \ud83d\ude00","k\u0041":"v"}`, `{"u":"café ☕"}`, "{\"bad\":\"x\xffy\"}",
	`{"a":1,"a":2}`, `{"n":12345678901234567890123}`, `{"n":0}`, `{"n":-0}`, `{"n":1E5}`,
	"{\"ws\" :\t[ 1 ,\r\n 2 ] }", `{"a":1} trailing`, `{"a":1}{"b":2}`,
	``, `null`, `[]`, `"s"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`,
	`{"a":1e}`, `{"a":tru}`, `{"a":nul}`, "{\"a\":\"ctl\x01\"}", `{"a":"unterminated}`, `{"a":[1,2}`, `{"a":"\x"}`,
	`{"a":"\u12"}`, `{'a':1}`, `{"a":1 "b":2}`, "\ufeff{}",
	`{"deep":` + strings.Repeat(`[`, 1200) + strings.Repeat(`]`, 1200) + `}`,
	`{"deep":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200) + `}`,
}

// decodeObject gives what encoding/json (UseNumber) gives, for valid and
// invalid documents alike.
func TestDecodeObjectMatchesEncodingJSON(t *testing.T) {
	for _, s := range decodeSamples {
		got, want := decodeObject([]byte(s)), decodeObjectStd([]byte(s))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decodeObject(%.80q)\n got %#v\nwant %#v", s, got, want)
		}
	}
}

func FuzzDecodeObject(f *testing.F) {
	for _, s := range decodeSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := decodeObject(b), decodeObjectStd(b)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeObject(%q)\n got %#v\nwant %#v", b, got, want)
		}
	})
}
