package ops_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/projection"
)

// TestBackupWhileSixteenClientsAppend takes a backup while 16 clients keep
// appending and a projection worker keeps catching up. The manifest must
// describe exactly what the dump holds (same snapshot): the drill passes,
// and a plain restore of the dump has the manifest's per-tenant counts.
func TestBackupWhileSixteenClientsAppend(t *testing.T) {
	s := seedDB(t, 2, 50)
	ctx, cancel := context.WithCancel(bkCtx(t))
	defer cancel()

	var appended atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := s.tenants[w%len(s.tenants)]
			for _, trace := range seedTraces(100+w, 400) {
				if ctx.Err() != nil {
					return
				}
				for j := range trace {
					e := trace[j]
					e.TraceID = fmt.Sprintf("w%02d-%s", w, e.TraceID)
					e.EventID = fmt.Sprintf("w%02d-%s", w, e.EventID)
					e.IdempotencyKey = fmt.Sprintf("w%02d-%s", w, e.IdempotencyKey)
					if _, err := s.st.Append(ctx, tenant, &e); err != nil {
						if ctx.Err() == nil {
							errs <- err
						}
						return
					}
					appended.Add(1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		pg := projection.NewPG(s.st, 100)
		for ctx.Err() == nil {
			for _, tenant := range s.tenants {
				for _, name := range projection.Names() {
					c, _ := pg.NewCatcher(tenant, name)
					if _, err := c.CatchUp(ctx, 0); err != nil && ctx.Err() == nil {
						errs <- err
						return
					}
				}
			}
		}
	}()

	// Let the writers get going, then back up; hold the dump open until
	// more events have arrived after the snapshot.
	waitFor(t, func() bool { return appended.Load() > 300 })
	ops.SetAfterExport(t, func() {
		at := appended.Load()
		waitFor(t, func() bool { return appended.Load() > at+300 })
	})
	dir := t.TempDir()
	m := takeBackup(t, s.url, dir, "busy")
	waitFor(t, func() bool { return appended.Load() > 1500 })
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	final, err := s.st.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.State.HeadLogSeq >= final {
		t.Fatalf("no event arrived after the snapshot (manifest head %d, final head %d)", m.State.HeadLogSeq, final)
	}
	t.Logf("manifest head %d of final %d; %d events appended concurrently", m.State.HeadLogSeq, final, appended.Load())

	rep, err := ops.Drill(bkCtx(t), drillConfig(dir, s.url))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed {
		t.Fatalf("drill of a backup taken under load failed: %v", failedChecks(rep))
	}

	// Independently of the drill: restore the dump and count.
	target := pgtest.EmptyURL(t)
	rr, err := ops.Restore(bkCtx(t), ops.RestoreConfig{Dir: dir, Backup: m.ID, TargetURL: target, Tools: bkTools()})
	if err != nil || !rr.OK {
		t.Fatalf("restore: %+v %v", rr, err)
	}
	conn, err := pgx.Connect(bkCtx(t), target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, ts := range m.State.Tenants {
		var n, head int64
		if err := conn.QueryRow(bkCtx(t), `SELECT count(*), COALESCE(max(log_seq), 0) FROM dg_event_log WHERE tenant_id = $1`, ts.TenantID).Scan(&n, &head); err != nil {
			t.Fatal(err)
		}
		if n != ts.Events || head != ts.HeadLogSeq {
			t.Errorf("tenant %s: dump holds %d events up to %d, manifest says %d up to %d", ts.TenantID, n, head, ts.Events, ts.HeadLogSeq)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for concurrent appends")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
