package store

import (
	"context"
	"fmt"
	"time"
)

// Inventory is a hypervisor's inventory row and what its vnodes hold now.
type Inventory struct {
	ID             int
	Name           string
	State          string
	CPUs           int
	MemoryMiB      int64
	Features       []string
	Rack           string
	PowerCapWatts  float64
	AllocCPUs      int
	AllocMemoryMiB int64
	VNodes         int
}

// FleetInventory returns every hypervisor's inventory, ordered by name.
func (s *Store) FleetInventory(ctx context.Context) ([]Inventory, error) {
	rows, err := s.db.Query(ctx, q.Get("FleetInventory"))
	if err != nil {
		return nil, fmt.Errorf("read fleet inventory: %w", err)
	}
	defer rows.Close()
	var out []Inventory
	for rows.Next() {
		var i Inventory
		if err := rows.Scan(&i.ID, &i.Name, &i.State, &i.CPUs, &i.MemoryMiB, &i.Features, &i.Rack, &i.PowerCapWatts,
			&i.AllocCPUs, &i.AllocMemoryMiB, &i.VNodes); err != nil {
			return nil, fmt.Errorf("read fleet inventory: %w", err)
		}
		out = append(out, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read fleet inventory: %w", err)
	}
	return out, nil
}

// Trouble is a hypervisor's recent migrations and failures.
type Trouble struct {
	Migrations    int
	LastMigration *time.Time
	Failures      int
	LastFailure   *time.Time
}

// FleetTrouble returns, per hypervisor name, the migrations that touched it since since and the
// ones that failed or were rolled back. Hosts without any are absent.
func (s *Store) FleetTrouble(ctx context.Context, since time.Time) (map[string]Trouble, error) {
	rows, err := s.db.Query(ctx, q.Get("FleetTrouble"), since)
	if err != nil {
		return nil, fmt.Errorf("read fleet trouble: %w", err)
	}
	defer rows.Close()
	out := map[string]Trouble{}
	for rows.Next() {
		var name string
		var t Trouble
		if err := rows.Scan(&name, &t.Migrations, &t.LastMigration, &t.Failures, &t.LastFailure); err != nil {
			return nil, fmt.Errorf("read fleet trouble: %w", err)
		}
		out[name] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read fleet trouble: %w", err)
	}
	return out, nil
}

// PlacementRecord is a stored placement decision.
type PlacementRecord struct {
	ID int64
	At time.Time
	Placement
	ExplainRaw []byte // the explain document as stored (JSON)
}

// PlacementsFor returns the newest placement decisions for vnode ("" = any) or job (0 = any).
func (s *Store) PlacementsFor(ctx context.Context, vnode string, job int64, limit int) ([]PlacementRecord, error) {
	rows, err := s.db.Query(ctx, q.Get("PlacementsFor"), vnode, job, limit)
	if err != nil {
		return nil, fmt.Errorf("read placements: %w", err)
	}
	defer rows.Close()
	var out []PlacementRecord
	for rows.Next() {
		var p PlacementRecord
		if err := rows.Scan(&p.ID, &p.At, &p.VNode, &p.JobID, &p.Hypervisor, &p.Outcome, &p.Policy, &p.Seed,
			&p.Reason, &p.ExplainRaw); err != nil {
			return nil, fmt.Errorf("read placements: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read placements: %w", err)
	}
	return out, nil
}

// SetHypervisorCapacity records what libvirt says a hypervisor has.
func (s *Store) SetHypervisorCapacity(ctx context.Context, name string, cpus int, memoryMiB int64) error {
	if _, err := s.db.Exec(ctx, q.Get("SetHypervisorCapacity"), name, cpus, memoryMiB); err != nil {
		return fmt.Errorf("record capacity of %s: %w", name, err)
	}
	return nil
}
