package server

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"syscall"
)

// Large responses whose bytes are already in memory (a cached trace) are
// written in several calls without first copying them into one buffer:
// net/http sends its buffered header with the first part, the large part
// straight from the cache, and the request id after it. To keep those
// parts from leaving as separate bursts (each one waking the client for a
// partial read), the connection is corked (TCP_CORK, Linux) for the
// response and uncorked once the last part is flushed.

type rawConnKey struct{}

// connContext remembers a TCP connection's raw descriptor for corking.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			return context.WithValue(ctx, rawConnKey{}, rc)
		}
	}
	return ctx
}

// writeParts writes a 200 response of the given Content-Type made of
// parts, in order, with a Content-Length, corked where that is possible.
func writeParts(w http.ResponseWriter, r *http.Request, contentType string, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(n))
	rc, _ := r.Context().Value(rawConnKey{}).(syscall.RawConn)
	corked := rc != nil && setCork(rc, true)
	w.WriteHeader(http.StatusOK)
	var err error
	for _, p := range parts {
		if _, err = w.Write(p); err != nil {
			break
		}
	}
	if corked {
		if f, ok := w.(http.Flusher); ok && err == nil {
			f.Flush()
		}
		setCork(rc, false)
	}
	return err
}
