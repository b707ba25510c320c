package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"syscall"
	"testing"
)

// writeParts over a real TCP connection: the client gets the parts in
// order with a matching Content-Length, on a connection that stays
// usable; on Linux the connection is corked while the parts are written
// and uncorked afterwards.
func TestWritePartsOverTCP(t *testing.T) {
	parts := [][]byte{bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("b"), 70<<10), []byte(`"req-1"}` + "\n")}
	corkDuring := make(chan int, 16)
	corkAfter := make(chan int, 16)
	cork := func(r *http.Request) int {
		rc, ok := r.Context().Value(rawConnKey{}).(syscall.RawConn)
		if !ok {
			return -1
		}
		v := -1
		rc.Control(func(fd uintptr) {
			if runtime.GOOS == "linux" {
				v, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, 3 /* TCP_CORK */)
			}
		})
		return v
	}
	hs := &http.Server{ConnContext: connContext, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w = &probeWriter{ResponseWriter: w, onWrite: func() { corkDuring <- cork(r) }}
		if err := writeParts(w, r, "application/json; charset=utf-8", parts...); err != nil {
			t.Error(err)
		}
		corkAfter <- cork(r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	defer hs.Shutdown(context.Background())
	want := bytes.Join(parts, nil)
	c := &http.Client{}
	for i := 0; i < 3; i++ {
		resp, err := c.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) ||
			resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("response %d: %d %v, %d bytes, headers %v", i, resp.StatusCode, err, len(body), resp.Header)
		}
		during := <-corkDuring
		for len(corkDuring) > 0 {
			<-corkDuring
		}
		after := <-corkAfter
		if runtime.GOOS == "linux" && (during != 1 || after != 0) {
			t.Fatalf("TCP_CORK %d while writing, %d after; want 1, 0", during, after)
		}
	}
}

// probeWriter calls onWrite before each Write.
type probeWriter struct {
	http.ResponseWriter
	onWrite func()
}

func (p *probeWriter) Write(b []byte) (int, error) {
	p.onWrite()
	return p.ResponseWriter.Write(b)
}

func (p *probeWriter) Flush() { p.ResponseWriter.(http.Flusher).Flush() }
