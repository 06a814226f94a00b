package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrMigrationActive is returned when a vnode already has an unfinished migration.
var ErrMigrationActive = errors.New("the vnode already has an unfinished migration")

// NewMigration is a migration about to be journaled.
type NewMigration struct {
	VNode, Src, Dst string
	Reason          string // manual, evacuation, rebalance, consolidation, drain
	Owner           string
	Params          any
}

// InsertMigration journals a planned migration and returns its id.
func (s *Store) InsertMigration(ctx context.Context, m NewMigration) (int64, error) {
	b, err := json.Marshal(orEmpty(m.Params))
	if err != nil {
		return 0, err
	}
	var id int64
	var created time.Time
	err = s.db.QueryRow(ctx, q.Get("InsertMigration"), m.VNode, m.Src, m.Dst, m.Reason, m.Owner, b).Scan(&id, &created)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505": // unique_violation on migrations_active_vnode
		return 0, fmt.Errorf("migrate %s: %w", m.VNode, ErrMigrationActive)
	case errors.As(err, &pe) && pe.Code == "23502": // not_null_violation: an unknown hypervisor name
		return 0, fmt.Errorf("migrate %s from %s to %s: hypervisor not recorded in the database", m.VNode, m.Src, m.Dst)
	case err != nil:
		return 0, fmt.Errorf("journal migration of %s: %w", m.VNode, err)
	}
	return id, nil
}

// SetMigrationPhase moves a migration to phase (recording errText when not empty) and appends a
// journal event with detail.
func (s *Store) SetMigrationPhase(ctx context.Context, id int64, phase, errText string, detail any) error {
	if _, err := s.db.Exec(ctx, q.Get("SetMigrationPhase"), id, phase, errText); err != nil {
		return fmt.Errorf("migration %d: set phase %s: %w", id, phase, err)
	}
	b, err := json.Marshal(orEmpty(detail))
	if err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, q.Get("InsertMigrationEvent"), id, phase, b); err != nil {
		return fmt.Errorf("migration %d: journal %s: %w", id, phase, err)
	}
	return nil
}

// MigrationFigures are what libvirt reports for a completed migration.
type MigrationFigures struct {
	Total, Downtime time.Duration
	BytesTotal      int64
	BytesProcessed  int64
	Iterations      int
}

// SetMigrationFigures stores a migration's figures.
func (s *Store) SetMigrationFigures(ctx context.Context, id int64, f MigrationFigures) error {
	_, err := s.db.Exec(ctx, q.Get("SetMigrationFigures"), id, ms(f.Total), ms(f.Downtime), f.BytesTotal, f.BytesProcessed, f.Iterations)
	if err != nil {
		return fmt.Errorf("migration %d: store figures: %w", id, err)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Migration is a journal row.
type Migration struct {
	ID                    int64
	VNode, Src, Dst       string
	Reason, Phase         string
	CreatedAt             time.Time
	StartedAt, FirstByte  *time.Time
	FinishedAt            *time.Time
	TotalMS, DowntimeMS   *float64
	BytesTotal, BytesSent *int64
	Iterations            *int
	Error                 string
}

// GetMigration returns a journal row, or ErrNotFound.
func (s *Store) GetMigration(ctx context.Context, id int64) (Migration, error) {
	var m Migration
	err := s.db.QueryRow(ctx, q.Get("GetMigration"), id).Scan(&m.ID, &m.VNode, &m.Src, &m.Dst, &m.Reason, &m.Phase,
		&m.CreatedAt, &m.StartedAt, &m.FirstByte, &m.FinishedAt, &m.TotalMS, &m.DowntimeMS, &m.BytesTotal, &m.BytesSent,
		&m.Iterations, &m.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("migration %d: %w", id, ErrNotFound)
	}
	return m, err
}
