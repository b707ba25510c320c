// Package loadgen is the HTTP/1.1 client of dg's benchmarks: one
// keep-alive connection per simulated client, requests written as
// prebuilt bytes and responses read into the caller's buffer, with no
// goroutines, header maps or allocations per request. On a small machine
// the benchmark's own client shares the CPUs with the server it measures;
// net/http's client (two goroutines per connection, a header map and a
// dozen allocations per response) costs about a third of the CPU a warm
// trace read takes, which is what load generators such as wrk avoid, and
// what this one avoids too.
//
// It understands what the dg server sends: a status line, headers, and a
// body framed by Content-Length or chunked transfer coding. It is not a
// general client (no redirects, no TLS, no 1xx responses other than being
// refused, no trailers).
package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// headerBufSize bounds a status or header line (dg's are well under it).
const headerBufSize = 2 << 10

// Conn is one keep-alive connection. It is not safe for concurrent use.
type Conn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
}

// Dial connects to addr (host:port).
func Dial(addr string) (*Conn, error) {
	c := &Conn{addr: addr}
	if err := c.dial(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Conn) dial() error {
	nc, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("loadgen: dial %s: %w", c.addr, err)
	}
	c.c = nc
	if c.br == nil {
		// Small: the status line and headers fit, and a large body is
		// then read straight into the caller's buffer instead of through
		// this one (bufio reads directly when it is empty and the
		// destination is larger than it).
		c.br = bufio.NewReaderSize(nc, headerBufSize)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	if c.c == nil {
		return nil
	}
	err := c.c.Close()
	c.c = nil
	return err
}

// Request builds the bytes of one request to host. headers are "Name:
// value" lines without line ends; a non-nil body gets a Content-Length.
func Request(method, host, target string, headers []string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	for _, h := range headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	if body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// ErrProtocol is a response this client does not understand.
var ErrProtocol = errors.New("loadgen: unexpected response")

// Do writes req (from Request) and reads the response, returning its
// status and its body in buf (grown when too small; the returned slice
// aliases it). A connection the server closed before answering is
// redialled once.
func (c *Conn) Do(req, buf []byte) (status int, body []byte, err error) {
	for attempt := 0; ; attempt++ {
		if c.c == nil {
			if err := c.dial(); err != nil {
				return 0, buf[:0], err
			}
		}
		status, body, closeAfter, err := c.roundTrip(req, buf)
		if err != nil {
			c.Close()
			if attempt == 0 && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
				continue // the server closed an idle connection
			}
			return 0, body, err
		}
		if closeAfter {
			c.Close()
		}
		return status, body, nil
	}
}

func (c *Conn) roundTrip(req, buf []byte) (status int, body []byte, closeAfter bool, err error) {
	if _, err := c.c.Write(req); err != nil {
		return 0, buf[:0], false, err
	}
	line, err := c.line()
	if err != nil {
		return 0, buf[:0], false, err
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, buf[:0], false, fmt.Errorf("%w: status line %q", ErrProtocol, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 200 {
		return 0, buf[:0], false, fmt.Errorf("%w: status line %q", ErrProtocol, line)
	}
	length, chunked := -1, false
	closeAfter = line[7] == '0' // HTTP/1.0
	for {
		h, err := c.line()
		if err != nil {
			return 0, buf[:0], false, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, buf[:0], false, fmt.Errorf("%w: header %q", ErrProtocol, h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 {
				return 0, buf[:0], false, fmt.Errorf("%w: Content-Length %q", ErrProtocol, value)
			}
			length = n
		case asciiEqualFold(name, "transfer-encoding"):
			if !asciiEqualFold(value, "chunked") {
				return 0, buf[:0], false, fmt.Errorf("%w: Transfer-Encoding %q", ErrProtocol, value)
			}
			chunked = true
		case asciiEqualFold(name, "connection"):
			closeAfter = closeAfter || asciiEqualFold(value, "close")
		}
	}
	switch {
	case status == 204 || status == 304:
		body = buf[:0]
	case chunked:
		body, err = c.chunked(buf[:0])
	case length >= 0:
		body, err = c.full(buf[:0], length)
	default:
		return 0, buf[:0], false, fmt.Errorf("%w: a body without length", ErrProtocol)
	}
	return status, body, closeAfter, err
}

// line reads one header line without its CRLF; the slice is valid until
// the next read.
func (c *Conn) line() ([]byte, error) {
	l, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: a header line over %d bytes", ErrProtocol, c.br.Size())
		}
		return nil, err
	}
	return bytes.TrimSuffix(l[:len(l)-1], []byte("\r")), nil
}

// full appends n body bytes to b.
func (c *Conn) full(b []byte, n int) ([]byte, error) {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	start := len(b)
	b = b[:start+n]
	if _, err := io.ReadFull(c.br, b[start:]); err != nil {
		return b[:start], fmt.Errorf("loadgen: read body: %w", unexpected(err))
	}
	return b, nil
}

// chunked appends a chunked body to b.
func (c *Conn) chunked(b []byte) ([]byte, error) {
	for {
		l, err := c.line()
		if err != nil {
			return b, unexpected(err)
		}
		size, _, _ := bytes.Cut(l, []byte(";"))
		n, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 31)
		if err != nil {
			return b, fmt.Errorf("%w: chunk size %q", ErrProtocol, l)
		}
		if n == 0 {
			// No trailers from dg: the empty line ends the body.
			if l, err := c.line(); err != nil || len(l) != 0 {
				return b, fmt.Errorf("%w: trailer after the last chunk", ErrProtocol)
			}
			return b, nil
		}
		if b, err = c.full(b, int(n)); err != nil {
			return b, err
		}
		if l, err := c.line(); err != nil || len(l) != 0 {
			return b, fmt.Errorf("%w: no line end after a chunk", ErrProtocol)
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func asciiEqualFold[T []byte | string](a T, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
