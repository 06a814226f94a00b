package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// leaderLockName names the advisory lock; the key is hashed with the schema, so servers of
// different schemas (tests, or two drover installations in one database) do not exclude each
// other.
const leaderLockName = "drover-server-leader"

// Leadership holds a PostgreSQL session advisory lock on a dedicated connection for as long as
// this process leads. The lock goes with the connection: if the connection breaks, PostgreSQL
// releases it and Leadership steps down at once, so two servers never both believe they lead.
type Leadership struct {
	pool     *pgxpool.Pool
	log      zerolog.Logger
	interval time.Duration
	leading  atomic.Bool
	changed  chan bool
}

// NewLeadership returns a Leadership campaigning every interval (DefaultCampaign when 0).
func NewLeadership(pool *pgxpool.Pool, interval time.Duration, log zerolog.Logger) *Leadership {
	if interval <= 0 {
		interval = DefaultCampaign
	}
	return &Leadership{pool: pool, log: log, interval: interval, changed: make(chan bool, 1)}
}

// DefaultCampaign is how often a follower tries to take the lock and a leader checks it still
// holds its connection.
const DefaultCampaign = time.Second

// Leading says whether this process holds the lock now.
func (l *Leadership) Leading() bool { return l.leading.Load() }

// Changed delivers the new state on every change (the newest one when the reader lags).
func (l *Leadership) Changed() <-chan bool { return l.changed }

func (l *Leadership) set(v bool) {
	if l.leading.Swap(v) == v {
		return
	}
	select {
	case <-l.changed:
	default:
	}
	l.changed <- v
	if v {
		l.log.Info().Msg("leading: this server acts")
	} else {
		l.log.Warn().Msg("not leading: this server only answers reads")
	}
}

// Run campaigns until ctx ends, then releases the lock.
func (l *Leadership) Run(ctx context.Context) error {
	defer l.set(false)
	for {
		err := l.hold(ctx)
		l.set(false)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			l.log.Warn().Err(err).Dur("retry_in", l.interval).Msg("leader election")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(l.interval):
		}
	}
}

// hold takes a connection, tries the lock until it gets it, then checks the connection every
// interval until it fails or ctx ends.
func (l *Leadership) hold(ctx context.Context) error {
	c, err := l.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	conn := c.Hijack() // the lock lives with this session: never hand it back to the pool
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx) // closing the session releases the lock
	}()
	for {
		var got bool
		err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1 || ':' || current_schema(), 0))`,
			leaderLockName).Scan(&got)
		if err != nil {
			return fmt.Errorf("try leader lock: %w", err)
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(l.interval):
		}
	}
	l.set(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(l.interval):
		}
		if err := ping(ctx, conn); err != nil {
			return fmt.Errorf("lost the leader's database session: %w", err)
		}
	}
}

func ping(ctx context.Context, conn *pgx.Conn) error {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := conn.Ping(pctx)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}
