package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure a Store.
type Options struct {
	// MaxConns is the pool size for Open (0: pgxpool's default).
	MaxConns int32
	// Strict turns on strict payload validation (event.Options.Strict).
	Strict bool
	// MaxBatch bounds the events committed in one transaction (default 256).
	MaxBatch int
	// MaxWait is how long the appender waits for more events after the
	// first of a batch arrives (default 0: a batch is whatever queued up
	// while the previous commit ran, which is what group commit needs
	// without adding latency for a lone client).
	MaxWait time.Duration
	// SkipSchemaCheck makes Open/New not require an up-to-date schema.
	SkipSchemaCheck bool
}

func (o Options) withDefaults() Options {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	return o
}

// AppendResult is the outcome of one successful append.
type AppendResult struct {
	Event *event.StoredEvent
	// Replayed is true when the envelope was an idempotent retry and Event
	// is the original stored event (nothing was written).
	Replayed bool
}

// ChainHead is a tenant's hash-chain head.
type ChainHead struct {
	TenantID   string `json:"tenant_id"`
	LogSeq     int64  `json:"log_seq"`
	ChainHash  string `json:"chain_hash"`
	EventCount int64  `json:"event_count"`
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("store is closed")

// ErrSchemaNotCurrent is wrapped when the database schema is behind.
var ErrSchemaNotCurrent = errors.New("database schema is not up to date")

// NotifyChannel is the LISTEN/NOTIFY channel on which every append commit
// announces the new head log_seq (as decimal text) to other processes.
const NotifyChannel = "dg_events"

// Store is the PostgreSQL event log. All appends of a Store go through one
// appender goroutine (group commit); several Stores, in one process or
// many, may share a database safely.
type Store struct {
	pool     *pgxpool.Pool
	ownsPool bool
	opts     Options
	evOpts   event.Options

	reqs    chan *appendReq
	quit    chan struct{}
	stopped chan struct{}
	closeMu sync.RWMutex // held for reading while enqueueing
	closed  bool

	// The appender's memory of the log (speculate.go); only the appender
	// goroutine touches these.
	mem          *logIndex
	memKnown     bool
	specOff      int
	specDisabled bool

	commits  atomic.Int64 // transactions that wrote events
	appended atomic.Int64 // events written
	// fastCommits counts batches committed in one round trip on the
	// appender's memory; staleChecks the times that memory was stale.
	fastCommits atomic.Int64
	staleChecks atomic.Int64

	subsMu  sync.Mutex
	subs    map[int]chan int64
	nextSub int
}

// Open connects to url, checks the schema is current and starts the
// appender.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	s, err := New(ctx, pool, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownsPool = true
	return s, nil
}

// New starts a Store on an existing pool (which Close leaves open).
func New(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if !opts.SkipSchemaCheck {
		rep, err := MigrationStatus(ctx, pool)
		if err != nil {
			return nil, err
		}
		if rep.Newer {
			return nil, fmt.Errorf("%w: the database is at migration %04d, this dg knows up to %04d; run a newer dg", ErrSchemaNewer, rep.Current, rep.Latest)
		}
		if rep.Pending > 0 {
			return nil, fmt.Errorf("%w: %d migration(s) pending (database at %04d, dg at %04d); run `dg migrate`", ErrSchemaNotCurrent, rep.Pending, rep.Current, rep.Latest)
		}
	}
	s := &Store{
		pool:    pool,
		opts:    opts,
		evOpts:  event.Options{Strict: opts.Strict},
		reqs:    make(chan *appendReq, 4*opts.MaxBatch),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
		subs:    map[int]chan int64{},
	}
	go s.run()
	return s, nil
}

// Pool is the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops the appender after the events already queued are answered,
// and closes the pool if Open created it.
func (s *Store) Close() {
	s.closeMu.Lock()
	already := s.closed
	s.closed = true
	s.closeMu.Unlock()
	if !already {
		close(s.quit)
		<-s.stopped
		s.subsMu.Lock()
		for _, ch := range s.subs {
			close(ch)
		}
		s.subs = nil
		s.subsMu.Unlock()
		if s.ownsPool {
			s.pool.Close()
		}
	}
}

// Subscribe returns a channel that receives the head log_seq after every
// commit of this Store's appender, and a function to unsubscribe. Delivery
// never blocks the appender: a slow subscriber sees only the latest head
// (values coalesce). The channel is closed by cancel or Close.
func (s *Store) Subscribe() (<-chan int64, func()) {
	ch := make(chan int64, 1)
	s.subsMu.Lock()
	id := s.nextSub
	s.nextSub++
	if s.subs == nil {
		close(ch)
	} else {
		s.subs[id] = ch
	}
	s.subsMu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.subsMu.Lock()
			if c, ok := s.subs[id]; ok {
				close(c)
				delete(s.subs, id)
			}
			s.subsMu.Unlock()
		})
	}
}

func (s *Store) publish(head int64) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- head:
		default:
			// Replace the stale value with the newer head.
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- head:
			default:
			}
		}
	}
}

// Stats counts what this Store's appender has written.
type Stats struct {
	Commits  int64 `json:"commits"`  // append transactions that wrote events
	Appended int64 `json:"appended"` // events written (replays excluded)
	// FastCommits of the Commits went in one round trip on the appender's
	// memory of the log; StaleChecks counts the times the database found
	// that memory out of date (the batch then read the log first).
	FastCommits int64 `json:"fast_commits"`
	StaleChecks int64 `json:"stale_checks"`
}

// Stats returns the appender's counters; Appended/Commits is the mean
// group-commit batch size.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Appended: s.appended.Load(),
		FastCommits: s.fastCommits.Load(), StaleChecks: s.staleChecks.Load()}
}
