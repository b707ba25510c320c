package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestConnReadsWhatNetHTTPSends(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB
	var gotBodies []string
	c, host := dialTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBodies = append(gotBodies, r.Method+" "+string(b)+" "+r.Header.Get("X-Test"))
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.Write(big)
		case "/chunked":
			w.WriteHeader(201)
			for i := 0; i < 5; i++ {
				w.Write(big[:1000*(i+1)])
				w.(http.Flusher).Flush()
			}
		case "/small":
			w.WriteHeader(404)
			io.WriteString(w, `{"error":"x"}`)
		case "/empty":
			w.WriteHeader(204)
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}
	})
	var chunkedWant []byte
	for i := 0; i < 5; i++ {
		chunkedWant = append(chunkedWant, big[:1000*(i+1)]...)
	}
	buf := make([]byte, 1<<10) // smaller than the bodies: grown
	for round := 0; round < 3; round++ {
		for _, tc := range []struct {
			method, path string
			body         []byte
			status       int
			want         []byte
		}{
			{"GET", "/length", nil, 200, big},
			{"POST", "/chunked", []byte(`{"a":1}`), 201, chunkedWant},
			{"GET", "/small", nil, 404, []byte(`{"error":"x"}`)},
			{"GET", "/empty", nil, 204, nil},
			{"GET", "/close", nil, 200, []byte("bye")},
		} {
			req := Request(tc.method, host, tc.path, []string{"X-Test: t" + fmt.Sprint(round)}, tc.body)
			status, body, err := c.Do(req, buf)
			if err != nil || status != tc.status || !bytes.Equal(body, tc.want) {
				t.Fatalf("round %d %s %s: %d, %d bytes, %v; want %d, %d bytes", round, tc.method, tc.path, status, len(body), err, tc.status, len(tc.want))
			}
			buf = body[:0]
		}
	}
	if len(gotBodies) != 15 || gotBodies[1] != `POST {"a":1} t0` || gotBodies[14] != "GET  t2" {
		t.Fatalf("the server saw %q", gotBodies)
	}
}

func TestConnRefusesWhatItDoesNotUnderstand(t *testing.T) {
	for name, resp := range map[string]string{
		"no length":      "HTTP/1.1 200 OK\r\n\r\nbody",
		"bad status":     "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
		"not http":       "SSH-2.0-OpenSSH\r\n",
		"gzip coding":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"bad chunk":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"short body":     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"1xx":            "HTTP/1.1 100 Continue\r\n\r\n",
		"negative count": "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 4096)
				c.Read(buf)
				io.WriteString(c, resp)
				c.Close()
			}()
			c, err := Dial(ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			status, _, err := c.Do(Request("GET", "x", "/", nil, nil), nil)
			if err == nil {
				t.Fatalf("status %d, no error", status)
			}
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

// A header line longer than the read buffer is refused, not truncated.
func TestConnRefusesAHugeHeader(t *testing.T) {
	c, host := dialTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Huge", strings.Repeat("h", headerBufSize+10))
		io.WriteString(w, "ok")
	})
	if _, _, err := c.Do(Request("GET", host, "/", nil, nil), nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("error %v, want ErrProtocol", err)
	}
}

// dialTestServer serves handler on a loopback test server and dials it;
// both are closed when the test ends.
func dialTestServer(t *testing.T, handler http.HandlerFunc) (*Conn, string) {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := Dial(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, host
}
