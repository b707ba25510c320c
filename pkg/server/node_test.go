package server_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/server"
)

func freePort(t *testing.T) int { return pgtest.FreePort(t) }

// TestRunNodeManagedCluster runs the same code as `dg up` on the default
// manifest with a managed cluster in a temp dir: the API answers healthz and
// readyz, and cancelling stops the cluster it started.
func TestRunNodeManagedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster; skipped with -short")
	}
	m, diags, err := manifest.LoadBuiltin(func(string) (string, bool) { return "", false })
	if err != nil || diags.HasErrors() {
		t.Fatalf("built-in manifest: %v %v", err, diags)
	}
	dir := pgtest.SharedTempDir(t) // the cluster may run as postgres
	m.Database.Managed.DataDir = filepath.Join(dir, "pgdata")
	m.Database.Managed.Port = freePort(t)
	m.Server.Listen = "127.0.0.1:0"
	mg := m.Database.Managed
	cluster := ops.ClusterConfig{DataDir: mg.DataDir, Port: mg.Port, RunAs: mg.RunAs, Database: ops.DefaultDatabase}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.RunNode(ctx, m, server.NodeOptions{Cluster: cluster, OnReady: func(a net.Addr) { addrc <- a }})
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("RunNode failed before serving: %v", err)
	case <-time.After(120 * time.Second):
		t.Fatal("RunNode did not start serving within 120s")
	}

	for _, path := range []string{"/api/healthz", "/api/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d body %v", path, resp.StatusCode, body)
		}
		if path == "/api/healthz" {
			st := body["store"].(map[string]any)
			if st["repo_started?"] != true || st["mode"] != "managed" {
				t.Errorf("healthz store section: %v", st)
			}
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunNode returned %v on shutdown", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("RunNode did not stop within 90s")
	}
	if _, err := os.Stat(filepath.Join(m.Database.Managed.DataDir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("managed cluster still running after shutdown (postmaster.pid present: %v)", err)
	}
}
