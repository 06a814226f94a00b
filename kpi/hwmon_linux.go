//go:build linux

package kpi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Hwmon reads the hardware monitoring chips of /sys/class/hwmon: temperatures (°C from
// millidegrees), fan speeds (RPM), voltages (V from mV), currents (A from mA), power (W from µW)
// and energy counters (J from µJ), each labelled "chip/label", e.g. "coretemp.0/Package id 0".
// A chip's alarm flags become the sample's Status. A host without hwmon gives ErrNoData.
type Hwmon struct {
	env  Env
	seen presence
}

var _ Collector = (*Hwmon)(nil)

// NewHwmon returns a collector reading env's /sys/class/hwmon.
func NewHwmon(env Env) *Hwmon { return &Hwmon{env: env.withDefaults()} }

// hwmonKind is what one kind of hwmon channel measures and how its integers scale to base units.
type hwmonKind struct {
	prefix string // attribute prefix: "temp" in temp1_input
	metric string
	q      quantity
	per    float64 // raw units per base unit: 1000 millidegrees per degree
}

// hwmonKinds are the channel kinds drover reads, in the order samples are returned.
var hwmonKinds = [...]hwmonKind{
	{"temp", MetricTempCelsius, qCelsius, 1e3},    // millidegree Celsius
	{"fan", MetricFanRPM, qRPM, 1},                // RPM
	{"in", MetricVoltageVolts, qVolts, 1e3},       // millivolt
	{"curr", MetricCurrentAmperes, qAmperes, 1e3}, // milliampere
	{"power", MetricPowerWatts, qWatts, 1e6},      // microwatt
	{"energy", MetricEnergyJoules, qJoules, 1e6},  // microjoule
}

// hwmonChip is one /sys/class/hwmon/hwmonN directory.
type hwmonChip struct {
	dir  string // hwmonN
	path string
	id   string // how its sensors are labelled
}

// Collect reads every chip's channels once.
func (c *Hwmon) Collect(ctx context.Context) ([]Sample, error) {
	class := c.env.sys("class", "hwmon")
	entries, err := os.ReadDir(class)
	if err != nil && !isAbsent(err) {
		return nil, fmt.Errorf("hwmon: %w", err)
	}
	b := newBatch(SourceSysfs, c.env.Now(), 32)
	chips := make([]hwmonChip, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "hwmon") {
			continue
		}
		p := filepath.Join(class, e.Name())
		name, err := readTrimmed(filepath.Join(p, "name"))
		if err != nil {
			name, _ = readTrimmed(filepath.Join(p, "device", "name")) // drivers before 3.x
		}
		dev, _ := os.Readlink(filepath.Join(p, "device"))
		chips = append(chips, hwmonChip{dir: e.Name(), path: p, id: hwmonChipID(name, filepath.Base(dev), e.Name())})
	}
	slices.SortFunc(chips, func(a, b hwmonChip) int { return naturalCompare(a.dir, b.dir) })
	disambiguate(chips)

	present := map[string]struct{}{}
	for _, ch := range chips {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("hwmon: %w", err)
		}
		c.readChip(b, ch, present)
	}
	b.reportVanished(c.seen.update(present))
	if len(b.samples) == 0 && len(b.errs) == 0 {
		return nil, fmt.Errorf("hwmon: no sensors under %s: %w", class, ErrNoData)
	}
	return b.result()
}

// readChip reads the channels of one chip into b and marks them present.
func (c *Hwmon) readChip(b *batch, ch hwmonChip, present map[string]struct{}) {
	entries, err := os.ReadDir(ch.path)
	if err != nil {
		b.fail("", ch.id, "", fmt.Errorf("list chip: %w", err))
		return
	}
	attrs := make(map[string]struct{}, len(entries))
	type channel struct {
		kind  int
		index int
		input string // the attribute holding the reading
	}
	var chans []channel
	for _, e := range entries {
		attrs[e.Name()] = struct{}{}
	}
	for _, e := range entries {
		prefix, idx, attr, ok := parseHwmonAttr(e.Name())
		if !ok {
			continue
		}
		k := slices.IndexFunc(hwmonKinds[:], func(k hwmonKind) bool { return k.prefix == prefix })
		if k < 0 {
			continue
		}
		// power meters may give only an average
		_, hasInput := attrs[fmt.Sprintf("%s%d_input", prefix, idx)]
		if attr == "input" || (attr == "average" && prefix == "power" && !hasInput) {
			chans = append(chans, channel{k, idx, e.Name()})
		}
	}
	slices.SortFunc(chans, func(a, b channel) int {
		if a.kind != b.kind {
			return a.kind - b.kind
		}
		return a.index - b.index
	})
	labels := map[string]struct{}{}
	for _, chn := range chans {
		k := hwmonKinds[chn.kind]
		base := fmt.Sprintf("%s%d", k.prefix, chn.index)
		attr := func(suffix string) (string, bool, error) {
			name := base + "_" + suffix
			if _, ok := attrs[name]; !ok {
				return "", false, nil
			}
			v, err := readTrimmed(filepath.Join(ch.path, name))
			return v, true, err
		}
		if v, ok, _ := attr("enable"); ok && v == "0" {
			continue // switched off in the chip
		}
		label, _, _ := attr("label")
		if label == "" {
			label = base
		}
		if _, dup := labels[k.prefix+label]; dup {
			label += " (" + base + ")"
		}
		labels[k.prefix+label] = struct{}{}
		sensor := ch.id + "/" + label
		present[presenceKey(sensor, k.metric)] = struct{}{}

		if v, ok, _ := attr("fault"); ok && v == "1" {
			b.fail(k.metric, sensor, "", fmt.Errorf("%w: the chip reports a fault", ErrUnavailable))
			continue
		}
		raw, err := readTrimmed(filepath.Join(ch.path, chn.input))
		if err != nil {
			if isAbsent(err) {
				err = ErrVanished
			} else {
				err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			b.fail(k.metric, sensor, "", err)
			continue
		}
		n, err := parseSysfsInt(raw)
		if err != nil {
			b.fail(k.metric, sensor, raw, err)
			continue
		}
		alarms := map[string]bool{}
		for _, a := range hwmonAlarms {
			if v, ok, err := attr(a); ok && err == nil {
				alarms[a] = v != "0"
			}
		}
		b.add(k.metric, sensor, k.q, float64(n)/k.per, hwmonStatus(k.prefix, alarms), raw)
	}
}

// hwmonAlarms are the alarm attributes a channel may have (Documentation/hwmon/sysfs-interface).
var hwmonAlarms = [...]string{"alarm", "min_alarm", "max_alarm", "lcrit_alarm", "crit_alarm", "emergency_alarm"}

// hwmonStatus is a channel's status from its alarm flags (name → raised); "" when it has none.
// The most severe raised alarm wins. A bare "alarm" does not say which limit was crossed: for a
// fan it is the low limit, for a temperature the high one, for anything else StatusAlarm.
func hwmonStatus(prefix string, alarms map[string]bool) string {
	if len(alarms) == 0 {
		return ""
	}
	switch {
	case alarms["emergency_alarm"]:
		return StatusUpperNonRecoverable
	case alarms["crit_alarm"]:
		return StatusUpperCritical
	case alarms["lcrit_alarm"]:
		return StatusLowerCritical
	case alarms["max_alarm"]:
		return StatusUpperNonCritical
	case alarms["min_alarm"]:
		return StatusLowerNonCritical
	case alarms["alarm"]:
		switch prefix {
		case "fan":
			return StatusLowerNonCritical
		case "temp":
			return StatusUpperNonCritical
		}
		return StatusAlarm
	}
	return StatusOK
}

// parseHwmonAttr splits a hwmon attribute name, "temp1_input" → ("temp", 1, "input").
func parseHwmonAttr(name string) (prefix string, index int, attr string, ok bool) {
	i := strings.IndexAny(name, "0123456789")
	if i <= 0 {
		return "", 0, "", false
	}
	j := strings.IndexByte(name[i:], '_')
	if j <= 0 {
		return "", 0, "", false
	}
	n, err := strconv.Atoi(name[i : i+j])
	if err != nil || name[i+j+1:] == "" {
		return "", 0, "", false
	}
	return name[:i], n, name[i+j+1:], true
}

// hwmonChipID names a chip after its driver and device, stable across reboots unlike hwmonN:
// "coretemp.0" (device coretemp.0 of driver coretemp), "amdgpu@0000:03:00.0" (a device not named
// after its driver), or the bare name when the chip has no device (a virtual one). A chip
// without a readable name goes by its directory.
func hwmonChipID(name, device, dir string) string {
	switch {
	case name == "":
		return dir
	case device == "" || device == ".":
		return name
	case strings.HasPrefix(device, name):
		return device
	}
	return name + "@" + device
}

// disambiguate appends "@hwmonN" to chip IDs that several chips share (chips must be sorted).
func disambiguate(chips []hwmonChip) {
	count := map[string]int{}
	for _, ch := range chips {
		count[ch.id]++
	}
	for i := range chips {
		if count[chips[i].id] > 1 {
			chips[i].id += "@" + chips[i].dir
		}
	}
}
