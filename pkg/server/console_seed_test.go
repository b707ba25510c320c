package server_test

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/seed"
	"github.com/decisiongraph/dg/pkg/server"
)

// runNode starts RunNode on an external database and returns its base URL
// and a stop function that waits for it to end.
func runNode(t *testing.T, m *manifest.Manifest, opts server.NodeOptions) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	opts.OnReady = func(a net.Addr) { addrc <- a }
	go func() { done <- server.RunNode(ctx, m, opts) }()
	select {
	case a := <-addrc:
		return "http://" + a.String(), func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("RunNode: %v", err)
			}
		}
	case err := <-done:
		cancel()
		t.Fatalf("RunNode failed before serving: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("RunNode did not serve within 60s")
	}
	return "", nil
}

func countEvents(t *testing.T, url, tenant string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM dg_event_log WHERE tenant_id = $1`, tenant).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRunNodeSeedsOnStart: the manifest's seed list (or NodeOptions.Seed,
// dg up --seed) seeds an empty tenant before serving, a restart does not
// seed again, and the console serves the seeded tenant.
func TestRunNodeSeedsOnStart(t *testing.T) {
	url := pgtest.NewURL(t)
	m, diags, err := manifest.LoadBuiltin(func(string) (string, bool) { return "", false })
	if err != nil || diags.HasErrors() {
		t.Fatalf("built-in manifest: %v %v", err, diags)
	}
	m.Database.Mode = manifest.ModeExternal
	m.Database.URL = url
	m.Server.Listen = "127.0.0.1:0"
	m.Tenants = []string{"default", "release-demo"}
	m.Backup.Dir = t.TempDir()

	base, stop := runNode(t, m, server.NodeOptions{Seed: []string{seed.ReleaseDemo}})
	if n := countEvents(t, url, "release-demo"); n != seed.TotalEvents {
		t.Fatalf("after start: %d events", n)
	}
	// The dev quick start: one-click sign-in as the operator, then the
	// overview shows the seeded overdue reviews.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(base + "/console/signin")
	if err != nil {
		t.Fatal(err)
	}
	buf := new(strings.Builder)
	_, _ = bufCopy(buf, resp)
	resp, err = c.PostForm(base+"/console/signin/dev", map[string][]string{"csrf_token": {csrfOf(t, buf.String())}})
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	_, _ = bufCopy(buf, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(buf.String(), "Workflow SLA risk detected") {
		t.Fatalf("console after dev sign-in: %d\n%s", resp.StatusCode, buf.String())
	}
	stop()

	// Restart with the manifest's seed list: the tenant has events, so
	// nothing is appended.
	m.Seed = []string{seed.ReleaseDemo}
	_, stop = runNode(t, m, server.NodeOptions{})
	stop()
	if n := countEvents(t, url, "release-demo"); n != seed.TotalEvents {
		t.Fatalf("after restart: %d events", n)
	}
}

func bufCopy(b *strings.Builder, resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	var n int64
	p := make([]byte, 32<<10)
	for {
		k, err := resp.Body.Read(p)
		b.Write(p[:k])
		n += int64(k)
		if err != nil {
			return n, nil
		}
	}
}
