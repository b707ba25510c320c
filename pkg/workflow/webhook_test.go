package workflow_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// receiver is a real local HTTP webhook receiver that fails the first
// `fail` requests with 503 and records every request.
type receiver struct {
	mu     sync.Mutex
	fail   int
	got    []received
	secret string
	srv    *httptest.Server
}

type received struct {
	status   int
	verified bool
	id       string
	category string
	body     map[string]any
}

func newReceiver(t *testing.T, secret string, fail int) *receiver {
	r := &receiver{fail: fail, secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		ts, _ := strconv.ParseInt(req.Header.Get(workflow.HeaderTimestamp), 10, 64)
		ok := workflow.VerifySignature(r.secret, req.Header.Get(workflow.HeaderSignature), ts, body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		r.mu.Lock()
		defer r.mu.Unlock()
		status := http.StatusOK
		if r.fail > 0 {
			r.fail--
			status = http.StatusServiceUnavailable
		}
		r.got = append(r.got, received{status: status, verified: ok, id: req.Header.Get(workflow.HeaderDelivery), category: req.Header.Get(workflow.HeaderCategory), body: m})
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func TestWebhookSignatureAndRetries(t *testing.T) {
	rcv := newReceiver(t, "s3cret", 2)
	cfg := workflow.Config{
		Webhooks:            []workflow.Webhook{{URL: rcv.srv.URL, Categories: []string{"assignment"}, Secret: "s3cret"}},
		DeliveryBackoffBase: 10 * time.Second,
	}
	e := newEnv(t, cfg)
	wid := e.openException("default", "tr-1")
	e.get("default", wid) // import: one assignment notification, one delivery row
	d := workflow.NewDeliverer(e.svc, nil)
	deliver := func() int {
		n, err := d.DeliverDue(ctxT(t), 10)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := deliver(); n != 1 {
		t.Fatalf("first round tried %d", n)
	}
	if n := deliver(); n != 0 {
		t.Fatalf("retried before the backoff: %d", n)
	}
	e.clock.Advance(10 * time.Second) // first backoff: base
	if n := deliver(); n != 1 {
		t.Fatalf("second attempt tried %d", n)
	}
	e.clock.Advance(10 * time.Second) // second backoff is 20s
	if n := deliver(); n != 0 {
		t.Fatalf("retried before the doubled backoff: %d", n)
	}
	e.clock.Advance(10 * time.Second)
	if n := deliver(); n != 1 {
		t.Fatalf("third attempt tried %d", n)
	}
	e.clock.Advance(time.Hour)
	if n := deliver(); n != 0 {
		t.Fatalf("delivered twice: %d", n)
	}
	got := rcv.requests()
	if len(got) != 3 || got[0].status != 503 || got[1].status != 503 || got[2].status != 200 {
		t.Fatalf("receiver saw %+v", got)
	}
	for _, g := range got {
		if !g.verified || g.category != "assignment" || g.id == "" || g.id != got[0].id {
			t.Errorf("request %+v: signature or headers wrong", g)
		}
		n := g.body["notification"].(map[string]any)
		if n["workflow_id"] != wid || g.body["tenant_id"] != "default" {
			t.Errorf("body %v", g.body)
		}
	}
	ds, err := e.svc.Deliveries(ctxT(t), "default")
	if err != nil || len(ds) != 1 || ds[0].Status != "delivered" || ds[0].Attempts != 3 || ds[0].LastStatus == nil || *ds[0].LastStatus != 200 {
		t.Fatalf("delivery state %v %+v", err, ds)
	}
	// A wrong secret does not verify.
	if workflow.VerifySignature("other", workflow.Sign("s3cret", 1, []byte("x")), 1, []byte("x")) {
		t.Error("signature verified with the wrong secret")
	}
	// Categories filter: an escalation is not sent to this receiver.
	if _, err := act(e, "default", wid, admin, workflow.ActionRequest{Action: "escalate", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if ds, _ := e.svc.Deliveries(ctxT(t), "default"); len(ds) != 1 {
		t.Errorf("escalation was queued for an assignment-only webhook: %+v", ds)
	}
}

// Delivery resumes after a restart: pending rows survive in the outbox
// and a new service on the same database delivers them exactly once.
func TestWebhookDeliveryResumesAfterRestart(t *testing.T) {
	pool := pgtest.New(t)
	rcv := newReceiver(t, "k", 0)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	downURL := down.URL
	down.Close() // nothing listens: network errors
	c := newClock(t0)
	cfg1 := workflow.Config{Webhooks: []workflow.Webhook{{URL: rcv.srv.URL, Secret: "k"}}}
	e1 := newEnvOn(t, pool, cfg1, c)
	wid := e1.openException("default", "tr-1")
	e1.get("default", wid)
	// The first process queued the delivery and died before sending it.
	if n := e1.count(`SELECT count(*) FROM dg_workflow_deliveries WHERE status = 'pending'`); n != 1 {
		t.Fatalf("%d pending deliveries", n)
	}
	e2 := newEnvOn(t, pool, cfg1, c)
	d2 := workflow.NewDeliverer(e2.svc, nil)
	if n, err := d2.DeliverDue(ctxT(t), 10); err != nil || n != 1 {
		t.Fatalf("after restart: %d %v", n, err)
	}
	if n, _ := d2.DeliverDue(ctxT(t), 10); n != 0 {
		t.Errorf("delivered again")
	}
	if got := rcv.requests(); len(got) != 1 || !got[0].verified {
		t.Errorf("receiver saw %+v", got)
	}
	// A network failure is retried, also across a restart.
	cfg3 := workflow.Config{Webhooks: []workflow.Webhook{{URL: downURL}}, DeliveryBackoffBase: time.Second}
	e3 := newEnvOn(t, pool, cfg3, c)
	if _, err := act(e3, "default", wid, admin, workflow.ActionRequest{Action: "reassign", AssignedRole: "writer"}); err != nil {
		t.Fatal(err)
	}
	if n, err := workflow.NewDeliverer(e3.svc, nil).DeliverDue(ctxT(t), 10); err != nil || n != 1 {
		t.Fatalf("attempt to a dead receiver: %d %v", n, err)
	}
	var attempts int
	var status, lastErr string
	if err := pool.QueryRow(ctxT(t), `SELECT attempts, status, last_error FROM dg_workflow_deliveries WHERE target_url = $1`, downURL).Scan(&attempts, &status, &lastErr); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || status != "pending" || lastErr == "" {
		t.Errorf("after a network error: attempts %d status %s error %q", attempts, status, lastErr)
	}
}
