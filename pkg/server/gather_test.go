package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// writeParts over a real TCP connection served as the server serves it:
// the client gets the parts in order with a matching Content-Length, on a
// connection that stays usable; the connection gathers while the parts
// are written and no longer once writeParts returns.
func TestWritePartsOverTCP(t *testing.T) {
	parts := [][]byte{bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("b"), 70<<10), []byte(`"req-1"}` + "\n")}
	during := make(chan bool, 16)
	after := make(chan bool, 16)
	gathering := func(r *http.Request) bool {
		gc, ok := r.Context().Value(gatherConnKey{}).(*gatherConn)
		if !ok {
			t.Error("no gathering connection in the request context")
			return false
		}
		gc.mu.Lock()
		defer gc.mu.Unlock()
		return gc.on
	}
	hs := &http.Server{ConnContext: connContext, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w = &probeWriter{ResponseWriter: w, onWrite: func() { during <- gathering(r) }}
		if err := writeParts(w, r, "application/json; charset=utf-8", parts...); err != nil {
			t.Error(err)
		}
		after <- gathering(r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(gatherListener{ln})
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
		for len(during) > 0 {
			if !<-during {
				t.Fatalf("response %d: a part was written while the connection was not gathering", i)
			}
		}
		if <-after {
			t.Fatalf("response %d: the connection still gathers after writeParts", i)
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

// tcpPair is a connected pair of loopback TCP connections, the server's
// side gathering.
func tcpPair(t *testing.T) (*gatherConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := gatherListener{ln}.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	gc, ok := (<-accepted).(*gatherConn)
	if !ok {
		t.Fatal("the listener did not hand out a gathering connection")
	}
	t.Cleanup(func() { gc.Close() })
	return gc, client
}

// Held writes reach the peer only at flush, in order; kept slices are
// held as they are, others copied, so a buffer reused after its Write
// (as bufio reuses its own) does not change what is sent.
func TestGatherConnHoldsUntilFlush(t *testing.T) {
	gc, client := tcpPair(t)
	kept := bytes.Repeat([]byte("k"), 64<<10)
	scratch := []byte("header;")
	gc.gather(kept)
	for _, p := range [][]byte{scratch, kept[:1000], kept[1000:], []byte(";tail")} {
		if n, err := gc.Write(p); n != len(p) || err != nil {
			t.Fatalf("held write: %d, %v", n, err)
		}
	}
	copy(scratch, "XXXXXXX")
	if &gc.bufs[1][0] != &kept[0] || &gc.bufs[2][0] != &kept[1000] {
		t.Error("a write within a kept slice was copied")
	}
	if &gc.bufs[0][0] == &scratch[0] {
		t.Error("a write outside the kept slices was held without a copy")
	}
	// Nothing may arrive before the flush.
	client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var one [1]byte
	if n, err := client.Read(one[:]); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("before the flush the peer read %d bytes, %v", n, err)
	}
	if err := gc.flush(); err != nil {
		t.Fatal(err)
	}
	// After the flush writes go straight out.
	if _, err := gc.Write([]byte("!")); err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte("header;"), kept...), ";tail"...), '!')
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("peer read %d bytes (%v), want %d in order", len(got), err, len(want))
	}
	if len(gc.bufs) != 0 || gc.on {
		t.Errorf("after the flush: %d buffers held, gathering %v", len(gc.bufs), gc.on)
	}
}

// A flush that fails reports its error, and later writes return it
// rather than writing after a lost response.
func TestGatherConnFlushError(t *testing.T) {
	gc, _ := tcpPair(t)
	gc.gather()
	if _, err := gc.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	gc.TCPConn.Close()
	err := gc.flush()
	if err == nil {
		t.Fatal("flush on a closed connection succeeded")
	}
	if _, werr := gc.Write([]byte("more")); !errors.Is(werr, err) {
		t.Fatalf("write after a failed flush: %v, want %v", werr, err)
	}
}

func TestWithin(t *testing.T) {
	a := make([]byte, 100)
	b := make([]byte, 10)
	for _, c := range []struct {
		p    []byte
		keep [][]byte
		want bool
	}{
		{a, [][]byte{a}, true},
		{a[10:20], [][]byte{b, a}, true},
		{a[90:], [][]byte{a[:95]}, false},
		{b, [][]byte{a}, false},
		{a[5:6], nil, false},
	} {
		if got := within(c.p, c.keep); got != c.want {
			t.Errorf("within(len %d, %d kept) = %v, want %v", len(c.p), len(c.keep), got, c.want)
		}
	}
}

// A write blocked on a client that does not read holds no lock that
// Close needs: closing the connection (as a server shutdown does) returns
// and ends the blocked write.
func TestGatherConnCloseDuringABlockedWrite(t *testing.T) {
	gc, _ := tcpPair(t)
	wrote := make(chan error, 1)
	go func() {
		_, err := gc.Write(make([]byte, 64<<20)) // far over the socket buffers
		wrote <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the write fill the buffers and block
	closed := make(chan error, 1)
	go func() { closed <- gc.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a blocked write")
	}
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("the blocked write succeeded on a closed connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked write did not end when the connection closed")
	}
}
