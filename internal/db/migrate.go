package db

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migration is one numbered schema change with its inverse.
type Migration struct {
	Version  int
	Name     string
	Up, Down string
}

// Checksum identifies the text of the up migration, so a file edited after it was applied is noticed.
func (m Migration) Checksum() string {
	sum := sha256.Sum256([]byte(m.Up))
	return hex.EncodeToString(sum[:8])
}

var migrationFile = regexp.MustCompile(`^(\d{3})_([a-z0-9_]+)\.(up|down)\.sql$`)

// LoadMigrations reads NNN_name.up.sql / NNN_name.down.sql pairs from fsys. It rejects files with bad
// names, a missing half of a pair, two names for one number and gaps in the numbering.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".sql" {
			continue
		}
		m := migrationFile.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name must be NNN_name.up.sql or NNN_name.down.sql (lower case, digits, underscores)", name)
		}
		v, _ := strconv.Atoi(m[1])
		if v == 0 {
			return nil, fmt.Errorf("migration file %q: numbering starts at 001", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &Migration{Version: v, Name: m[2]}
			byVersion[v] = mig
		}
		if mig.Name != m[2] {
			return nil, fmt.Errorf("migration %03d has two names: %q and %q", v, mig.Name, m[2])
		}
		if m[3] == "up" {
			mig.Up = string(body)
		} else {
			mig.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations have a gap: expected %03d, found %03d_%s", i+1, m.Version, m.Name)
		}
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %03d_%s needs both an .up.sql and a .down.sql file", m.Version, m.Name)
		}
	}
	return out, nil
}

// Migrator applies and reverts migrations. Concurrent migrators (two servers starting at once)
// serialise on a PostgreSQL advisory lock.
type Migrator struct {
	pool       *pgxpool.Pool
	migrations []Migration
}

// NewMigrator returns a migrator for the given migrations (see LoadMigrations).
func NewMigrator(pool *pgxpool.Pool, migrations []Migration) *Migrator {
	return &Migrator{pool: pool, migrations: migrations}
}

// Status is one migration and whether (and when) it is applied.
type Status struct {
	Migration
	Applied   bool
	AppliedAt time.Time
	Modified  bool // applied, but the file changed since
}

const lockKey = 0x64726f766572 // "drover"

const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	checksum   text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// withLock runs fn on one connection holding the migration lock.
func (m *Migrator) withLock(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := m.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKey)); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, createTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

type applied struct {
	checksum string
	at       time.Time
}

func readApplied(ctx context.Context, tx pgx.Tx) (map[int]applied, error) {
	rows, err := tx.Query(ctx, `SELECT version, checksum, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]applied{}
	for rows.Next() {
		var v int
		var a applied
		if err := rows.Scan(&v, &a.checksum, &a.at); err != nil {
			return nil, err
		}
		out[v] = a
	}
	return out, rows.Err()
}

// Status lists every known migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	var out []Status
	err := m.withLock(ctx, func(tx pgx.Tx) error {
		done, err := readApplied(ctx, tx)
		if err != nil {
			return err
		}
		for _, mig := range m.migrations {
			a, ok := done[mig.Version]
			out = append(out, Status{Migration: mig, Applied: ok, AppliedAt: a.at, Modified: ok && a.checksum != mig.Checksum()})
		}
		return nil
	})
	return out, err
}

// Up applies every pending migration in order, all in one transaction, and returns those it applied.
// Running it again applies nothing.
func (m *Migrator) Up(ctx context.Context) ([]Migration, error) {
	var did []Migration
	err := m.withLock(ctx, func(tx pgx.Tx) error {
		done, err := readApplied(ctx, tx)
		if err != nil {
			return err
		}
		for v := range done {
			if v > len(m.migrations) {
				return fmt.Errorf("database has migration %03d, newer than this drover knows (%03d): upgrade drover", v, len(m.migrations))
			}
		}
		for _, mig := range m.migrations {
			if a, ok := done[mig.Version]; ok {
				if a.checksum != mig.Checksum() {
					return fmt.Errorf("migration %03d_%s was changed after it was applied: add a new migration instead", mig.Version, mig.Name)
				}
				continue
			}
			if _, err := tx.Exec(ctx, mig.Up); err != nil {
				return fmt.Errorf("apply %03d_%s: %w", mig.Version, mig.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
				mig.Version, mig.Name, mig.Checksum()); err != nil {
				return fmt.Errorf("record %03d_%s: %w", mig.Version, mig.Name, err)
			}
			did = append(did, mig)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return did, nil
}

// Down reverts the n most recently applied migrations, newest first, and returns those it reverted.
func (m *Migrator) Down(ctx context.Context, n int) ([]Migration, error) {
	if n < 1 {
		return nil, errors.New("down: the number of migrations to revert must be at least 1")
	}
	var did []Migration
	err := m.withLock(ctx, func(tx pgx.Tx) error {
		done, err := readApplied(ctx, tx)
		if err != nil {
			return err
		}
		for i := len(m.migrations) - 1; i >= 0 && len(did) < n; i-- {
			mig := m.migrations[i]
			if _, ok := done[mig.Version]; !ok {
				continue
			}
			if _, err := tx.Exec(ctx, mig.Down); err != nil {
				return fmt.Errorf("revert %03d_%s: %w", mig.Version, mig.Name, err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, mig.Version); err != nil {
				return fmt.Errorf("unrecord %03d_%s: %w", mig.Version, mig.Name, err)
			}
			did = append(did, mig)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return did, nil
}
