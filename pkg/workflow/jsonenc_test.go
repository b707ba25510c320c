package workflow

import (
	"encoding/json"
	"reflect"
	"testing"
)

// jsonText must store what json.Marshal would: the same value once parsed.
func TestJSONTextMatchesEncodingJSON(t *testing.T) {
	cases := []map[string]any{
		nil,
		{},
		{"a": "plain", "b": nil, "c": true, "d": false, "e": 3, "f": int64(-9), "g": json.Number("12.50")},
		{"quote": `say "hi"\n`, "ctl": "tab\there\x01", "html": "<a>&</a>", "uni": "café ☕ \u2028", "bad": "x\xffy"},
		{"list": []any{"x", 1, nil, []any{}, map[string]any{"k": "v"}}, "empty": []any{}, "nilList": []any(nil)},
		{"nested": map[string]any{"policy": map[string]any{"policy_id": "p", "policy_version": nil}}, "nilMap": map[string]any(nil)},
		{"float": 1.5, "strs": []string{"a", "b"}, "time": "2026-03-02T09:00:00Z"},
		{"k\"ey": "v", "ключ": "значение"},
	}
	for _, m := range cases {
		got := jsonText(m)
		want := "{}"
		if m != nil {
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			want = string(b)
		}
		var g, w any
		if err := json.Unmarshal([]byte(got), &g); err != nil {
			t.Fatalf("jsonText(%v) = %s: %v", m, got, err)
		}
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("jsonText(%v)\n got %s\nwant %s", m, got, want)
		}
	}
	// A value json.Marshal refuses gives "{}" as before.
	if got := jsonText(map[string]any{"n": json.Number("not-a-number")}); got != "{}" {
		t.Errorf("bad number: %s", got)
	}
	if got := jsonText(map[string]any{"c": make(chan int)}); got != "{}" {
		t.Errorf("channel: %s", got)
	}
}
