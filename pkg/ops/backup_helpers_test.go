package ops_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// bkCtx is a test context bounded well below go test's own timeout.
func bkCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// bkTools finds pg_dump/pg_restore the way dg does on this machine.
func bkTools() ops.ToolSearch { return ops.ToolSearch{} }

// seeded is a migrated test database holding a synthetic log.
type seeded struct {
	url     string
	st      *store.Store
	tenants []string
	events  int64
}

// seedTraces returns the tenant's synthetic envelopes grouped by trace,
// each group in trace order.
func seedTraces(tenantIdx, traces int) [][]event.Envelope {
	envs := projection.Synthetic(projection.SynthOptions{Seed: uint64(tenantIdx + 1), Traces: traces})
	var order []string
	by := map[string][]event.Envelope{}
	for _, e := range envs {
		if _, ok := by[e.TraceID]; !ok {
			order = append(order, e.TraceID)
		}
		by[e.TraceID] = append(by[e.TraceID], e)
	}
	out := make([][]event.Envelope, 0, len(order))
	for _, id := range order {
		out = append(out, by[id])
	}
	return out
}

// appendTraces appends traces of several tenants with `workers`
// concurrent clients (so the appender group-commits), each trace in order.
func appendTraces(ctx context.Context, st *store.Store, work map[string][][]event.Envelope, workers int) (int64, error) {
	type job struct {
		tenant string
		envs   []event.Envelope
	}
	jobs := make(chan job)
	var (
		mu    sync.Mutex
		first error
		n     int64
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				for i := range j.envs {
					if _, err := st.Append(ctx, j.tenant, &j.envs[i]); err != nil {
						mu.Lock()
						if first == nil {
							first = fmt.Errorf("append %s to %s: %w", j.envs[i].EventID, j.tenant, err)
						}
						mu.Unlock()
						return
					}
					mu.Lock()
					n++
					mu.Unlock()
				}
			}
		}()
	}
	// Interleave tenants so every batch mixes them.
	maxLen := 0
	for _, ts := range work {
		maxLen = max(maxLen, len(ts))
	}
	tenants := sortedKeys(work)
feed:
	for i := 0; i < maxLen; i++ {
		for _, t := range tenants {
			if i < len(work[t]) {
				select {
				case jobs <- job{t, work[t][i]}:
				case <-ctx.Done():
					break feed
				}
			}
		}
	}
	close(jobs)
	wg.Wait()
	return n, first
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// seedDB makes a fresh database with `tenants` tenants of `traces` synthetic
// traces each (about 8 events per trace), then runs every projection to the
// head and records digests, as a live node would have.
func seedDB(t testing.TB, tenants, traces int) *seeded {
	t.Helper()
	return seedInto(t, pgtest.NewURL(t), tenants, traces)
}

// seedInto seeds a migrated database at url (see seedDB).
func seedInto(t testing.TB, url string, tenants, traces int) *seeded {
	t.Helper()
	ctx := bkCtx(t)
	st, err := store.Open(ctx, url, store.Options{MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	s := &seeded{url: url, st: st}
	work := map[string][][]event.Envelope{}
	for i := range tenants {
		name := fmt.Sprintf("tenant-%02d", i)
		s.tenants = append(s.tenants, name)
		work[name] = seedTraces(i, traces)
	}
	t0 := time.Now()
	if s.events, err = appendTraces(ctx, st, work, 256); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	catchUp(t, st, s.tenants)
	t.Logf("seed: appended %d events in %s, projected in %s", s.events, t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	return s
}

// catchUp runs every projection of every tenant to the head and refreshes
// the stored digests.
func catchUp(t testing.TB, st *store.Store, tenants []string) {
	t.Helper()
	ctx := bkCtx(t)
	pg := projection.NewPG(st, 2000)
	for _, tenant := range tenants {
		for _, name := range projection.Names() {
			c, err := pg.NewCatcher(tenant, name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CatchUp(ctx, 0); err != nil {
				t.Fatalf("catch up %s of %s: %v", name, tenant, err)
			}
		}
		if _, err := pg.RefreshDigests(ctx, tenant); err != nil {
			t.Fatal(err)
		}
	}
}

// takeBackup backs the database up into a new directory.
func takeBackup(t testing.TB, url, dir, label string) *ops.BackupManifest {
	t.Helper()
	m, err := ops.Backup(bkCtx(t), ops.BackupConfig{DatabaseURL: url, Dir: dir, Label: label, Tools: bkTools(), DGVersion: "test"})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return m
}

// drillConfig restores into a scratch database on the test server.
func drillConfig(dir, serverURL string) ops.DrillConfig {
	return ops.DrillConfig{Dir: dir, Backup: "latest", Scratch: "database", ServerURL: serverURL, Tools: bkTools()}
}

func fileSum(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%x", len(b), b[len(b)/2])
}

// copyBackup copies one backup (dump and manifest) into a new directory.
func copyBackup(t testing.TB, from string, m *ops.BackupManifest) string {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{m.DumpFile, m.ID + ".json"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func failedChecks(r *ops.DrillReport) []string {
	var out []string
	for _, c := range r.Checks {
		if c.Status == ops.CheckFail {
			out = append(out, c.Name+": "+c.Details)
		}
	}
	return out
}

// corrupt flips one byte of a backup's dump in dir.
func corrupt(t testing.TB, dir string, m *ops.BackupManifest) {
	t.Helper()
	path := filepath.Join(dir, m.DumpFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
