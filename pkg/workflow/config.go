package workflow

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
)

// Webhook is one notification receiver (manifest workflows.notifications.webhooks).
type Webhook struct {
	URL string
	// Categories sent to this receiver; empty means all.
	Categories []string
	// Secret signs each delivery (HMAC-SHA256); empty sends no signature.
	Secret string
}

func (w Webhook) wants(category string) bool {
	if len(w.Categories) == 0 {
		return true
	}
	for _, c := range w.Categories {
		if c == category {
			return true
		}
	}
	return false
}

// Config holds the workflow defaults (A.8) and runtime knobs. Zero fields
// take the defaults of withDefaults.
type Config struct {
	ExceptionReviewSLA    time.Duration // default 4h
	IncidentReviewSLA     time.Duration // default 2h
	DeadlineRiskWarning   time.Duration // default 30m
	DefaultAssignedRole   string        // default "admin"
	DefaultAssignedAcct   string        // default none
	EscalationRole        string        // default "admin"
	EscalationAccountID   string        // default none
	SweepInterval         time.Duration // default 15s
	Webhooks              []Webhook
	ImportBatchSize       int           // default 2000
	DeliveryMaxAttempts   int           // default 12
	DeliveryBackoffBase   time.Duration // default 2s
	DeliveryBackoffMax    time.Duration // default 1h
	DeliveryTimeout       time.Duration // default 10s
	DeliveryPollInterval  time.Duration // default 1s
	DeliveryLeaseDuration time.Duration // default 2m
	// Now is the clock (nil: time.Now). Tests inject a fake one.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.ExceptionReviewSLA <= 0 {
		c.ExceptionReviewSLA = 4 * time.Hour
	}
	if c.IncidentReviewSLA <= 0 {
		c.IncidentReviewSLA = 2 * time.Hour
	}
	if c.DeadlineRiskWarning <= 0 {
		c.DeadlineRiskWarning = 30 * time.Minute
	}
	if c.DefaultAssignedRole == "" {
		c.DefaultAssignedRole = "admin"
	}
	if c.EscalationRole == "" {
		c.EscalationRole = "admin"
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 15 * time.Second
	}
	if c.ImportBatchSize <= 0 {
		c.ImportBatchSize = 2000
	}
	if c.DeliveryMaxAttempts <= 0 {
		c.DeliveryMaxAttempts = 12
	}
	if c.DeliveryBackoffBase <= 0 {
		c.DeliveryBackoffBase = 2 * time.Second
	}
	if c.DeliveryBackoffMax <= 0 {
		c.DeliveryBackoffMax = time.Hour
	}
	if c.DeliveryTimeout <= 0 {
		c.DeliveryTimeout = 10 * time.Second
	}
	if c.DeliveryPollInterval <= 0 {
		c.DeliveryPollInterval = time.Second
	}
	if c.DeliveryLeaseDuration <= 0 {
		c.DeliveryLeaseDuration = 2 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Error is a workflow failure with an API error code: invalid_argument,
// not_found, forbidden, conflict or idempotency_conflict.
type Error struct {
	Code    string
	Message string
	Details map[string]any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Error codes.
const (
	CodeInvalidArgument     = "invalid_argument"
	CodeNotFound            = "not_found"
	CodeForbidden           = "forbidden"
	CodeConflict            = "conflict"
	CodeIdempotencyConflict = "idempotency_conflict"
)

func errf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of a *Error (or of an *event.Error, by its
// API name) in err's chain, "" otherwise.
func ErrorCode(err error) string {
	var we *Error
	if errors.As(err, &we) {
		return we.Code
	}
	if c, ok := event.CodeOf(err); ok {
		return c.Name()
	}
	return ""
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// notificationID is "wfn:" + a name-based UUID (version 5 layout over
// SHA-256) of tenant and dedupe key: the same notification always gets the
// same id, in every process.
func notificationID(tenant, dedupeKey string) string {
	sum := sha256.Sum256([]byte("dg-workflow-notification\x1f" + tenant + "\x1f" + dedupeKey))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return "wfn:" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// intOf reads a JSON number (json.Number, float64, int) as an int.
func intOf(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	case interface{ String() string }:
		i, err := strconv.Atoi(n.String())
		if err == nil {
			return i
		}
	case string:
		i, err := strconv.Atoi(n)
		if err == nil {
			return i
		}
	}
	return 0
}
