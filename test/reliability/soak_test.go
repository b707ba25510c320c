package reliability_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/server"
)

// soakSample is one point of the soak's time series.
type soakSample struct {
	at         time.Duration
	ops        int64
	goroutines int
	heapMiB    float64
	rssMiB     float64
}

// TestSoak runs a node in this process (server.RunNode, the code of dg up)
// under mixed reads, writes and workflow actions for P.Soak, with a backup
// and a restore drill (dg backup, dg drill restore) in the middle, and
// reports throughput over time, p99 latency per operation, heap, RSS and
// goroutines at the start and the end. Bounds: goroutines at the end at
// most 25 above the start, live heap at most 64 MiB above it.
func TestSoak(t *testing.T) {
	trackOnly(t)
	dir := t.TempDir()
	dburl := pgtest.NewURL(t)
	port := freePort(t)
	accounts := filepath.Join(dir, "accounts.json")
	const perWorker = 4 // accounts per worker: 4 x 300 writes/min
	writeAccounts(t, accounts, P.SoakWriters*perWorker, false, false)
	mpath := writeManifest(t, dir, nodeConfig{DatabaseURL: dburl, Port: port, AccountsFile: accounts, SweepInterval: "2s", PollInterval: "200ms"})
	m, diags, err := manifest.Load(mpath, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("manifest: %v %v", err, diags)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	nodeErr := make(chan error, 1)
	go func() {
		nodeErr <- server.RunNode(ctx, m, server.NodeOptions{
			Logger:    slog.New(slog.DiscardHandler),
			LookupEnv: func(string) (string, bool) { return "", false },
			OnReady:   func(a net.Addr) { ready <- a },
		})
	}()
	select {
	case <-ready:
	case err := <-nodeErr:
		t.Fatalf("node: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatalf("node not ready")
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	dgBinary(t) // built before the clock starts

	type opStats struct {
		mu   sync.Mutex
		lat  []time.Duration
		errs int64
		bad  []string
	}
	ops := map[string]*opStats{}
	for _, k := range []string{"append", "read trace", "inbox", "workflow action", "studio"} {
		ops[k] = &opStats{}
	}
	var total, outOfDate atomic.Int64
	observe := func(op string, d time.Duration, status int, err error, okStatus ...int) {
		s := ops[op]
		good := err == nil
		if good {
			good = false
			for _, o := range okStatus {
				good = good || status == o
			}
		}
		s.mu.Lock()
		s.lat = append(s.lat, d)
		if !good {
			s.errs++
			if len(s.bad) < 5 {
				s.bad = append(s.bad, fmt.Sprintf("%d %v", status, err))
			}
		}
		s.mu.Unlock()
		total.Add(1)
	}
	var wfIDs sync.Map // workflow ids seen in inboxes
	wfRe := regexp.MustCompile(`"workflow_id":"([^"]+)"`)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < P.SoakWriters; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			// Paced to stay inside the shipped rate limits: 3 iterations/s
			// of about 6 writes and 2 reads over 4 accounts is 270 of the
			// 300 writes a minute each account may make.
			tick := time.NewTicker(time.Second / 3)
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				tok := writerToken(w*perWorker + k%perWorker)
				trace := fmt.Sprintf("soak-w%02d-%06d", w, k)
				evs := traceEvents(trace)
				if k%10 == 0 {
					evs = exceptionTrace(trace)
				}
				for _, env := range evs {
					t0 := time.Now()
					r, err := do(context.Background(), "POST", base+"/api/v1/events", tok, "default", encode(t, env), nil)
					observe("append", time.Since(t0), r.Status, err, 201)
				}
				// Read a trace written a few iterations ago; 409
				// projection_out_of_date ("poll again") is a right answer
				// while the projectors catch up, and counted.
				t0 := time.Now()
				r, err := do(context.Background(), "GET", base+"/api/v1/traces/"+fmt.Sprintf("soak-w%02d-%06d", w, max(k-3, 0)), tok, "default", nil, nil)
				observe("read trace", time.Since(t0), r.Status, err, 200, 409)
				if r.Status == 409 {
					if r.errCode() == "projection_out_of_date" {
						outOfDate.Add(1)
					} else {
						observe("read trace", 0, r.Status, fmt.Errorf("409 %s", r.errCode()))
					}
				}
				if k%3 == 0 {
					t0 = time.Now()
					r, err = do(context.Background(), "GET", base+"/api/v1/workflows?limit=20", tok, "default", nil, nil)
					observe("inbox", time.Since(t0), r.Status, err, 200)
					for _, m := range wfRe.FindAllSubmatch(r.Body, -1) {
						wfIDs.Store(string(m[1]), true)
					}
				}
				if k%4 == 0 {
					var id string
					wfIDs.Range(func(k, _ any) bool {
						id = k.(string)
						return rng.IntN(3) != 0
					})
					if id != "" {
						t0 = time.Now()
						r, err = do(context.Background(), "POST", base+"/api/v1/workflows/"+id+"/actions", tok, "default",
							[]byte(fmt.Sprintf(`{"action":"comment","note":"soak %d/%d"}`, w, k)),
							map[string]string{"Idempotency-Key": fmt.Sprintf("soak-%d-%d", w, k)})
						// 409/400: the item moved on (resolved, escalated) meanwhile.
						observe("workflow action", time.Since(t0), r.Status, err, 200, 201, 409, 400)
					}
				}
				if k%20 == 0 {
					t0 = time.Now()
					r, err = do(context.Background(), "GET", base+"/api/v1/workflow-studio/templates", tok, "default", nil, nil)
					observe("studio", time.Since(t0), r.Status, err, 200)
				}
			}
		}(w)
	}

	sample := func(start time.Time) soakSample {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return soakSample{at: time.Since(start), ops: total.Load(), goroutines: runtime.NumGoroutine(),
			heapMiB: float64(ms.HeapAlloc) / (1 << 20), rssMiB: float64(rssKiB(os.Getpid())) / 1024}
	}
	interval := P.Soak / 10
	if interval < 2*time.Second {
		interval = 2 * time.Second
	}
	warm := min(5*time.Second, P.Soak/4)
	if !P.Full {
		warm = 2 * time.Second
	}
	time.Sleep(warm)
	start := time.Now()
	series := []soakSample{sample(start)}
	var backupCode, drillCode int
	var backupOut, drillOut string
	var backupDur, drillDur time.Duration
	middleDone := false
	for time.Since(start) < P.Soak {
		time.Sleep(min(interval, P.Soak-time.Since(start)+time.Millisecond))
		if !middleDone && time.Since(start) >= P.Soak/2 {
			middleDone = true
			t0 := time.Now()
			backupCode, backupOut = runDG(t, 5*time.Minute, "backup", "-f", mpath)
			backupDur = time.Since(t0)
			t0 = time.Now()
			drillCode, drillOut = runDG(t, 10*time.Minute, "drill", "restore", "-f", mpath)
			drillDur = time.Since(t0)
		}
		series = append(series, sample(start))
	}
	end := series[len(series)-1]
	close(stop)
	wg.Wait()
	cancel()
	select {
	case err := <-nodeErr:
		if err != nil && ctx.Err() == nil {
			t.Errorf("node: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("node did not stop within 30s")
	}

	first := series[0]
	if backupCode != 0 {
		t.Errorf("dg backup in the middle of the soak: exit %d\n%s", backupCode, backupOut)
	}
	if drillCode != 0 {
		t.Errorf("dg drill restore in the middle of the soak: exit %d\n%s", drillCode, drillOut)
	}
	if end.goroutines > first.goroutines+25 {
		t.Errorf("goroutines grew from %d to %d", first.goroutines, end.goroutines)
	}
	if end.heapMiB > first.heapMiB+64 {
		t.Errorf("live heap grew from %.1f to %.1f MiB", first.heapMiB, end.heapMiB)
	}
	var allErrs int64
	for name, s := range ops {
		allErrs += s.errs
		if s.errs > 0 {
			t.Errorf("%s: %d failed requests, e.g. %v", name, s.errs, s.bad)
		}
	}

	record("soak", "duration (after a warm-up of "+warm.String()+")", P.Soak)
	record("soak", "load workers (each with 4 writer accounts, paced to 3 iterations/s to stay inside the shipped rate limits)", P.SoakWriters)
	record("soak", "requests", end.ops-first.ops)
	record("soak", "failed requests", allErrs)
	var tput []string
	for i := 1; i < len(series); i++ {
		d := (series[i].at - series[i-1].at).Seconds()
		tput = append(tput, fmt.Sprintf("%.0fs: %.0f", series[i].at.Seconds(), float64(series[i].ops-series[i-1].ops)/d))
	}
	record("soak", "throughput over time (requests/s per interval, end of interval)", strings.Join(tput, ", "))
	for _, name := range []string{"append", "read trace", "inbox", "workflow action", "studio"} {
		s := ops[name]
		record("soak", "p50 / p99 latency: "+name, fmt.Sprintf("%s / %s (%d requests)", pct(s.lat, 0.50).Round(10*time.Microsecond), pct(s.lat, 0.99).Round(10*time.Microsecond), len(s.lat)))
	}
	record("soak", "trace reads answered 409 projection_out_of_date (projectors behind; clients poll again)", outOfDate.Load())
	record("soak", "goroutines start / end (bound +25)", fmt.Sprintf("%d / %d", first.goroutines, end.goroutines))
	record("soak", "live heap after GC start / end (bound +64 MiB)", fmt.Sprintf("%.1f / %.1f MiB", first.heapMiB, end.heapMiB))
	record("soak", "RSS of the process (node + load generator) start / end", fmt.Sprintf("%.1f / %.1f MiB", first.rssMiB, end.rssMiB))
	record("soak", "dg backup in the middle", fmt.Sprintf("exit %d in %s", backupCode, backupDur.Round(time.Millisecond)))
	record("soak", "dg drill restore in the middle", fmt.Sprintf("exit %d in %s", drillCode, drillDur.Round(time.Millisecond)))
}
