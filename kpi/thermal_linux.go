//go:build linux

package kpi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Thermal reads the kernel's thermal zones, /sys/class/thermal/thermal_zoneN: each zone's
// temperature (°C from millidegrees), labelled by the zone's type ("x86_pkg_temp", "acpitz";
// "acpitz@thermal_zone1" when several zones share a type). The trip points the temperature has
// reached become the sample's Status. Disabled zones are skipped; a host without thermal zones
// gives ErrNoData.
type Thermal struct {
	env  Env
	seen presence
}

var _ Collector = (*Thermal)(nil)

// NewThermal returns a collector reading env's /sys/class/thermal.
func NewThermal(env Env) *Thermal { return &Thermal{env: env.withDefaults()} }

// thermalTrip is one trip point of a zone.
type thermalTrip struct {
	typ  string // critical, hot, passive, active
	temp int64  // millidegree Celsius
}

// Collect reads every zone once.
func (c *Thermal) Collect(ctx context.Context) ([]Sample, error) {
	class := c.env.sys("class", "thermal")
	entries, err := os.ReadDir(class)
	if err != nil && !isAbsent(err) {
		return nil, fmt.Errorf("thermal: %w", err)
	}
	type zone struct{ dir, path, id string }
	var zones []zone
	count := map[string]int{}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "thermal_zone") {
			continue // cooling_deviceN
		}
		p := filepath.Join(class, e.Name())
		typ, err := readTrimmed(filepath.Join(p, "type"))
		if err != nil || typ == "" {
			typ = e.Name()
		}
		zones = append(zones, zone{e.Name(), p, typ})
		count[typ]++
	}
	slices.SortFunc(zones, func(a, b zone) int { return naturalCompare(a.dir, b.dir) })

	b := newBatch(SourceSysfs, c.env.Now(), len(zones))
	present := map[string]struct{}{}
	for _, z := range zones {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("thermal: %w", err)
		}
		sensor := z.id
		if count[z.id] > 1 {
			sensor += "@" + z.dir
		}
		present[presenceKey(sensor, MetricTempCelsius)] = struct{}{}
		if mode, err := readTrimmed(filepath.Join(z.path, "mode")); err == nil && mode == "disabled" {
			continue
		}
		raw, err := readTrimmed(filepath.Join(z.path, "temp"))
		if err != nil {
			if isAbsent(err) {
				err = ErrVanished
			} else {
				err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			b.fail(MetricTempCelsius, sensor, "", err)
			continue
		}
		milli, err := parseSysfsInt(raw)
		if err != nil {
			b.fail(MetricTempCelsius, sensor, raw, err)
			continue
		}
		b.add(MetricTempCelsius, sensor, qCelsius, float64(milli)/1000, thermalStatus(milli, readTrips(z.path)), raw)
	}
	b.reportVanished(c.seen.update(present))
	if len(b.samples) == 0 && len(b.errs) == 0 {
		return nil, fmt.Errorf("thermal: no zones under %s: %w", class, ErrNoData)
	}
	return b.result()
}

// readTrips reads a zone's trip points; unreadable ones are left out (they only refine Status).
func readTrips(zone string) []thermalTrip {
	var trips []thermalTrip
	for i := 0; ; i++ {
		base := filepath.Join(zone, fmt.Sprintf("trip_point_%d_", i))
		typ, err := readTrimmed(base + "type")
		if err != nil {
			return trips
		}
		raw, err := readTrimmed(base + "temp")
		if err != nil {
			continue
		}
		if t, err := parseSysfsInt(raw); err == nil {
			trips = append(trips, thermalTrip{typ, t})
		}
	}
}

// thermalStatus is a zone's status from the trip points its temperature (millidegrees) has
// reached: critical (the kernel shuts the host down) is upper-non-recoverable, hot
// upper-critical, passive (the kernel throttles) upper-non-critical. Active trips only switch
// fans on and do not count. Trips at or below 0 °C are unprogrammed (x86_pkg_temp has two) and
// are ignored. A zone without usable trips has no status ("").
func thermalStatus(milli int64, trips []thermalTrip) string {
	status, sev := "", 0
	for _, tp := range trips {
		var s string
		var v int
		switch tp.typ {
		case "critical":
			s, v = StatusUpperNonRecoverable, 4
		case "hot":
			s, v = StatusUpperCritical, 3
		case "passive":
			s, v = StatusUpperNonCritical, 2
		default:
			continue
		}
		if tp.temp <= 0 {
			continue
		}
		if sev == 0 {
			status, sev = StatusOK, 1
		}
		if milli >= tp.temp && v > sev {
			status, sev = s, v
		}
	}
	return status
}
