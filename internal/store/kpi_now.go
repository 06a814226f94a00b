package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
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
	Age   time.Duration // how old At was when read (by this machine's clock); 0 when At is nil
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

	// Health: the host's state from its health events (ok, warning, critical, unknown); with no
	// event yet, ok while it reports and unknown once its figures are stale.
	Health            string
	HealthSince       *time.Time
	WorstSensor       string // the sensor that makes Health warning or critical
	PredictedBreachAt *time.Time
}

// HostsNow returns every hypervisor's newest KPIs and health, ordered by name (byte order): one
// row per host, made for whole-cluster reads (the scheduler, dashboards). Age and Stale are
// worked out against this machine's clock.
func (s *Store) HostsNow(ctx context.Context) ([]HostNow, error) {
	rows, err := s.db.Query(ctx, q.Get("HostsNow"))
	if err != nil {
		return nil, fmt.Errorf("read hosts now: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	var out []HostNow
	var (
		at, since, breach             pgtype.Timestamptz
		f                             [13]pgtype.Float8
		sensor, status, health, worst pgtype.Text
		vms                           pgtype.Int4
	)
	for rows.Next() {
		var h HostNow
		if err := rows.Scan(&h.ID, &h.Name, &h.State, &at,
			&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &sensor, &f[7], &f[8],
			&f[9], &f[10], &f[11], &vms, &status, &health, &since, &worst, &breach); err != nil {
			return nil, fmt.Errorf("read hosts now: %w", err)
		}
		vals := new([13]float64) // one allocation for the row's figures
		ptr := func(i int) *float64 {
			if !f[i].Valid {
				return nil
			}
			vals[i] = f[i].Float64
			return &vals[i]
		}
		h.Load1, h.Load5, h.CPUBusyRatio, h.CPUIOWaitRatio = ptr(0), ptr(1), ptr(2), ptr(3)
		h.MemTotalBytes, h.MemAvailableBytes, h.TempMaxCelsius = ptr(4), ptr(5), ptr(6)
		h.PowerWatts, h.FanMinRPM, h.PressureCPU, h.PressureMem, h.PressureIO = ptr(7), ptr(8), ptr(9), ptr(10), ptr(11)
		h.TempMaxSensor, h.VMs, h.WorstStatus, h.WorstSensor = sensor.String, int(vms.Int32), status.String, worst.String
		h.Stale = true
		if at.Valid {
			t := at.Time
			h.At, h.Age = &t, now.Sub(t)
			h.Stale = h.Age > StaleAfter
		}
		h.HealthSince, h.PredictedBreachAt = timePtr(since), timePtr(breach)
		switch {
		case health.Valid:
			h.Health = health.String
		case !h.Stale: // no health event yet: sensors are ok until one says otherwise
			h.Health = "ok"
		default:
			h.Health = "unknown"
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read hosts now: %w", err)
	}
	slices.SortFunc(out, func(a, b HostNow) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func timePtr(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	return &t.Time
}
