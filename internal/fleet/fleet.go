// Package fleet builds the placement engine's view of the hypervisors from what PostgreSQL knows:
// the inventory (hypervisors, and the vnodes they hold), the newest KPIs and health the agents
// wrote (host_kpi_now, host_health) and recent migrations and failures. It reads only; it makes
// no decisions (scheduler/ does) and touches neither libvirt nor Slurm.
package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/scheduler"
)

// Options tune a Snapshot. The zero value is usable.
type Options struct {
	// Now is the snapshot's clock; zero = time.Now().
	Now time.Time
	// TroubleWindow is how far back migrations and failures count; 0 = DefaultTroubleWindow.
	TroubleWindow time.Duration
	// TempWarnC and TempCritC are the bounds of the hottest sensor when the site gives them
	// (the health thresholds of its CPU temperature); 0 = unknown (neutral thermal score).
	TempWarnC, TempCritC float64
	// Unreachable names hosts whose libvirt did not answer the caller's last probe.
	Unreachable map[string]bool
}

// DefaultTroubleWindow is how far back recent migrations and failures count.
const DefaultTroubleWindow = time.Hour

// Reader is the part of the store a snapshot reads.
type Reader interface {
	FleetInventory(ctx context.Context) ([]store.Inventory, error)
	HostsState(ctx context.Context) ([]store.HostState, error)
	FleetTrouble(ctx context.Context, since time.Time) (map[string]store.Trouble, error)
}

// Snapshot returns every hypervisor as the scheduler sees it, ordered by name. A host whose
// figures are stale keeps a zero KPIAt, so the scheduler's stale filter drops it: stale data
// never looks healthy.
func Snapshot(ctx context.Context, r Reader, o Options) ([]scheduler.Host, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.TroubleWindow <= 0 {
		o.TroubleWindow = DefaultTroubleWindow
	}
	inv, err := r.FleetInventory(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet snapshot: %w", err)
	}
	states, err := r.HostsState(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet snapshot: %w", err)
	}
	kpis := make(map[int]store.HostState, len(states))
	for _, s := range states {
		kpis[s.ID] = s
	}
	trouble, err := r.FleetTrouble(ctx, o.Now.Add(-o.TroubleWindow))
	if err != nil {
		return nil, fmt.Errorf("fleet snapshot: %w", err)
	}
	out := make([]scheduler.Host, 0, len(inv))
	for _, i := range inv {
		h := scheduler.Host{
			Name: i.Name, Rack: i.Rack, State: i.State, Reachable: !o.Unreachable[i.Name],
			CPUs: i.CPUs, MemoryMiB: i.MemoryMiB, AllocCPUs: i.AllocCPUs, AllocMemoryMiB: i.AllocMemoryMiB,
			VNodes: i.VNodes, FreeMemoryMiB: -1, Features: i.Features, PowerCapWatts: i.PowerCapWatts,
			Health: "unknown",
		}
		if k, ok := kpis[i.ID]; ok {
			withKPIs(&h, k, o)
		}
		if t, ok := trouble[i.Name]; ok {
			h.RecentMigrations, h.RecentFailures = t.Migrations, t.Failures
			if t.LastMigration != nil {
				h.LastMigrationAt = *t.LastMigration
			}
			if t.LastFailure != nil {
				h.LastFailureAt = *t.LastFailure
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// withKPIs copies a host's newest figures into h. Stale figures are left out entirely.
func withKPIs(h *scheduler.Host, k store.HostState, o Options) {
	h.Health = k.Health
	// a predicted breach whose time has passed without one (the host cooled) is no prediction:
	// nothing withdraws it from host_health until the sensor's next event
	if k.BreachAt.After(o.Now) {
		h.BreachAt = k.BreachAt
	}
	if k.Stale {
		return
	}
	h.KPIAt = k.At
	h.Load1, h.CPUBusy, h.PowerWatts = k.Load1, k.CPUBusy, k.Watts
	if k.Has[3] {
		h.TempC, h.TempWarnC, h.TempCritC = k.TempMax, o.TempWarnC, o.TempCritC
	}
	if h.MemoryMiB == 0 && k.Has[2] {
		h.FreeMemoryMiB = int64(k.MemAvailable / (1 << 20))
	}
}
