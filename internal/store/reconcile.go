package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Unfinished is a journal row that has not reached a final phase, with the owner executing it.
type Unfinished struct {
	Migration
	Owner string
}

// UnfinishedMigrations returns every unfinished migration, oldest first.
func (s *Store) UnfinishedMigrations(ctx context.Context) ([]Unfinished, error) {
	rows, err := s.db.Query(ctx, q.Get("UnfinishedMigrations"))
	if err != nil {
		return nil, fmt.Errorf("unfinished migrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Unfinished, error) {
		var u Unfinished
		m := &u.Migration
		err := r.Scan(&m.ID, &m.VNode, &m.Src, &m.Dst, &m.Reason, &m.Phase, &m.CreatedAt, &m.StartedAt, &m.FirstByte,
			&m.FinishedAt, &m.TotalMS, &m.DowntimeMS, &m.BytesTotal, &m.BytesSent, &m.Iterations, &m.Error, &u.Owner)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("unfinished migrations: %w", err)
	}
	return out, nil
}

// VnodeLock is a PostgreSQL session lock on one vnode, held on a connection of its own until
// Release. The process holding it is the only one migrating or reconciling the vnode; when that
// process dies, its connection closes and the lock is free again. That is how a journal row tells
// a live owner from a dead one, whichever host it ran on.
type VnodeLock struct {
	vnode string
	conn  *pgxpool.Conn
}

// ErrNoPool is returned by TryLockVnode when the store's handle cannot lend a connection of its
// own (a transaction): session locks need one.
var ErrNoPool = errors.New("the store has no connection pool: vnode locks need one")

// unlockTimeout bounds releasing a vnode lock, which must happen even after the caller's context ended.
const unlockTimeout = 5 * time.Second

// TryLockVnode takes the vnode's lock if no other session holds it. It returns nil and false when
// another session (a live migration or reconciliation, in this process or another) holds it.
func (s *Store) TryLockVnode(ctx context.Context, vnode string) (*VnodeLock, bool, error) {
	p, ok := s.db.(interface {
		Acquire(context.Context) (*pgxpool.Conn, error)
	})
	if !ok {
		return nil, false, fmt.Errorf("lock vnode %s: %w", vnode, ErrNoPool)
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("lock vnode %s: %w", vnode, err)
	}
	var got bool
	if err := c.QueryRow(ctx, q.Get("TryLockVnode"), vnode).Scan(&got); err != nil {
		c.Release()
		return nil, false, fmt.Errorf("lock vnode %s: %w", vnode, err)
	}
	if !got {
		c.Release()
		return nil, false, nil
	}
	return &VnodeLock{vnode: vnode, conn: c}, true, nil
}

// Release frees the lock and its connection. If the unlock cannot be confirmed, the connection is
// closed, which frees the lock too. Calling Release on nil or twice does nothing.
func (l *VnodeLock) Release() {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	var freed bool
	if err := l.conn.QueryRow(ctx, q.Get("UnlockVnode"), l.vnode).Scan(&freed); err != nil || !freed {
		_ = l.conn.Conn().Close(ctx) // the pool discards a closed connection
	}
	l.conn.Release()
	l.conn = nil
}

// Admit runs fn in a transaction that holds the cluster-wide admission lock: fn counts the
// unfinished migrations and journals a new one through tx, and no other process admits a migration
// in between. fn's error rolls the transaction back and is returned as it is.
func (s *Store) Admit(ctx context.Context, fn func(tx *Store) error) error {
	b, ok := s.db.(interface {
		Begin(context.Context) (pgx.Tx, error)
	})
	if !ok {
		return errors.New("admit migration: the store's handle cannot begin a transaction")
	}
	tx, err := b.Begin(ctx)
	if err != nil {
		return fmt.Errorf("admit migration: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after Commit
	if _, err := tx.Exec(ctx, q.Get("LockMigrationAdmission")); err != nil {
		return fmt.Errorf("admit migration: lock: %w", err)
	}
	if err := fn(&Store{db: tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("admit migration: commit: %w", err)
	}
	return nil
}
