package event

import (
	"testing"
	"time"
)

func TestParseOccurredAt(t *testing.T) {
	good := map[string]time.Time{
		"2025-12-31T10:00:00Z":                time.Date(2025, 12, 31, 10, 0, 0, 0, time.UTC),
		"2025-12-31T10:00:00.123456Z":         time.Date(2025, 12, 31, 10, 0, 0, 123456000, time.UTC),
		"2025-12-31T12:00:00+02:00":           time.Date(2025, 12, 31, 10, 0, 0, 0, time.UTC),
		"2025-12-31T02:30:00-07:30":           time.Date(2025, 12, 31, 10, 0, 0, 0, time.UTC),
		"2025-12-31T10:00:00.5+23:59":         time.Date(2025, 12, 30, 10, 1, 0, 500000000, time.UTC),
		"2024-02-29T00:00:00Z":                time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		"2025-12-31T10:00:00.000000001Z":      time.Date(2025, 12, 31, 10, 0, 0, 1, time.UTC),
		"0001-01-01T00:00:00Z":                time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		"2025-12-31T10:00:00.999999999-00:00": time.Date(2025, 12, 31, 10, 0, 0, 999999999, time.UTC),
	}
	for s, want := range good {
		got, err := ParseOccurredAt(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
		// Whatever dg accepts, the rest of dg can parse with the stdlib.
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("%s: accepted here but time.Parse(RFC3339) fails: %v", s, err)
		}
	}
	bad := []string{
		"", "yesterday", "2025-12-31", "2025-12-31T10:00:00", "2025-12-31T10:00Z",
		"2025-12-31t10:00:00z", "2025-12-31T10:00:00z", "2025-12-31 10:00:00Z",
		"2025-12-31T10:00:00,5Z", "2025-12-31T10:00:00.Z", "2025-12-31T10:00:00+0100",
		"2025-12-31T10:00:00+24:00", "2025-12-31T10:00:00+01:60", "2025-12-31T10:00:00+1:00",
		"2025-02-30T10:00:00Z", "2025-13-01T00:00:00Z", "2025-12-31T24:00:00Z",
		"2025-12-31T10:60:00Z", "+2025-12-31T10:00:00Z", "2025-12-31T10:00:00Z ",
		"２０２５-12-31T10:00:00Z", "2025-12-31T10:00:00ZZ",
	}
	for _, s := range bad {
		if _, err := ParseOccurredAt(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
