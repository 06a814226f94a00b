package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// HostState is what placement needs to know of a hypervisor right now (see HostsState).
type HostState struct {
	ID     int
	At     time.Time // the newest sample's time
	Stale  bool      // At is older than StaleAfter
	Health string    // ok, warning, critical or unknown; ok when fresh and never evented
	// BreachAt is the earliest predicted breach; zero when none.
	BreachAt                                     time.Time
	Load1, CPUBusy, MemAvailable, TempMax, Watts float64
	// Has says which of the five figures were reported (Load1, CPUBusy, MemAvailable, TempMax, Watts).
	Has [5]bool
}

// hostsStateTypes are the column types of the HostsState query, in order.
var hostsStateTypes = [...]uint32{pgtype.Int4OID, pgtype.TimestamptzOID, pgtype.Float8OID, pgtype.Float8OID,
	pgtype.Float8OID, pgtype.Float8OID, pgtype.Float8OID, pgtype.TextOID, pgtype.TimestamptzOID}

// HostsState returns the state of every hypervisor that has reported, in no particular order:
// the lean whole-cluster read behind the scheduler's view (10,000 hosts: one scan of the per-host
// summary, which carries copies of host_health's state and breach, decoded straight from
// PostgreSQL's binary rows). Figures of stale hosts are returned but flagged.
func (s *Store) HostsState(ctx context.Context) ([]HostState, error) {
	rows, err := s.db.Query(ctx, q.Get("HostsState"))
	if err != nil {
		return nil, fmt.Errorf("read hosts state: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	// Rows go into a slice sized for the last read's count and a little more. Beyond that they
	// are gathered in chunks of doubling size and copied once into a slice of the exact length:
	// appending to one slice copied 10,000 hosts' states eight times over as it grew, which with
	// the garbage it left was a third of the read's CPU time.
	var full [][]HostState
	n := s.hosts.Load()
	cur := make([]HostState, 0, max(1024, n+n/32))
	defer func() { s.hosts.Store(int64(total(full, cur))) }()
	var (
		id     int32
		at     pgtype.Timestamptz
		f      [5]pgtype.Float8
		health pgtype.Text
		breach pgtype.Timestamptz
	)
	raw := rawReadable(rows.FieldDescriptions(), hostsStateTypes[:])
	for rows.Next() {
		if raw {
			v := rows.RawValues()
			id, at = int32(binary.BigEndian.Uint32(v[0])), rawTime(v[1])
			for i := range f {
				f[i] = rawFloat(v[2+i])
			}
			health, breach = rawHealth(v[7]), rawTime(v[8])
		} else if err := rows.Scan(&id, &at, &f[0], &f[1], &f[2], &f[3], &f[4], &health, &breach); err != nil {
			return nil, fmt.Errorf("read hosts state: %w", err)
		}
		h := HostState{ID: int(id), At: at.Time, Stale: !at.Valid || now.Sub(at.Time) > StaleAfter,
			Load1: f[0].Float64, CPUBusy: f[1].Float64, MemAvailable: f[2].Float64, TempMax: f[3].Float64, Watts: f[4].Float64,
			BreachAt: breach.Time}
		for i := range f {
			h.Has[i] = f[i].Valid
		}
		switch {
		case health.Valid:
			h.Health = health.String
		case !h.Stale:
			h.Health = "ok" // no health event yet: sensors are ok until one says otherwise
		default:
			h.Health = "unknown"
		}
		if len(cur) == cap(cur) {
			full = append(full, cur)
			cur = make([]HostState, 0, 2*cap(cur))
		}
		cur = append(cur, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read hosts state: %w", err)
	}
	if len(full) == 0 {
		return cur, nil
	}
	out := make([]HostState, 0, total(full, cur))
	for _, c := range full {
		out = append(out, c...)
	}
	return append(out, cur...), nil
}

// total is the number of states in the chunks and cur.
func total(full [][]HostState, cur []HostState) int {
	n := len(cur)
	for _, c := range full {
		n += len(c)
	}
	return n
}

// rawHealth is rawText for a health state, without allocating for the four known ones.
func rawHealth(b []byte) pgtype.Text {
	switch string(b) {
	case "ok":
		return pgtype.Text{String: "ok", Valid: true}
	case "warning":
		return pgtype.Text{String: "warning", Valid: true}
	case "critical":
		return pgtype.Text{String: "critical", Valid: true}
	case "unknown":
		return pgtype.Text{String: "unknown", Valid: true}
	}
	return rawText(b)
}
