package client_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/client"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
)

var benchRun atomic.Int64

func benchEnvelopes(prefix string, n int) []*event.Envelope {
	out := make([]*event.Envelope, n)
	for i := range out {
		tr := fmt.Sprintf("%s-%d", prefix, i)
		out[i] = &event.Envelope{EventID: tr + "-e0", TraceID: tr, EventType: "TraceStarted", OccurredAt: "2026-01-01T00:00:00Z",
			Source: event.Source{ProducerID: "bench", System: "bench"}, Actor: event.Actor{ActorType: "agent", ActorID: "bench-agent"},
			IdempotencyKey: tr + ":0", SchemaVersion: 1, Tags: []string{},
			Payload: map[string]any{"workflow": "bench", "title": "benchmark trace " + tr,
				"primary_entity": map[string]any{"entity_type": "ticket", "entity_id": tr, "system": "bench"}}}
	}
	return out
}

// runAppends appends b.N new events with `clients` concurrent callers and
// reports events/s and the p50/p99 latency of one append.
// prepare turns the envelopes into the function that appends the i-th;
// it runs before the clock starts.
func runAppends(b *testing.B, clients int, mode string, st *store.Store, prepare func([]*event.Envelope) func(context.Context, int) error) {
	envs := benchEnvelopes(fmt.Sprintf("bench-%s-%d-%d", mode, clients, benchRun.Add(1)), b.N)
	appendOne := prepare(envs)
	lat := make([][]time.Duration, clients)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	ctx := context.Background()
	var wg sync.WaitGroup
	cpu0, stats0 := processCPU(), st.Stats()
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(envs) {
					return
				}
				t0 := time.Now()
				if err := appendOne(ctx, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu, stats := processCPU()-cpu0, st.Stats()
	if p := failed.Load(); p != nil {
		b.Fatalf("append failed: %v", *p)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	// CPU of this process (server and, for http, the clients too) per
	// event; PostgreSQL's CPU is not included.
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-us/event")
	if c := stats.Commits - stats0.Commits; c > 0 {
		b.ReportMetric(float64(stats.Appended-stats0.Appended)/float64(c), "events/commit")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppend compares appending over HTTP (auth, JSON decoding,
// validation, response encoding, the client's round trip) with the
// in-process store path and with the server's handler called in process,
// at 1, 32 and 128 concurrent clients, in one run. Target: >= 5,000 events/s over HTTP at 128
// clients. Run with:
//
//	go test -run '^$' -bench BenchmarkAppend -benchtime 5000x ./pkg/client
func BenchmarkAppend(b *testing.B) {
	// Each sub-benchmark gets a fresh database, so no mode pays for the
	// log the one before it left behind (append latency grows with the log
	// on the shared test cluster).
	for _, n := range []int{1, 32, 128} {
		b.Run(fmt.Sprintf("store/clients=%d", n), func(b *testing.B) {
			_, st := startNodeWith(b, server.RateLimits{Read: -1, Write: -1}, benchStoreOptions())
			runAppends(b, n, "store", st, func(envs []*event.Envelope) func(context.Context, int) error {
				return func(ctx context.Context, i int) error {
					_, err := st.Append(ctx, tenant, envs[i])
					return err
				}
			})
		})
		b.Run(fmt.Sprintf("handler/clients=%d", n), func(b *testing.B) {
			// The server's HTTP handler called in process: auth, decoding,
			// validation, append and the response, without sockets or client.
			ts, st := startNodeWith(b, server.RateLimits{Read: -1, Write: -1}, benchStoreOptions())
			h := ts.Config.Handler
			runAppends(b, n, "handler", st, func(envs []*event.Envelope) func(context.Context, int) error {
				bodies := make([][]byte, len(envs))
				for i, env := range envs {
					var err error
					if bodies[i], err = event.EncodeEnvelope(env); err != nil {
						b.Fatal(err)
					}
				}
				return func(ctx context.Context, i int) error {
					r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/events", bytes.NewReader(bodies[i]))
					r.Header.Set("Authorization", "Bearer "+writerToken)
					r.Header.Set("x-tenant-id", tenant)
					r.Header.Set("Content-Type", "application/json")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					if rec.Code != http.StatusCreated {
						return fmt.Errorf("status %d: %s", rec.Code, rec.Body)
					}
					return nil
				}
			})
		})
		b.Run(fmt.Sprintf("http/clients=%d", n), func(b *testing.B) {
			ts, st := startNodeWith(b, server.RateLimits{Read: -1, Write: -1}, benchStoreOptions())
			tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512}
			b.Cleanup(tr.CloseIdleConnections)
			c := client.New(ts.URL, writerToken, tenant, client.WithHTTPClient(&http.Client{Transport: tr, Timeout: time.Minute}))
			// Bodies are encoded before the clock starts: encoding is the
			// client's work, not the server's (decoding the answer is timed).
			runAppends(b, n, "http", st, func(envs []*event.Envelope) func(context.Context, int) error {
				bodies := make([][]byte, len(envs))
				for i, env := range envs {
					var err error
					if bodies[i], err = event.EncodeEnvelope(env); err != nil {
						b.Fatal(err)
					}
				}
				return func(ctx context.Context, i int) error {
					_, err := c.AppendEventJSON(ctx, bodies[i])
					return err
				}
			})
		})
	}
}

// BenchmarkHealthzRoundTrip is the floor of one HTTP round trip on this
// machine (no auth, no database), to read BenchmarkAppend's HTTP figures
// against.
func BenchmarkHealthzRoundTrip(b *testing.B) {
	ts, _ := startNode(b, server.RateLimits{})
	c := client.New(ts.URL, readerToken, tenant)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Healthz(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// benchStoreOptions are the store options of the append benchmarks:
// DG_BENCH_MAX_WAIT (a duration) sets the appender's group-commit wait.
func benchStoreOptions() store.Options {
	var o store.Options
	if v := os.Getenv("DG_BENCH_MAX_WAIT"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			o.MaxWait = d
		}
	}
	return o
}
