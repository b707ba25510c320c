package event

import (
	"strings"
	"testing"
	"time"
)

func TestEncodeEnvelopeKeepsNumbersAndText(t *testing.T) {
	env, err := DecodeEnvelope([]byte(strings.Replace(minimalEnvelope, `"workflow": "w"`,
		`"workflow": "<w&>", "n": -0, "big": 1234567890123456789012345678901234567890, "ls": "a\u2028b"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	env.Tags = nil
	b, eerr := EncodeEnvelope(env)
	if eerr != nil {
		t.Fatal(eerr)
	}
	s := string(b)
	for _, want := range []string{`"n":-0`, `"big":1234567890123456789012345678901234567890`, `"workflow":"<w&>"`, `"tags":[]`, `"subsystem":null`, `"schema_version":1`} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %s", s, want)
		}
	}
	if !strings.HasPrefix(s, `{"event_id":"e1","trace_id":"t1","trace_seq":0,`) || strings.HasSuffix(s, "\n") {
		t.Errorf("member order or trailing newline: %s", s)
	}
	back, derr := DecodeEnvelope(b)
	if derr != nil {
		t.Fatal(derr)
	}
	if back.Payload["ls"] != "a\u2028b" || back.Payload["big"] != env.Payload["big"] {
		t.Errorf("round trip changed the payload: %#v", back.Payload)
	}
}

func TestEncodeStoredEvent(t *testing.T) {
	e := chainEvent()
	e.RecordedAt = time.Date(2026, 3, 6, 10, 0, 0, 120000000, time.FixedZone("x", 3600))
	e.EventHash, e.ChainHash = "sha256:e", "sha256:c"
	b, err := EncodeStoredEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"recorded_at":"2026-03-06T09:00:00.120000Z"`, `"tenant_id":"t1"`, `"log_seq":1`, `"payload_hash":"` + renewalStartHash + `"`, `"event_hash":"sha256:e"`, `"chain_hash":"sha256:c"`, `"event_id":"e1"`} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %s", s, want)
		}
	}
	if got := FormatRecordedAt(time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)); got != "2026-01-02T03:04:05.000006Z" {
		t.Errorf("FormatRecordedAt %s", got)
	}
}
