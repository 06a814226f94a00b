//go:build linux

package kpi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// RAPL reads the energy counters of the powercap framework (/sys/class/powercap/intel-rapl:N,
// intel-rapl:N:M; AMD exposes the same tree): per zone, "intel-rapl:0/package-0" or
// "intel-rapl:0:0/dram", the energy in joules and the average power in watts since the previous
// Collect. The hardware counters wrap at max_energy_range_uj (every few minutes to hours);
// energy_joules is made monotonic across wraps: it equals the hardware counter until the first
// wrap and keeps counting after it. The first Collect gives energy only: power needs two. A host
// without RAPL gives ErrNoData; energy_uj is readable by root only since Linux 5.10.
type RAPL struct {
	env  Env
	seen presence

	mu    sync.Mutex
	zones map[string]raplState // by zone directory
}

var _ Collector = (*RAPL)(nil)

// NewRAPL returns a collector reading env's /sys/class/powercap.
func NewRAPL(env Env) *RAPL { return &RAPL{env: env.withDefaults(), zones: map[string]raplState{}} }

// raplState is what RAPL keeps of a zone between Collects.
type raplState struct {
	raw      uint64    // last counter value, µJ
	maxRange uint64    // max_energy_range_uj; 0 when unknown
	at       time.Time // when raw was read
	joules   float64   // energy since the counter's origin, wraps included
}

// Collect reads every zone's counter once.
func (c *RAPL) Collect(ctx context.Context) ([]Sample, error) {
	class := c.env.sys("class", "powercap")
	entries, err := os.ReadDir(class)
	if err != nil && !isAbsent(err) {
		return nil, fmt.Errorf("rapl: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(class, e.Name(), "energy_uj")); err == nil || !isAbsent(err) {
			dirs = append(dirs, e.Name()) // a zone; "intel-rapl" itself is the control type
		}
	}
	slices.Sort(dirs) // intel-rapl:0, intel-rapl:0:0, intel-rapl:1…

	c.mu.Lock()
	defer c.mu.Unlock()
	b := newBatch(SourceSysfs, time.Time{}, 2*len(dirs))
	present := map[string]struct{}{}
	seenDirs := map[string]bool{}
	for _, dir := range dirs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("rapl: %w", err)
		}
		seenDirs[dir] = true
		p := filepath.Join(class, dir)
		name, err := readTrimmed(filepath.Join(p, "name"))
		if err != nil || name == "" {
			name = "zone"
		}
		sensor := dir + "/" + name
		present[presenceKey(sensor, MetricEnergyJoules)] = struct{}{}
		present[presenceKey(sensor, MetricPowerWatts)] = struct{}{}

		raw, err := readTrimmed(filepath.Join(p, "energy_uj"))
		b.at = c.env.Now()
		if err != nil {
			b.fail(MetricEnergyJoules, sensor, "", fmt.Errorf("%w: %w", ErrUnavailable, err))
			continue
		}
		uj, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			b.fail(MetricEnergyJoules, sensor, raw, badNumber(err))
			continue
		}
		prev, ok := c.zones[dir]
		if !ok {
			c.zones[dir] = raplState{raw: uj, maxRange: readMaxRange(p), at: b.at, joules: float64(uj) / 1e6}
			b.add(MetricEnergyJoules, sensor, qJoules, float64(uj)/1e6, "", raw)
			continue
		}
		next, watts, err := raplStep(prev, uj, b.at)
		c.zones[dir] = next
		b.add(MetricEnergyJoules, sensor, qJoules, next.joules, "", "")
		switch {
		case err != nil:
			b.fail(MetricPowerWatts, sensor, raw, err)
		case !next.at.Equal(prev.at):
			b.add(MetricPowerWatts, sensor, qWatts, watts, "", "")
		}
	}
	for dir := range c.zones {
		if !seenDirs[dir] {
			delete(c.zones, dir) // a zone that comes back starts afresh
		}
	}
	b.reportVanished(c.seen.update(present))
	if len(b.samples) == 0 && len(b.errs) == 0 {
		return nil, fmt.Errorf("rapl: no powercap zones under %s: %w", class, ErrNoData)
	}
	return b.result()
}

// readMaxRange reads a zone's max_energy_range_uj; 0 when it cannot (wraps then are errors).
func readMaxRange(zone string) uint64 {
	raw, err := readTrimmed(filepath.Join(zone, "max_energy_range_uj"))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// raplStep advances a zone's state to a new counter reading taken at at and returns the average
// power since the previous one. When no time has passed the state is kept as it was (no power);
// when the counter cannot be explained (it went back without a known range, or the power would
// be absurd) the reading becomes the new baseline, energy is not advanced, and err says why.
func raplStep(prev raplState, uj uint64, at time.Time) (raplState, float64, error) {
	dt := at.Sub(prev.at)
	if dt <= 0 {
		return prev, 0, nil
	}
	next := prev
	next.raw, next.at = uj, at
	delta, err := raplDelta(prev.raw, uj, prev.maxRange)
	if err != nil {
		return next, 0, err
	}
	watts := float64(delta) / 1e6 / dt.Seconds()
	if err := qWatts.check(watts); err != nil {
		return next, 0, fmt.Errorf("%d µJ in %v: %w", delta, dt, err)
	}
	next.joules += float64(delta) / 1e6
	return next, watts, nil
}

// raplDelta is the energy between two counter readings, in µJ. The counter counts up to
// maxRange and starts again from 0, so a reading below the previous one is a wrap:
//
//	delta = (maxRange − prev) + cur
//
// (off by at most 1 µJ, depending on whether the hardware wraps at maxRange or maxRange+1).
func raplDelta(prev, cur, maxRange uint64) (uint64, error) {
	switch {
	case cur >= prev:
		return cur - prev, nil
	case maxRange == 0:
		return 0, fmt.Errorf("%w: counter went back from %d µJ and max_energy_range_uj is unknown", ErrBadValue, prev)
	case prev > maxRange || cur > maxRange:
		return 0, fmt.Errorf("%w: counter went back from %d µJ, beyond max_energy_range_uj %d", ErrBadValue, prev, maxRange)
	}
	return maxRange - prev + cur, nil
}
