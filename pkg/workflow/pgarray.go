package workflow

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Element and array type OIDs of the bulk-write parameters.
const (
	oidText             = 25
	oidTimestamptz      = 1184
	oidInt8             = 20
	oidTextArray        = 1009
	oidTimestamptzArray = 1185
	oidInt8Array        = 1016
)

// pgArray builds a one-dimensional array parameter in PostgreSQL's binary
// format, element by element, without boxing each value (bulk writes send
// tens of thousands of values per statement).
type pgArray struct {
	buf     []byte
	n       int
	hasNull bool
	elem    uint32
	// jsonb: json values carry jsonb's binary version byte (COPY into a
	// jsonb column); array elements are text cast to jsonb instead.
	jsonb bool
}

const pgArrayHeader = 20 // ndim, has-null flag, element OID, length, lower bound

func newPGArray(elem uint32, n, avg int) *pgArray {
	return &pgArray{elem: elem, buf: make([]byte, pgArrayHeader, pgArrayHeader+n*(4+avg))}
}

func (a *pgArray) null() {
	a.buf = binary.BigEndian.AppendUint32(a.buf, 0xffffffff) // length -1
	a.hasNull = true
	a.n++
}

// text adds s (never NULL).
func (a *pgArray) text(s string) {
	a.buf = binary.BigEndian.AppendUint32(a.buf, uint32(len(s)))
	a.buf = append(a.buf, s...)
	a.n++
}

// textOrNull adds s, NULL when empty.
func (a *pgArray) textOrNull(s string) {
	if s == "" {
		a.null()
		return
	}
	a.text(s)
}

// json adds m as JSON text for a jsonb column ("{}" for nil or when a
// value cannot be encoded, like jsonText).
func (a *pgArray) json(m map[string]any) {
	at := len(a.buf)
	a.buf = append(a.buf, 0, 0, 0, 0)
	if a.jsonb {
		a.buf = append(a.buf, 1)
	}
	start := len(a.buf)
	ok := m != nil
	if ok {
		a.buf, ok = appendJSON(a.buf, m)
	}
	if !ok {
		a.buf = append(a.buf[:start], "{}"...)
	}
	binary.BigEndian.PutUint32(a.buf[at:], uint32(len(a.buf)-at-4))
	a.n++
}

// y2k is 2000-01-01T00:00:00Z in microseconds since the Unix epoch, the
// origin of PostgreSQL's binary timestamps.
const y2k = 946684800 * 1000000

// time adds t (microsecond precision), NULL when zero.
func (a *pgArray) time(t time.Time) {
	if t.IsZero() {
		a.null()
		return
	}
	us := t.Unix()*1000000 + int64(t.Nanosecond())/1000 - y2k
	a.buf = binary.BigEndian.AppendUint32(a.buf, 8)
	a.buf = binary.BigEndian.AppendUint64(a.buf, uint64(us))
	a.n++
}

// int8OrNull adds v, NULL when v <= 0.
func (a *pgArray) int8OrNull(v int64) {
	if v <= 0 {
		a.null()
		return
	}
	a.buf = binary.BigEndian.AppendUint32(a.buf, 8)
	a.buf = binary.BigEndian.AppendUint64(a.buf, uint64(v))
	a.n++
}

// bytes finishes the array (header filled in) and returns it.
func (a *pgArray) bytes() []byte {
	b := a.buf[:0]
	b = binary.BigEndian.AppendUint32(b, 1)
	if a.hasNull {
		b = binary.BigEndian.AppendUint32(b, 1)
	} else {
		b = binary.BigEndian.AppendUint32(b, 0)
	}
	b = binary.BigEndian.AppendUint32(b, a.elem)
	b = binary.BigEndian.AppendUint32(b, uint32(a.n))
	binary.BigEndian.AppendUint32(b, 1)
	return a.buf
}

func arrayOID(elem uint32) uint32 {
	switch elem {
	case oidTimestamptz:
		return oidTimestamptzArray
	case oidInt8:
		return oidInt8Array
	}
	return oidTextArray
}

// execArrays runs sql with the arrays as binary parameters on q's
// connection and returns the text of the first column of each row it
// returns (for RETURNING). Parameters bypass pgx's per-value encoding.
func execArrays(ctx context.Context, q dbtx, sql string, arrays []*pgArray) ([]string, error) {
	params := make([][]byte, len(arrays))
	oids := make([]uint32, len(arrays))
	formats := make([]int16, len(arrays))
	for n, a := range arrays {
		params[n], oids[n], formats[n] = a.bytes(), arrayOID(a.elem), 1
	}
	run := func(c *pgx.Conn) ([]string, error) {
		rr := c.PgConn().ExecParams(ctx, sql, params, oids, formats, nil)
		var out []string
		for rr.NextRow() {
			if v := rr.Values(); len(v) > 0 {
				out = append(out, string(v[0]))
			}
		}
		if _, err := rr.Close(); err != nil {
			return nil, err
		}
		return out, nil
	}
	switch c := q.(type) {
	case interface{ Conn() *pgx.Conn }: // pgx.Tx, *pgxpool.Conn
		return run(c.Conn())
	case *pgxpool.Pool:
		conn, err := c.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		defer conn.Release()
		return run(conn.Conn())
	}
	return nil, fmt.Errorf("bulk write: unsupported connection type %T", q)
}
