package server_test

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/client"
	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/server"
)

func noEnv(string) (string, bool) { return "", false }

func builtinManifest(t *testing.T) *manifest.Manifest {
	t.Helper()
	m, diags, err := manifest.LoadBuiltin(noEnv)
	if err != nil || diags.HasErrors() {
		t.Fatalf("built-in manifest: %v %v", err, diags)
	}
	return m
}

// TestRunNodeRefusesProdMisconfiguration: in prod dg up stops before it
// touches PostgreSQL when the development tokens are on, when there are no
// accounts, or when the accounts file is open to group or others, with a
// message that says what to do.
func TestRunNodeRefusesProdMisconfiguration(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if _, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: good}); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.json")
	if _, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: open}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(m *manifest.Manifest)
		want   string
	}{
		{"dev tokens in prod", func(m *manifest.Manifest) { m.Server.DevTokens = true; m.Accounts.File = good }, "server.dev_tokens is on in prod"},
		{"no accounts in prod", func(m *manifest.Manifest) { m.Server.DevTokens = false; m.Accounts.File = "" }, "dg accounts bootstrap"},
		{"world-readable file in prod", func(m *manifest.Manifest) { m.Server.DevTokens = false; m.Accounts.File = open }, "chmod 600 " + open},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := builtinManifest(t)
			m.Server.Env = manifest.EnvProd
			// A database that cannot exist: reaching it would be a failure of the test.
			m.Database.Mode = manifest.ModeExternal
			m.Database.URL = "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"
			c.mutate(m)
			err := server.RunNode(context.Background(), m, server.NodeOptions{LookupEnv: noEnv})
			if !errors.Is(err, auth.ErrMisconfigured) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrMisconfigured mentioning %q", err, c.want)
			}
		})
	}
}

// TestSIGHUPReloadsAccounts sends the process a real SIGHUP: the watcher
// dg up runs re-reads the accounts file (polling is set to an hour so only
// the signal can explain the reload), and a broken file keeps the accounts.
func TestSIGHUPReloadsAccounts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "accounts.json")
	boot, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: file})
	if err != nil {
		t.Fatal(err)
	}
	m := builtinManifest(t)
	m.Accounts.File = file
	reg, err := server.LoadAccounts(m, noEnv, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	server.WatchAccounts(ctx, reg, time.Hour)
	time.Sleep(50 * time.Millisecond) // let signal.Notify register

	rot, err := ops.RotateAccountToken(file, "reader-main", false)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Current().Lookup(rot.Token) != nil {
		t.Fatal("token valid before any reload")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return reg.Current().Lookup(rot.Token) != nil })
	if reg.Current().Lookup(boot.Accounts[0].Token) == nil {
		t.Fatal("rotation must keep the old token valid")
	}

	// A broken file on reload: the accounts in force stay.
	if err := os.WriteFile(file, []byte(`{"service_accounts": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { _, bad := reg.Health()["last_reload_error"]; return bad })
	if reg.Current().Lookup(rot.Token) == nil || reg.Current().Lookup(boot.Accounts[2].Token) == nil {
		t.Fatal("a broken file must keep the old accounts")
	}
}

// TestAccountChangesApplyToRequests: a registry reload changes what the
// API accepts at once, without a restart (revoked token 401, new 200-ish).
func TestAccountChangesApplyToRequests(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "accounts.json")
	boot, err := ops.BootstrapAccounts(ops.BootstrapOptions{Path: file, Tenants: []string{tenantA}})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := auth.Load(auth.Config{File: file, LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	e := newAPIEnv(t, func(c *server.APIConfig) { c.Accounts = reg })
	old := boot.Accounts[0].Token
	get := func(token string) *httptest.ResponseRecorder {
		return e.do(req{method: "GET", path: "/api/v1/traces/none", token: token, tenant: tenantA})
	}
	if rec := get(old); rec.Code != 404 {
		t.Fatalf("bootstrap token: %d %s", rec.Code, rec.Body)
	}
	rot, err := ops.RotateAccountToken(file, "reader-main", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Reload(); err != nil {
		t.Fatal(err)
	}
	if rec := get(rot.Token); rec.Code != 404 {
		t.Fatalf("rotated (hashed) token: %d %s", rec.Code, rec.Body)
	}
	if rec := get(old); rec.Code != 404 {
		t.Fatalf("old token after rotate: %d", rec.Code)
	}
	if _, err := ops.RevokeAccountToken(file, "reader-main", old[:8]); err != nil {
		t.Fatal(err)
	}
	if err := reg.Reload(); err != nil {
		t.Fatal(err)
	}
	if rec := get(old); rec.Code != 401 {
		t.Fatalf("revoked token: %d %s", rec.Code, rec.Body)
	}
	if rec := get(rot.Token); rec.Code != 404 {
		t.Fatalf("remaining token after revoke: %d", rec.Code)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunNodeServesAPI runs the node as dg up does (external database
// from pgtest, built-in dev accounts): healthz reports the auth section,
// and the dev writer appends and reads back a trace through pkg/client.
func TestRunNodeServesAPI(t *testing.T) {
	m := builtinManifest(t)
	m.Database.Mode = manifest.ModeExternal
	m.Database.URL = pgtest.NewURL(t)
	m.Server.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.RunNode(ctx, m, server.NodeOptions{LookupEnv: noEnv, OnReady: func(a net.Addr) { addrc <- a }})
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("RunNode: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("RunNode did not serve within 60s")
	}
	w := client.New(base, auth.DevWriterToken, "default")
	h, err := w.Healthz(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a := h["auth"].(map[string]any); a["bootstrap_source"] != "application_env" || a["configured_accounts"] != float64(3) || a["operator_console_account_id"] != "dev-admin" {
		t.Fatalf("healthz auth: %v", a)
	}
	tr := newTraceID("node")
	if _, err := w.AppendEventJSON(ctx, traceStarted(tr)); err != nil {
		t.Fatal(err)
	}
	// The node runs the projection runtime: the trace route answers 409
	// projection_out_of_date until trace_summary has caught up (poll, §5.3).
	got, err := client.New(base, auth.DevReaderToken, "default").GetTrace(ctx, tr)
	for deadline := time.Now().Add(30 * time.Second); client.CodeOf(err) == "projection_out_of_date" && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		got, err = client.New(base, auth.DevReaderToken, "default").GetTrace(ctx, tr)
	}
	if err != nil || len(got.Events) != 1 || got.Events[0].TraceID != tr {
		t.Fatalf("trace: %v %+v", err, got)
	}
	if _, err := client.New(base, auth.DevReaderToken, "default").AppendEventJSON(ctx, traceStarted(newTraceID("x"))); client.CodeOf(err) != "forbidden" {
		t.Fatalf("reader append: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunNode on shutdown: %v", err)
	}
}
