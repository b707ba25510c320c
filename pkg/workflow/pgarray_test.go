package workflow

import (
	"context"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
)

// Arrays built by pgArray read back as the values that went in: text with
// NULLs and non-ASCII, JSON, timestamps (microseconds), bigints.
func TestPGArrayRoundTrip(t *testing.T) {
	pool := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ts := []time.Time{time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC), {}, time.Date(1969, 7, 20, 20, 17, 40, 0, time.FixedZone("x", 3600))}
	txt, js, tm, num := newPGArray(oidText, 3, 8), newPGArray(oidText, 3, 8), newPGArray(oidTimestamptz, 3, 8), newPGArray(oidInt8, 3, 8)
	for k, s := range []string{"plain", "", "ünï \"q\" \\ 😀"} {
		txt.textOrNull(s)
		js.json(map[string]any{"s": s, "n": k})
		tm.time(ts[k])
		num.int8OrNull(int64(k) * 1 << 40)
	}
	rows, err := execArrays(ctx, pool, `SELECT concat_ws('|', coalesce(t, 'NULL'), (j::jsonb)->>'s', (j::jsonb)->>'n', coalesce(to_char(d AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), 'NULL'), coalesce(n::text, 'NULL'))
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[]) WITH ORDINALITY AS u(t, j, d, n, o) ORDER BY o`, []*pgArray{txt, js, tm, num})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"plain|plain|0|2026-03-02 09:00:00.123456|NULL",
		"NULL||1|NULL|1099511627776",
		"ünï \"q\" \\ 😀|ünï \"q\" \\ 😀|2|1969-07-20 19:17:40.000000|2199023255552",
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %q", rows)
	}
	for k := range want {
		if rows[k] != want[k] {
			t.Errorf("row %d = %q, want %q", k, rows[k], want[k])
		}
	}
}
