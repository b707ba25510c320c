package event

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAppendDigestStringEscapes(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"plain ascii 123", `"plain ascii 123"`},
		// Python's ensure_ascii=True output, checked with python3 json.dumps.
		{"\x7f\u00e9\u2028\U0001F600\x01\x1b\"\\/<>&\b\f\n\r\t", `"\u007f\u00e9\u2028\ud83d\ude00\u0001\u001b\"\\/<>&\b\f\n\r\t"`},
		{"\x00", `"\u0000"`},
		{"\x1f", `"\u001f"`},
		{" ~", `" ~"`},
		{"\uffff", `"\uffff"`},
		{"\U0010FFFF", `"\udbff\udfff"`},
		{"caf\u00e9 \u65e5\u672c", `"caf\u00e9 \u65e5\u672c"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
	}
	for _, c := range cases {
		got := string(AppendDigestString(nil, c.in))
		if got != c.want {
			t.Errorf("AppendDigestString(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestDigestJSONSortsKeysByCodePoint(t *testing.T) {
	// UTF-16 order would put U+FF61 after U+1F600's surrogates (0xD83D);
	// code-point order puts it first, as Python does.
	v := map[string]any{
		"\U0001F600": 1, "\uff61": 2, "b": []any{}, "a": map[string]any{}, "Z": nil, "é": true,
	}
	got, err := DigestJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Z":null,"a":{},"b":[],"\u00e9":true,"\uff61":2,"\ud83d\ude00":1}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestDigestJSONNumbers(t *testing.T) {
	big40 := "1234567890123456789012345678901234567890"
	got, err := DigestJSON([]any{json.Number(big40), json.Number("-0"), json.Number("-17"), int64(-5), 7})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[" + big40 + ",0,-17,-5,7]"; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	for _, bad := range []any{json.Number("1.0"), json.Number("1e3"), 1.5, struct{}{}} {
		if _, err := DigestJSON([]any{bad}); err == nil {
			t.Errorf("DigestJSON(%v) did not fail", bad)
		}
	}
}

func TestDigestJSONReferenceExample(t *testing.T) {
	// The support fixture's trace-summary row (events spec §9.7).
	row := map[string]any{
		"event_count": 2, "finished_at": "2025-12-31T11:00:07Z", "last_log_seq": 8,
		"outcome": "success", "primary_entity_id": "ZD-456", "primary_entity_type": "ticket",
		"started_at": "2025-12-31T11:00:00Z", "title": "Escalation for ticket ZD-456",
		"trace_id": "cccccccc-cccc-cccc-cccc-cccccccccccc", "workflow": "support_escalation",
	}
	got, err := DigestJSON([]map[string]any{row})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"event_count":2,"finished_at":"2025-12-31T11:00:07Z","last_log_seq":8,"outcome":"success","primary_entity_id":"ZD-456","primary_entity_type":"ticket","started_at":"2025-12-31T11:00:00Z","title":"Escalation for ticket ZD-456","trace_id":"cccccccc-cccc-cccc-cccc-cccccccccccc","workflow":"support_escalation"}]`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestDigestJSONIsASCII(t *testing.T) {
	var sb strings.Builder
	for r := rune(0); r < 0x11000; r += 7 {
		if r >= 0xd800 && r < 0xe000 {
			continue
		}
		sb.WriteRune(r)
	}
	out := AppendDigestString(nil, sb.String())
	for i, b := range out {
		if b < 0x20 || b >= 0x7f {
			t.Fatalf("byte %d of the output is %#x, not printable ASCII", i, b)
		}
	}
	// Round trip through encoding/json proves the escapes are valid JSON.
	var back string
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back != sb.String() {
		t.Error("digest string does not decode back to its input")
	}
}
