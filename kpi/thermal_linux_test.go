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

func TestThermalStatus(t *testing.T) {
	pch := []thermalTrip{{"critical", 115000}, {"hot", 100000}, {"passive", 60000}}
	tests := []struct {
		name  string
		milli int64
		trips []thermalTrip
		want  string
	}{
		{"no trips", 50000, nil, ""},
		{"unprogrammed x86_pkg_temp trips (0 °C)", 45000, []thermalTrip{{"passive", 0}, {"passive", 0}}, ""},
		{"active trips switch fans on only", 70000, []thermalTrip{{"active", 50000}}, ""},
		{"below every trip", 59999, pch, "ok"},
		{"at passive: throttling", 60000, pch, "upper-non-critical"},
		{"past hot", 101000, pch, "upper-critical"},
		{"past critical: shutdown", 120000, pch, "upper-non-recoverable"},
		{"order of trips does not matter", 120000, []thermalTrip{{"passive", 60000}, {"critical", 115000}}, "upper-non-recoverable"},
	}
	for _, tt := range tests {
		if got := thermalStatus(tt.milli, tt.trips); got != tt.want {
			t.Errorf("%s: thermalStatus(%d) = %q, want %q", tt.name, tt.milli, got, tt.want)
		}
	}
}

func TestThermalCollect(t *testing.T) {
	got, err := NewThermal(fixtureEnv("proc", "sys")).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	temp := func(sensor string, v float64, status string) Sample {
		return Sample{Source: "sysfs", Metric: "temp_celsius", Sensor: sensor, Unit: "celsius", Value: v, Status: status, Time: t0}
	}
	want := []Sample{
		temp("acpitz", 27.8, "ok"),                      // below passive 95 °C and critical 105 °C
		temp("x86_pkg_temp@thermal_zone1", 45, ""),      // two zones of that type; trips unprogrammed
		temp("x86_pkg_temp@thermal_zone2", 101, ""),     // hot, but the zone has no trip to say so
		temp("pch_lewisburg", 61, "upper-non-critical"), // past passive 60 °C, below hot 100 °C
		// thermal_zone4 is disabled; cooling_device0 is not a zone
	}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
}

func TestThermalBad(t *testing.T) {
	got, err := NewThermal(fixtureEnv("proc", "sys-bad")).Collect(context.Background())
	want := []Sample{{Source: "sysfs", Metric: "temp_celsius", Sensor: "x86_pkg_temp", Unit: "celsius", Value: 48, Time: t0}}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
	// 999000 m°C = 999 °C
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, []string{"sysfs|acpitz|temp_celsius|999000|bad value"}) {
		t.Errorf("errors = %q", g)
	}
}

func TestThermalVanished(t *testing.T) {
	sys := copyTree(t, "testdata/sys")
	c := NewThermal(Env{SysRoot: sys})
	if _, err := c.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(sys, "class/thermal/thermal_zone3")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Collect(context.Background())
	if len(got) != 3 {
		t.Errorf("%d samples, want 3", len(got))
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, []string{"sysfs|pch_lewisburg|temp_celsius||sensor vanished"}) {
		t.Errorf("errors = %q", g)
	}
}

func TestThermalAbsent(t *testing.T) {
	if _, err := NewThermal(Env{SysRoot: t.TempDir()}).Collect(context.Background()); !errors.Is(err, ErrNoData) {
		t.Errorf("Collect = %v, want ErrNoData", err)
	}
}
