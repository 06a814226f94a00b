//go:build linux

package kpi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseHwmonAttr(t *testing.T) {
	tests := []struct {
		in     string
		prefix string
		index  int
		attr   string
		ok     bool
	}{
		{"temp1_input", "temp", 1, "input", true},
		{"in0_input", "in", 0, "input", true},
		{"fan12_min_alarm", "fan", 12, "min_alarm", true},
		{"power1_average_interval", "power", 1, "average_interval", true},
		{"name", "", 0, "", false},
		{"pwm1", "", 0, "", false},    // no attribute part
		{"temp1_", "", 0, "", false},  // empty attribute
		{"1_input", "", 0, "", false}, // no prefix
		{"uevent", "", 0, "", false},
	}
	for _, tt := range tests {
		p, i, a, ok := parseHwmonAttr(tt.in)
		if p != tt.prefix || i != tt.index || a != tt.attr || ok != tt.ok {
			t.Errorf("parseHwmonAttr(%q) = %q, %d, %q, %v; want %q, %d, %q, %v", tt.in, p, i, a, ok, tt.prefix, tt.index, tt.attr, tt.ok)
		}
	}
}

func TestHwmonChipID(t *testing.T) {
	tests := []struct{ name, device, dir, want string }{
		{"coretemp", "coretemp.0", "hwmon1", "coretemp.0"},          // device named after the driver
		{"amdgpu", "0000:03:00.0", "hwmon5", "amdgpu@0000:03:00.0"}, // a PCI device
		{"acpitz", "", "hwmon0", "acpitz"},                          // virtual: no device link
		{"", "coretemp.0", "hwmon7", "hwmon7"},                      // no readable name
	}
	for _, tt := range tests {
		if got := hwmonChipID(tt.name, tt.device, tt.dir); got != tt.want {
			t.Errorf("hwmonChipID(%q, %q, %q) = %q, want %q", tt.name, tt.device, tt.dir, got, tt.want)
		}
	}
}

func TestHwmonStatus(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		alarms map[string]bool
		want   string
	}{
		{"no alarm attributes", "temp", nil, ""},
		{"all clear", "temp", map[string]bool{"max_alarm": false, "crit_alarm": false}, "ok"},
		{"critical beats max", "temp", map[string]bool{"max_alarm": true, "crit_alarm": true}, "upper-critical"},
		{"emergency", "temp", map[string]bool{"crit_alarm": true, "emergency_alarm": true}, "upper-non-recoverable"},
		{"low critical", "in", map[string]bool{"lcrit_alarm": true, "min_alarm": true}, "lower-critical"},
		{"min", "in", map[string]bool{"min_alarm": true}, "lower-non-critical"},
		{"bare alarm on a fan: too slow", "fan", map[string]bool{"alarm": true}, "lower-non-critical"},
		{"bare alarm on a temperature: too hot", "temp", map[string]bool{"alarm": true}, "upper-non-critical"},
		{"bare alarm on a voltage: side unknown", "in", map[string]bool{"alarm": true}, "alarm"},
	}
	for _, tt := range tests {
		if got := hwmonStatus(tt.prefix, tt.alarms); got != tt.want {
			t.Errorf("%s: hwmonStatus = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNaturalCompare(t *testing.T) {
	got := []string{"hwmon10", "hwmon2", "hwmon1", "thermal_zone0", "hwmon"}
	slices.SortFunc(got, naturalCompare)
	want := []string{"hwmon", "hwmon1", "hwmon2", "hwmon10", "thermal_zone0"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted %q, want %q", got, want)
	}
}

// hwmonFixture is what testdata/sys/class/hwmon holds, in the collector's order: chips by hwmonN,
// then temperatures, fans, voltages, currents, power, energy, each by channel number.
func hwmonFixture() []Sample {
	s := func(metric, sensor, unit string, v float64, status string) Sample {
		return Sample{Source: "sysfs", Metric: metric, Sensor: sensor, Unit: unit, Value: v, Status: status, Time: t0}
	}
	temp := func(sensor string, v float64, status string) Sample {
		return s("temp_celsius", sensor, "celsius", v, status)
	}
	return []Sample{
		// hwmon0, ACPI power meter: power1_average 245500000 µW = 245.5 W, no alarm attributes
		s("power_watts", "power_meter@ACPI000D:00/power1", "watts", 245.5, ""),
		// hwmon1, socket 0: millidegrees / 1000; crit_alarm 0 everywhere
		temp("coretemp.0/Package id 0", 45, "ok"),
		temp("coretemp.0/Core 0", 43, "ok"),
		temp("coretemp.0/Core 1", 44, "ok"),
		temp("coretemp.0/Core 2", 41, "ok"),
		temp("coretemp.0/Core 3", 46, "ok"),
		// hwmon2, socket 1: 101000 m°C with temp1_crit_alarm 1
		temp("coretemp.1/Package id 1", 101, "upper-critical"),
		temp("coretemp.1/Core 0", 52, "ok"),
		temp("coretemp.1/Core 1", 50.5, "ok"),
		// hwmon3, Super I/O
		temp("nct6775.656/SYSTIN", 38, "ok"),
		temp("nct6775.656/CPUTIN", 41.5, "ok"),
		s("fan_rpm", "nct6775.656/fan1", "rpm", 1250, "ok"),
		s("fan_rpm", "nct6775.656/fan2", "rpm", 0, "lower-non-critical"), // stopped, fan2_alarm 1
		s("voltage_volts", "nct6775.656/in0", "volts", 1.04, "ok"),       // 1040 mV
		s("voltage_volts", "nct6775.656/in1", "volts", 1.832, "ok"),
		s("voltage_volts", "nct6775.656/in2", "volts", 3.344, "ok"),
		s("voltage_volts", "nct6775.656/in3", "volts", 3.312, "ok"),
		// hwmon4, acpitz: no device link, only temp1_crit (no alarm)
		temp("acpitz/temp1", 27.8, ""),
	}
}

func TestHwmonCollect(t *testing.T) {
	got, err := NewHwmon(fixtureEnv("proc", "sys")).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := diffSamples(got, hwmonFixture()); d != "" {
		t.Error(d)
	}
}

func TestHwmonBad(t *testing.T) {
	got, err := NewHwmon(fixtureEnv("proc", "sys-bad")).Collect(context.Background())
	want := []Sample{
		{Source: "sysfs", Metric: "temp_celsius", Sensor: "nct6775.656/SYSTIN", Unit: "celsius", Value: 40, Time: t0},
		{Source: "sysfs", Metric: "fan_rpm", Sensor: "nct6775.656/fan2", Unit: "rpm", Value: 980, Time: t0},
		{Source: "sysfs", Metric: "voltage_volts", Sensor: "nct6775.656/in0", Unit: "volts", Value: 1.04, Time: t0},
	}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
	wantErrs := []string{
		"sysfs|nct6775.656/AUXTIN0|temp_celsius|-128000|bad value",    // -128 °C: a disconnected input
		"sysfs|nct6775.656/CPUTIN|temp_celsius||reading unavailable",  // temp3_fault 1
		"sysfs|nct6775.656/PECI0|temp_celsius|4O000|bad value",        // letter O
		"sysfs|nct6775.656/fan1|fan_rpm|250000|bad value",             // > 100k RPM
		"sysfs|nct6775.656/power1|power_watts|150000000000|bad value", // 150 kW
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, wantErrs) {
		t.Errorf("errors = %q\nwant %q", g, wantErrs)
	}
	var se *SampleError
	if !errors.As(err, &se) || se.Error() != `sysfs "nct6775.656/AUXTIN0" temp_celsius: read "-128000": bad value: -128 celsius is below -60` {
		t.Errorf("first error reads %q", se)
	}
}

func TestHwmonVanished(t *testing.T) {
	sys := copyTree(t, "testdata/sys")
	c := NewHwmon(Env{SysRoot: sys, Now: newClock().Now})
	ctx := context.Background()
	if _, err := c.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	// fan1 goes from the Super I/O chip, and the whole acpitz chip goes
	if err := os.Remove(filepath.Join(sys, "class/hwmon/hwmon3/fan1_input")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(sys, "class/hwmon/hwmon4")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Collect(ctx)
	if len(got) != len(hwmonFixture())-2 {
		t.Errorf("%d samples, want %d", len(got), len(hwmonFixture())-2)
	}
	for _, s := range got {
		if s.Sensor == "nct6775.656/fan1" || s.Sensor == "acpitz/temp1" {
			t.Errorf("vanished sensor returned: %v", s)
		}
	}
	wantErrs := []string{
		"sysfs|acpitz/temp1|temp_celsius||sensor vanished",
		"sysfs|nct6775.656/fan1|fan_rpm||sensor vanished",
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, wantErrs) {
		t.Errorf("errors = %q\nwant %q", g, wantErrs)
	}
	// the chip comes back: all good again
	if err := os.Symlink("../../devices/virtual/thermal/thermal_zone0/hwmon4", filepath.Join(sys, "class/hwmon/hwmon4")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sys, "class/hwmon/hwmon3/fan1_input"), "1250\n")
	if got, err := c.Collect(ctx); err != nil || len(got) != len(hwmonFixture()) {
		t.Errorf("after the sensors came back: %d samples, %v", len(got), err)
	}
}

func TestHwmonUnreadable(t *testing.T) {
	// a reading the kernel refuses (EIO, ENODATA on a real chip; EISDIR here) is unavailable
	sys := t.TempDir()
	writeFile(t, filepath.Join(sys, "class/hwmon/hwmon0/name"), "it87\n")
	writeFile(t, filepath.Join(sys, "class/hwmon/hwmon0/temp1_input"), "35000\n")
	if err := os.Mkdir(filepath.Join(sys, "class/hwmon/hwmon0/temp2_input"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := NewHwmon(Env{SysRoot: sys, Now: newClock().Now}).Collect(context.Background())
	if len(got) != 1 || got[0].Sensor != "it87/temp1" || got[0].Value != 35 {
		t.Errorf("samples %v, want it87/temp1 = 35", got)
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, []string{"sysfs|it87/temp2|temp_celsius||reading unavailable"}) {
		t.Errorf("errors = %q", g)
	}
}

func TestHwmonAbsent(t *testing.T) {
	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "class/hwmon"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sys := range []string{t.TempDir(), empty} { // no class/hwmon; an empty one
		if _, err := NewHwmon(Env{SysRoot: sys}).Collect(context.Background()); !errors.Is(err, ErrNoData) {
			t.Errorf("%s: Collect = %v, want ErrNoData", sys, err)
		}
	}
}
