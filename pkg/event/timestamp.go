package event

import (
	"errors"
	"time"
)

// ParseOccurredAt parses an occurred_at value. dg accepts the RFC 3339
// date-time grammar with an upper-case "T" and "Z":
//
//	YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
//
// and rejects what time.Parse alone would let through (a comma before the
// fraction, offsets of 24 hours or more) as well as impossible dates and
// times. The value is still stored verbatim; this only decides whether it
// is acceptable and gives callers (SLA arithmetic, for instance) the
// instant it names.
func ParseOccurredAt(s string) (time.Time, error) {
	if !rfc3339Shape(s) {
		return time.Time{}, errors.New("not of the form YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)")
	}
	return time.Parse(time.RFC3339Nano, s)
}

// rfc3339Shape checks the grammar; time.Parse then checks the ranges.
func rfc3339Shape(s string) bool {
	const base = len("2006-01-02T15:04:05")
	if len(s) < base+1 {
		return false
	}
	for i := 0; i < base; i++ {
		c := s[i]
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 10:
			if c != 'T' {
				return false
			}
		case 13, 16:
			if c != ':' {
				return false
			}
		default:
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	rest := s[base:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" {
		return true
	}
	if len(rest) != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
		return false
	}
	for _, i := range []int{1, 2, 4, 5} {
		if rest[i] < '0' || rest[i] > '9' {
			return false
		}
	}
	hourOK := rest[1] < '2' || (rest[1] == '2' && rest[2] <= '3')
	minuteOK := rest[4] <= '5'
	return hourOK && minuteOK
}
