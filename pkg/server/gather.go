package server

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"unsafe"
)

// Large responses whose bytes are already in memory (a cached trace) are
// written without first copying them into one buffer: net/http sends its
// buffered header with the first part, the large part straight from the
// cache, and the request id after it, in three writes. To send them in one
// system call instead, the server's TCP connections can gather a
// response's writes and send them together with writev when the response
// is complete. That also keeps the parts from leaving as separate bursts,
// each waking the client for a partial read, which is what setting
// TCP_CORK around the writes did, with two more system calls.

// gatherListener hands out TCP connections that can gather writes.
type gatherListener struct{ net.Listener }

func (l gatherListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		return &gatherConn{TCPConn: tc}, nil
	}
	return c, err
}

// gatherConn is a TCP connection that, between gather and flush, holds
// its writes and then sends them in one writev. Outside that window it is
// the plain connection. Gathering and flushing happen on the goroutine
// that serves the connection (writeParts, within a handler), which always
// flushes before it returns; mu guards the fields but is never held
// during I/O, so a write blocked on a slow client never holds up another
// goroutine (Close, on shutdown, is the plain connection's).
type gatherConn struct {
	*net.TCPConn
	mu     sync.Mutex
	on     bool
	keep   [][]byte    // slices that stay unchanged until flush: held, not copied
	bufs   net.Buffers // the gathered writes, in order
	copies []byte      // copies of the writes that are not in keep
	err    error       // the flush's error, returned by later writes
}

type gatherConnKey struct{}

// connContext remembers a connection that can gather writes.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if gc, ok := c.(*gatherConn); ok {
		return context.WithValue(ctx, gatherConnKey{}, gc)
	}
	return ctx
}

// gather starts holding writes. keep are slices the caller leaves
// unchanged until flush returns; a write that lies within one of them is
// held without copying. Everything else (net/http's own buffers, which it
// reuses) is copied.
func (c *gatherConn) gather(keep ...[]byte) {
	c.mu.Lock()
	c.on, c.keep = true, keep
	c.mu.Unlock()
}

// flush sends the held writes in one writev and stops gathering.
func (c *gatherConn) flush() error {
	c.mu.Lock()
	if !c.on {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.on, c.keep = false, nil
	bufs, err := c.bufs, c.err
	c.mu.Unlock()
	if len(bufs) > 0 && err == nil {
		b := bufs // WriteTo consumes its receiver
		_, err = b.WriteTo(c.TCPConn)
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	clear(bufs)
	c.bufs, c.copies = bufs[:0], c.copies[:0]
	c.mu.Unlock()
	return err
}

func (c *gatherConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if err := c.err; err != nil {
		c.mu.Unlock()
		return 0, err
	}
	if !c.on {
		c.mu.Unlock()
		return c.TCPConn.Write(p)
	}
	defer c.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if !within(p, c.keep) {
		// A copy lives in c.copies; when that grows, the slices already
		// taken from it keep the old array alive and unchanged.
		start := len(c.copies)
		c.copies = append(c.copies, p...)
		p = c.copies[start:len(c.copies):len(c.copies)]
	}
	c.bufs = append(c.bufs, p)
	return len(p), nil
}

// within reports whether p lies inside one of keep. Only addresses are
// compared; nothing is read through them.
func within(p []byte, keep [][]byte) bool {
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	hi := lo + uintptr(len(p))
	for _, k := range keep {
		klo := uintptr(unsafe.Pointer(unsafe.SliceData(k)))
		if lo >= klo && hi <= klo+uintptr(len(k)) {
			return true
		}
	}
	return false
}

// writeParts writes a 200 response of the given Content-Type made of
// parts, in order, with a Content-Length, which must leave the parts
// unchanged until it returns. On a gathering connection the response
// leaves in one system call.
func writeParts(w http.ResponseWriter, r *http.Request, contentType string, parts ...[]byte) (err error) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(n))
	gc, _ := r.Context().Value(gatherConnKey{}).(*gatherConn)
	if gc != nil {
		gc.gather(parts...)
		defer func() {
			if ferr := gc.flush(); err == nil {
				err = ferr
			}
		}()
	}
	w.WriteHeader(http.StatusOK)
	for _, p := range parts {
		if _, err = w.Write(p); err != nil {
			return err
		}
	}
	if f, ok := w.(http.Flusher); ok && gc != nil {
		f.Flush()
	}
	return nil
}
