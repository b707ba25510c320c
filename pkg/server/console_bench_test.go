package server_test

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/seed"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// BenchmarkConsolePages measures the server time of every console page on
// the release demo plus 10,000 generated traces in the same tenant, and
// reports each page's p95 (target: under 50 ms).
//
//	go test -run '^$' -bench ConsolePages ./pkg/server/
func BenchmarkConsolePages(b *testing.B) {
	ctx := context.Background()
	e := newConsoleEnv(b, consoleOpts{seeded: true})
	const tenant = "release-demo"
	loader, err := projection.NewBulkLoader(ctx, e.pool, tenant)
	if err != nil {
		b.Fatal(err)
	}
	for chunk := 0; chunk < 10; chunk++ {
		if _, err := loader.Load(ctx, projection.Synthetic(projection.SynthOptions{Seed: 7, Traces: 1000, FirstTrace: chunk * 1000})); err != nil {
			b.Fatal(err)
		}
	}
	pg := projection.NewPG(e.store, 500)
	if _, err := pg.Rebuild(ctx, projection.RebuildOptions{Tenant: tenant}); err != nil {
		b.Fatal(err)
	}
	wf := workflow.New(e.pool, e.store, workflow.Config{}, workflow.Options{})
	if _, err := wf.Refresh(ctx, tenant); err != nil {
		b.Fatal(err)
	}
	var traces int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM dg_trace_summary WHERE tenant_id = $1`, tenant).Scan(&traces); err != nil || traces < 10000 {
		b.Fatalf("traces = %d (%v)", traces, err)
	}
	br := e.browser(b)
	br.signIn("dev-admin-token")
	pages := []struct{ name, path string }{
		{"overview", "/console?tenant=" + tenant},
		{"traces", "/console/traces?tenant=" + tenant},
		{"trace", "/console/traces/" + seed.LiveTrace + "?tenant=" + tenant},
		{"workflows", "/console/workflows?tenant=" + tenant},
		{"workflow", "/console/workflows/" + url.PathEscape(seed.LiveWorkflow) + "?tenant=" + tenant},
		{"studio", "/console/studio?tenant=" + tenant + "&trace_id=" + seed.IncidentTrace},
		{"projections", "/console/projections?tenant=" + tenant},
		{"live", "/console/live?tenant=" + tenant},
		{"operations", "/console/operations?tenant=" + tenant},
		{"accounts", "/console/accounts?tenant=" + tenant},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				code, _, _ := br.get(p.path)
				took = append(took, time.Since(start))
				if code != http.StatusOK {
					b.Fatalf("%s: %d", p.path, code)
				}
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			p95 := took[min(len(took)-1, len(took)*95/100)]
			b.ReportMetric(float64(p95.Microseconds())/1000, "p95-ms")
		})
	}
}
