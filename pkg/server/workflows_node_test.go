package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/server"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// A running node (the code of dg up) escalates an overdue item and
// delivers the escalation to its webhook with nobody reading workflows:
// the events are appended by another process's store, not over HTTP.
func TestRunNodeEscalatesWithoutReads(t *testing.T) {
	url := pgtest.NewURL(t)
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(workflow.HeaderTimestamp), 10, 64)
		if workflow.VerifySignature("hook-secret", r.Header.Get(workflow.HeaderSignature), ts, body) {
			mu.Lock()
			got = append(got, r.Header.Get(workflow.HeaderCategory))
			mu.Unlock()
		}
	}))
	t.Cleanup(hook.Close)

	m := builtinManifest(t)
	m.Database.Mode = manifest.ModeExternal
	m.Database.URL = url
	m.Server.Listen = "127.0.0.1:0"
	m.Seed = nil
	m.Workflows.SweepInterval = time.Second
	m.Workflows.Notifications.Webhooks = []manifest.Webhook{{URL: hook.URL, Categories: []string{"escalation"}, Secret: "hook-secret"}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.RunNode(ctx, m, server.NodeOptions{LookupEnv: noEnv, OnReady: func(a net.Addr) { ready <- a }})
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("RunNode: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("RunNode did not start")
	}

	// "Another process" appends an exception requested five hours ago.
	st, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now().UTC().Add(-5 * time.Hour).Format(time.RFC3339)
	for seq, typ := range []string{event.TypeTraceStarted, event.TypeExceptionRequested} {
		p := map[string]any{"workflow": "w", "title": "t", "primary_entity": map[string]any{"entity_type": "e", "entity_id": "1"}}
		if seq == 1 {
			p = map[string]any{"exception_id": "ex-1", "reason": "r", "policy": map[string]any{"policy_id": "p", "policy_version": "1"}}
		}
		env := &event.Envelope{EventID: "node-" + typ, TraceID: "tr-node", TraceSeq: int64(seq), EventType: typ, OccurredAt: at,
			Source: event.Source{ProducerID: "other", System: "s"}, Actor: event.Actor{ActorType: "agent", ActorID: "a"},
			IdempotencyKey: "node-" + typ, Payload: p}
		env.ApplyDefaults()
		if _, err := st.Append(context.Background(), "acme", env); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var status string
		_ = st.Pool().QueryRow(context.Background(), `SELECT status FROM dg_workflow_items WHERE tenant_id = 'acme' AND workflow_id = 'tr-node:exception:ex-1'`).Scan(&status)
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if status == "escalated" && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: status %q, %d signed escalation webhooks", status, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// healthz reports the runtime and the outbox. The receiver sees the
	// webhook before the deliverer records the answer, so poll briefly.
	var body []byte
	for healthDeadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr.String() + "/api/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `"workflows"`) && strings.Contains(string(body), `"delivered":1`) {
			break
		}
		if time.Now().After(healthDeadline) {
			t.Fatalf("healthz has no workflows section with the delivery after 10s: %s", body)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunNode on shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RunNode did not stop")
	}
}
