package workflow

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Webhook headers. The signature is "sha256=" + hex HMAC-SHA256 over
// "<timestamp>.<body>" with the webhook's secret; receivers recompute it
// and reject stale timestamps.
const (
	HeaderSignature = "X-DG-Signature"
	HeaderTimestamp = "X-DG-Timestamp"
	HeaderDelivery  = "X-DG-Delivery"
	HeaderCategory  = "X-DG-Category"
)

// Sign returns the signature header value of body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a signature header in constant time.
func VerifySignature(secret, header string, ts int64, body []byte) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, ts, body)))
}

// Deliverer posts the webhook outbox (dg_workflow_deliveries). Every dg
// process may run one: rows are claimed with FOR UPDATE SKIP LOCKED and a
// lease, so a delivery is attempted by one process at a time and picked up
// again if its process dies mid-attempt. Network errors, 429 and 5xx are
// retried with exponential backoff (DeliveryBackoffBase doubling up to
// DeliveryBackoffMax) until DeliveryMaxAttempts; other 4xx fail at once.
type Deliverer struct {
	svc    *Service
	client *http.Client
}

// NewDeliverer returns a deliverer for svc's webhooks; hc nil uses a
// client with the configured timeout.
func NewDeliverer(svc *Service, hc *http.Client) *Deliverer {
	if hc == nil {
		hc = &http.Client{Timeout: svc.cfg.DeliveryTimeout}
	}
	return &Deliverer{svc: svc, client: hc}
}

// Run delivers until ctx ends, polling every DeliveryPollInterval.
func (d *Deliverer) Run(ctx context.Context) error {
	t := time.NewTicker(d.svc.cfg.DeliveryPollInterval)
	defer t.Stop()
	for {
		for {
			n, err := d.DeliverDue(ctx, 50)
			if err != nil && ctx.Err() == nil {
				d.svc.lg.Warn("webhook delivery round failed", "err", err)
			}
			if n < 50 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type delivery struct {
	tenant, notificationID, dedupeKey, url string
	attempts                               int
}

// DeliverDue attempts up to n due deliveries and returns how many it tried.
func (d *Deliverer) DeliverDue(ctx context.Context, n int) (int, error) {
	now := d.svc.now()
	rows, err := d.svc.pool.Query(ctx, `UPDATE dg_workflow_deliveries d SET lease_until = $2, attempts = d.attempts + 1
		FROM (SELECT tenant_id, notification_id, target_url FROM dg_workflow_deliveries
		      WHERE status = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
		      ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) c
		WHERE d.tenant_id = c.tenant_id AND d.notification_id = c.notification_id AND d.target_url = c.target_url
		RETURNING d.tenant_id, d.notification_id, d.dedupe_key, d.target_url, d.attempts`, now, now.Add(d.svc.cfg.DeliveryLeaseDuration), n)
	if err != nil {
		return 0, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	var batch []delivery
	for rows.Next() {
		var x delivery
		if err := rows.Scan(&x.tenant, &x.notificationID, &x.dedupeKey, &x.url, &x.attempts); err != nil {
			rows.Close()
			return 0, fmt.Errorf("claim webhook deliveries: %w", err)
		}
		batch = append(batch, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	for _, x := range batch {
		if err := d.attempt(ctx, x); err != nil {
			return len(batch), err
		}
	}
	return len(batch), nil
}

func (d *Deliverer) hook(url string) (Webhook, bool) {
	for _, h := range d.svc.cfg.Webhooks {
		if h.URL == url {
			return h, true
		}
	}
	return Webhook{}, false
}

func (d *Deliverer) attempt(ctx context.Context, x delivery) error {
	rows, err := d.svc.pool.Query(ctx, `SELECT `+notificationSelect+` FROM dg_workflow_notifications WHERE tenant_id = $1 AND dedupe_key = $2`,
		x.tenant, x.dedupeKey)
	if err != nil {
		return fmt.Errorf("read notification %s: %w", x.notificationID, err)
	}
	ns, err := collectNotifications(rows)
	if err != nil {
		return fmt.Errorf("read notification %s: %w", x.notificationID, err)
	}
	hook, configured := d.hook(x.url)
	if len(ns) == 0 || !configured {
		reason := "notification is gone"
		if !configured {
			reason = "webhook is no longer configured"
		}
		return d.finish(ctx, x, "failed", 0, reason, time.Time{})
	}
	n := ns[0]
	body, err := json.Marshal(map[string]any{"tenant_id": n.TenantID, "notification": n.JSON(), "attempt": x.attempts})
	if err != nil {
		return d.finish(ctx, x, "failed", 0, "encode: "+err.Error(), time.Time{})
	}
	ts := d.svc.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.url, bytes.NewReader(body))
	if err != nil {
		return d.finish(ctx, x, "failed", 0, "build request: "+err.Error(), time.Time{})
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dg-workflow-webhook/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderDelivery, n.NotificationID)
	req.Header.Set(HeaderCategory, n.Category)
	if hook.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(hook.Secret, ts, body))
	}
	resp, err := d.client.Do(req)
	status := 0
	var cause string
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // shutting down: the lease expires and the row is retried
		}
		cause = err.Error()
	} else {
		status = resp.StatusCode
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if status >= 200 && status < 300 {
			return d.finish(ctx, x, "delivered", status, "", time.Time{})
		}
		cause = "HTTP " + strconv.Itoa(status)
	}
	retryable := status == 0 || status == http.StatusTooManyRequests || status >= 500
	if !retryable || x.attempts >= d.svc.cfg.DeliveryMaxAttempts {
		d.svc.lg.Warn("webhook delivery failed for good", "tenant_id", x.tenant, "notification_id", x.notificationID, "url", x.url, "attempts", x.attempts, "error", cause)
		return d.finish(ctx, x, "failed", status, cause, time.Time{})
	}
	return d.finish(ctx, x, "pending", status, cause, d.svc.now().Add(d.backoff(x.attempts)))
}

// backoff is the wait after the attempts-th failed attempt.
func (d *Deliverer) backoff(attempts int) time.Duration {
	b := d.svc.cfg.DeliveryBackoffBase
	for i := 1; i < attempts && b < d.svc.cfg.DeliveryBackoffMax; i++ {
		b *= 2
	}
	return min(b, d.svc.cfg.DeliveryBackoffMax)
}

func (d *Deliverer) finish(ctx context.Context, x delivery, status string, httpStatus int, cause string, next time.Time) error {
	now := d.svc.now()
	var code *int
	if httpStatus != 0 {
		code = &httpStatus
	}
	var deliveredAt *time.Time
	if status == "delivered" {
		deliveredAt = &now
	}
	if next.IsZero() {
		next = now
	}
	_, err := d.svc.pool.Exec(ctx, `UPDATE dg_workflow_deliveries SET status = $4, last_status = $5, last_error = $6,
		next_attempt_at = $7, lease_until = NULL, delivered_at = $8
		WHERE tenant_id = $1 AND notification_id = $2 AND target_url = $3`,
		x.tenant, x.notificationID, x.url, status, code, sp(cause), next, deliveredAt)
	if err != nil {
		return fmt.Errorf("record webhook delivery of %s: %w", x.notificationID, err)
	}
	return nil
}

// DeliveryState is one outbox row.
type DeliveryState struct {
	NotificationID string    `json:"notification_id"`
	URL            string    `json:"target_url"`
	Status         string    `json:"status"`
	Attempts       int       `json:"attempts"`
	LastStatus     *int      `json:"last_status"`
	LastError      *string   `json:"last_error"`
	NextAttemptAt  time.Time `json:"next_attempt_at"`
}

// Deliveries lists a tenant's outbox rows, oldest first.
func (s *Service) Deliveries(ctx context.Context, tenant string) ([]DeliveryState, error) {
	rows, err := s.pool.Query(ctx, `SELECT notification_id, target_url, status, attempts, last_status, last_error, next_attempt_at
		FROM dg_workflow_deliveries WHERE tenant_id = $1 ORDER BY created_at, notification_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeliveryState, error) {
		var d DeliveryState
		err := row.Scan(&d.NotificationID, &d.URL, &d.Status, &d.Attempts, &d.LastStatus, &d.LastError, &d.NextAttemptAt)
		return d, err
	})
}

// Health is the workflow section of /api/healthz: the runtime's settings,
// the tenants it has imported, and the webhook outbox by state.
func (s *Service) Health(ctx context.Context) (map[string]any, error) {
	var tenants, oldest int64
	var pending, failed, delivered int64
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM dg_workflow_runtime),
		coalesce((SELECT extract(epoch FROM $1 - min(updated_at))::bigint FROM dg_workflow_runtime), 0),
		(SELECT count(*) FROM dg_workflow_deliveries WHERE status = 'pending'),
		(SELECT count(*) FROM dg_workflow_deliveries WHERE status = 'failed'),
		(SELECT count(*) FROM dg_workflow_deliveries WHERE status = 'delivered')`, s.now()).Scan(&tenants, &oldest, &pending, &failed, &delivered)
	if err != nil {
		return nil, fmt.Errorf("workflow health: %w", err)
	}
	return map[string]any{
		"sla_sweep_interval":         s.cfg.SweepInterval.String(),
		"webhooks":                   len(s.cfg.Webhooks),
		"tenants":                    tenants,
		"oldest_refresh_age_seconds": oldest,
		"deliveries":                 map[string]any{"pending": pending, "failed": failed, "delivered": delivered},
	}, nil
}
