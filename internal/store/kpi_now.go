package store

import (
	"context"
	"fmt"
	"time"
)

// StaleAfter is how old a host's newest KPIs may be before HostsNow calls them stale: a few missed
// collection cycles of an agent.
const StaleAfter = 90 * time.Second

// HostNow is one hypervisor's newest KPIs (from host_kpi_now) and health. Pointer fields are nil
// when the host does not report that KPI.
type HostNow struct {
	ID    int
	Name  string
	State string // the hypervisor's administrative state (active, draining…)

	At    *time.Time    // the host's newest sample; nil when it never reported
	Age   time.Duration // how old At was when read; 0 when At is nil
	Stale bool          // At is nil or older than StaleAfter: the figures below are not "now"

	Load1, Load5                         *float64
	CPUBusyRatio, CPUIOWaitRatio         *float64
	MemTotalBytes, MemAvailableBytes     *float64
	TempMaxCelsius                       *float64
	TempMaxSensor                        string
	PowerWatts                           *float64
	FanMinRPM                            *float64
	PressureCPU, PressureMem, PressureIO *float64 // PSI "some" avg10 ratios
	VMs                                  int      // vnodes with libvirt samples
	WorstStatus                          string   // the hardware's most severe sensor status; "" when none

	Health            string // ok, warning, critical or unknown (see the HostsNow query)
	HealthSince       *time.Time
	WorstSensor       string // the sensor that makes Health warning or critical
	PredictedBreachAt *time.Time
}

// HostsNow returns every hypervisor's newest KPIs and health, ordered by name: one row per host,
// made for whole-cluster reads (the scheduler, dashboards).
func (s *Store) HostsNow(ctx context.Context) ([]HostNow, error) {
	rows, err := s.db.Query(ctx, q.Get("HostsNow"), StaleAfter.Seconds())
	if err != nil {
		return nil, fmt.Errorf("read hosts now: %w", err)
	}
	defer rows.Close()
	var out []HostNow
	for rows.Next() {
		var h HostNow
		var age *float64
		if err := rows.Scan(&h.ID, &h.Name, &h.State, &h.At, &age, &h.Stale,
			&h.Load1, &h.Load5, &h.CPUBusyRatio, &h.CPUIOWaitRatio, &h.MemTotalBytes, &h.MemAvailableBytes,
			&h.TempMaxCelsius, &h.TempMaxSensor, &h.PowerWatts, &h.FanMinRPM,
			&h.PressureCPU, &h.PressureMem, &h.PressureIO, &h.VMs, &h.WorstStatus,
			&h.Health, &h.HealthSince, &h.WorstSensor, &h.PredictedBreachAt); err != nil {
			return nil, fmt.Errorf("read hosts now: %w", err)
		}
		if age != nil {
			h.Age = time.Duration(*age * float64(time.Second))
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read hosts now: %w", err)
	}
	return out, nil
}
