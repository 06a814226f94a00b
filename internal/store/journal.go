package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// UnfinishedMigration returns the vnode's migration that has not finished and the owner executing
// it, or ErrNotFound when there is none.
func (s *Store) UnfinishedMigration(ctx context.Context, vnode string) (Migration, string, error) {
	var m Migration
	var owner string
	err := s.db.QueryRow(ctx, q.Get("UnfinishedMigration"), vnode).Scan(&m.ID, &m.VNode, &m.Src, &m.Dst, &m.Reason,
		&m.Phase, &m.CreatedAt, &m.StartedAt, &m.FirstByte, &m.FinishedAt, &m.TotalMS, &m.DowntimeMS, &m.BytesTotal,
		&m.BytesSent, &m.Iterations, &m.Error, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, "", fmt.Errorf("unfinished migration of %s: %w", vnode, ErrNotFound)
	}
	if err != nil {
		return m, "", fmt.Errorf("unfinished migration of %s: %w", vnode, err)
	}
	return m, owner, nil
}

// MigrationsOfVnode returns the vnode's journal rows, oldest first.
func (s *Store) MigrationsOfVnode(ctx context.Context, vnode string) ([]Migration, error) {
	rows, err := s.db.Query(ctx, q.Get("MigrationsOfVnode"), vnode)
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", vnode, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Migration, error) {
		var m Migration
		err := r.Scan(&m.ID, &m.VNode, &m.Src, &m.Dst, &m.Reason, &m.Phase, &m.CreatedAt, &m.StartedAt, &m.FirstByte,
			&m.FinishedAt, &m.TotalMS, &m.DowntimeMS, &m.BytesTotal, &m.BytesSent, &m.Iterations, &m.Error)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", vnode, err)
	}
	return out, nil
}

// MigrationEvent is one journal entry of a migration: the phase it entered and its detail.
type MigrationEvent struct {
	Phase  string
	At     time.Time
	Detail map[string]any
}

// MigrationEvents returns a migration's journal entries in the order they were written.
func (s *Store) MigrationEvents(ctx context.Context, id int64) ([]MigrationEvent, error) {
	rows, err := s.db.Query(ctx, q.Get("MigrationEvents"), id)
	if err != nil {
		return nil, fmt.Errorf("events of migration %d: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MigrationEvent, error) {
		var e MigrationEvent
		err := r.Scan(&e.Phase, &e.At, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("events of migration %d: %w", id, err)
	}
	return out, nil
}

// VnodeHistoryEntry is one row of a vnode's history.
type VnodeHistoryEntry struct {
	Event      string
	At         time.Time
	Hypervisor string // "" when none was recorded
	Detail     map[string]any
}

// VnodeHistory returns the vnode's lifecycle events, oldest first.
func (s *Store) VnodeHistory(ctx context.Context, vnode string) ([]VnodeHistoryEntry, error) {
	rows, err := s.db.Query(ctx, q.Get("VnodeHistory"), vnode)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", vnode, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (VnodeHistoryEntry, error) {
		var e VnodeHistoryEntry
		err := r.Scan(&e.Event, &e.At, &e.Hypervisor, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", vnode, err)
	}
	return out, nil
}
