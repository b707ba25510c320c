package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
)

// LastEvents returns the last n events (of one tenant, or all when tenant is
// ""), in log_seq order.
func (s *Store) LastEvents(ctx context.Context, tenant string, n int) ([]*event.StoredEvent, error) {
	if n <= 0 || n > MaxQueryLimit {
		return nil, invalidArg("limit", "limit must be between 1 and %d, got %d", MaxQueryLimit, n)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM dg_event_log e
		WHERE $1 = '' OR e.tenant_id = $1 ORDER BY e.log_seq DESC LIMIT $2`, tenant, n)
	if err != nil {
		return nil, fmt.Errorf("read last events: %w", err)
	}
	evs, err := collectEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read last events: %w", err)
	}
	slices.Reverse(evs)
	return evs, nil
}

// Follow calls fn with every event after log_seq `after` (one tenant or
// all) as it is committed, until ctx ends (it then returns nil) or fn
// fails. It wakes on this Store's commits, on NOTIFY from other processes,
// and at least every poll interval (default 1s) in case a notification was
// missed.
func (s *Store) Follow(ctx context.Context, tenant string, after int64, poll time.Duration, fn func(*event.StoredEvent) error) error {
	if poll <= 0 {
		poll = time.Second
	}
	local, cancel := s.Subscribe()
	defer cancel()
	remote := make(chan struct{}, 1)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan struct{})
	go s.listen(lctx, remote, ready)
	// Listen before the first read, so no commit falls between the two.
	select {
	case <-ready:
	case <-ctx.Done():
		return nil
	}

	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		last, err := s.Stream(ctx, tenant, after, 1000, func(evs []*event.StoredEvent) error {
			for _, ev := range evs {
				if err := fn(ev); err != nil {
					return err
				}
			}
			return nil
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		after = last
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-local:
			if !ok {
				local = nil // Store closed: rely on NOTIFY and polling
			}
		case <-remote:
		case <-tick.C:
		}
	}
}

// listen holds one connection in LISTEN dg_events and signals wake for
// every notification until ctx ends; ready is closed once it listens (or
// gave up). Errors end it quietly: Follow polls.
func (s *Store) listen(ctx context.Context, wake chan<- struct{}, ready chan<- struct{}) {
	readyOnce := sync.OnceFunc(func() { close(ready) })
	defer readyOnce()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return
	}
	defer func() {
		// The connection is in LISTEN state: do not give it back to the pool.
		_ = conn.Conn().Close(context.Background())
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return
	}
	readyOnce()
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}
