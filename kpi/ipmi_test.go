package kpi

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/drover-hpc/drover/internal/bmc"
)

// fakeBMC answers Sensors with what the test put in it.
type fakeBMC struct {
	sensors []bmc.Sensor
	err     error
}

func (f *fakeBMC) Sensors(context.Context) ([]bmc.Sensor, error) { return f.sensors, f.err }

// simSensors are the sensors of the testbed's ipmi_sim BMC, plus some a real BMC may have.
func simSensors() []bmc.Sensor {
	return []bmc.Sensor{
		{Name: "CPU Temp", Unit: "°C", Value: 45, Available: true, Status: bmc.StatusOK},
		{Name: "Inlet Temp", Unit: "°C", Value: 22.5, Available: true, Status: bmc.StatusOK},
		{Name: "FAN1", Unit: "RPM", Value: 900, Available: true, Status: bmc.StatusLowerNonCritical},
		{Name: "12V", Unit: "V", Value: 12.06, Available: true, Status: bmc.StatusOK},
		{Name: "Pwr Consumption", Unit: "W", Value: 180, Available: true, Status: bmc.StatusOK},
		{Name: "Airflow", Unit: "CFM", Value: 40, Available: true, Status: bmc.StatusOK}, // not a drover KPI
		{Name: "CPU2 Temp", Unit: "°C", Status: bmc.StatusUnavailable, Reason: "sensor scanning is disabled on the BMC"},
		{Name: "PSU Temp", Unit: "°C", Value: 250, Available: true, Status: bmc.StatusUpperNonRecoverable},
		{Name: "P1 Current", Unit: "A", Value: math.NaN(), Available: true, Status: bmc.StatusOK}, // a broken conversion
	}
}

func TestIPMICollect(t *testing.T) {
	f := &fakeBMC{sensors: simSensors()}
	clock := newClock()
	c := NewIPMI(f, clock.Now)
	got, err := c.Collect(context.Background())
	s := func(metric, sensor, unit string, v float64, status string) Sample {
		return Sample{Source: "ipmi", Metric: metric, Sensor: sensor, Unit: unit, Value: v, Status: status, Time: t0}
	}
	want := []Sample{
		s("temp_celsius", "CPU Temp", "celsius", 45, "ok"),
		s("temp_celsius", "Inlet Temp", "celsius", 22.5, "ok"),
		s("fan_rpm", "FAN1", "rpm", 900, "lower-non-critical"),
		s("voltage_volts", "12V", "volts", 12.06, "ok"),
		s("power_watts", "Pwr Consumption", "watts", 180, "ok"),
	}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
	wantErrs := []string{
		"ipmi|CPU2 Temp|temp_celsius||reading unavailable",
		"ipmi|PSU Temp|temp_celsius|250|bad value", // 250 °C is not a temperature a PSU survives
		"ipmi|P1 Current|current_amperes|NaN|bad value",
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, wantErrs) {
		t.Errorf("errors = %q\nwant %q", g, wantErrs)
	}

	// FAN1 disappears from the BMC's answer
	f.sensors = slices.DeleteFunc(simSensors(), func(s bmc.Sensor) bool { return s.Name == "FAN1" })
	got, err = c.Collect(context.Background())
	if len(got) != 4 {
		t.Errorf("%d samples, want 4", len(got))
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Contains(g, "ipmi|FAN1|fan_rpm||sensor vanished") {
		t.Errorf("errors = %q, want FAN1 vanished", g)
	}
}

func TestIPMIPollFails(t *testing.T) {
	down := errors.New("bmc 127.0.0.1:9623 (lanplus): no answer")
	got, err := NewIPMI(&fakeBMC{err: down}, nil).Collect(context.Background())
	var pe *PartialError
	if got != nil || !errors.Is(err, down) || errors.As(err, &pe) {
		t.Errorf("Collect = %v, %v; want no samples and the poll's error", got, err)
	}
}

func TestStatusVocabulary(t *testing.T) {
	// sysfs statuses are internal/bmc's, so health reads both alike
	pairs := [][2]string{
		{StatusOK, string(bmc.StatusOK)},
		{StatusLowerNonCritical, string(bmc.StatusLowerNonCritical)},
		{StatusLowerCritical, string(bmc.StatusLowerCritical)},
		{StatusLowerNonRecoverable, string(bmc.StatusLowerNonRecoverable)},
		{StatusUpperNonCritical, string(bmc.StatusUpperNonCritical)},
		{StatusUpperCritical, string(bmc.StatusUpperCritical)},
		{StatusUpperNonRecoverable, string(bmc.StatusUpperNonRecoverable)},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("kpi status %q differs from bmc's %q", p[0], p[1])
		}
	}
}
