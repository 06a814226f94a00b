package kpi

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
)

func TestParsePressure(t *testing.T) {
	got := parsePressure("some avg10=11.13 avg60=13.19 avg300=7.39 total=404847072\nfull avg10=0.00 avg60=x total=0\n\n")
	if len(got) != 2 {
		t.Fatalf("parsed %d lines, want 2: %+v", len(got), got)
	}
	some, full := got[0], got[1]
	if some.kind != "some" || some.avg[0].v != 11.13 || some.avg[1].v != 13.19 || some.avg[2].v != 7.39 || some.total.v != 404847072 {
		t.Errorf("some = %+v", some)
	}
	// avg60 unparsable, avg300 missing
	if full.kind != "full" || full.avg[0].err != nil || !errors.Is(full.avg[1].err, ErrBadValue) ||
		!errors.Is(full.avg[2].err, errMissing) || full.total.err != nil {
		t.Errorf("full = %+v", full)
	}
}

func TestPressureCollect(t *testing.T) {
	got, err := NewPressure(fixtureEnv("proc", "sys")).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var want []Sample
	add := func(res, kind string, avg10, avg60, avg300, totalMicros float64) {
		for _, s := range []struct {
			suffix, unit string
			v            float64
		}{
			// the kernel's averages are percentages: 11.13 % is a ratio of 0.1113
			{"avg10", "ratio", avg10 / 100}, {"avg60", "ratio", avg60 / 100}, {"avg300", "ratio", avg300 / 100},
			{"seconds", "seconds", totalMicros / 1e6}, // total is in µs: 404847072 µs = 404.847072 s
		} {
			want = append(want, Sample{Source: "procfs", Metric: "pressure_" + res + "_" + kind + "_" + s.suffix, Unit: s.unit, Value: s.v, Time: t0})
		}
	}
	// resources in the collector's order: cpu, memory, io (the fixture has no irq)
	add("cpu", "some", 11.13, 13.19, 7.39, 404847072)
	add("cpu", "full", 0, 0, 0, 0)
	add("memory", "some", 0, 0, 0, 0)
	add("memory", "full", 0, 0, 0, 0)
	add("io", "some", 0.46, 0.23, 0.10, 17271112)
	add("io", "full", 0.22, 0.08, 0.02, 11692259)
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
	if got[0].Metric != "pressure_cpu_some_avg10" || math.Abs(got[0].Value-0.1113) > 1e-12 {
		t.Errorf("first sample %v, want pressure_cpu_some_avg10 = 0.1113", got[0])
	}
}

func TestPressureBad(t *testing.T) {
	// testdata/proc-bad/pressure/cpu:
	//   some avg10=inf avg60=1.00 avg300=abc total=5
	//   full avg10=150.00 avg60=0.00 total=0
	got, err := NewPressure(fixtureEnv("proc-bad", "sys")).Collect(context.Background())
	want := []Sample{
		{Source: "procfs", Metric: "pressure_cpu_some_avg60", Unit: "ratio", Value: 0.01, Time: t0},
		{Source: "procfs", Metric: "pressure_cpu_some_seconds", Unit: "seconds", Value: 5e-6, Time: t0},
		{Source: "procfs", Metric: "pressure_cpu_full_avg60", Unit: "ratio", Value: 0, Time: t0},
		{Source: "procfs", Metric: "pressure_cpu_full_seconds", Unit: "seconds", Value: 0, Time: t0},
	}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
	wantErrs := []string{
		"procfs||pressure_cpu_some_avg10|inf|bad value",    // infinite
		"procfs||pressure_cpu_some_avg300|abc|bad value",   // unparsable
		"procfs||pressure_cpu_full_avg10|150.00|bad value", // 150 % of the time is absurd
		"procfs||pressure_cpu_full_avg300||bad value",      // missing
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, wantErrs) {
		t.Errorf("errors = %q\nwant %q", g, wantErrs)
	}
}

func TestPressureAbsent(t *testing.T) {
	_, err := NewPressure(Env{ProcRoot: t.TempDir()}).Collect(context.Background())
	if !errors.Is(err, ErrNoData) {
		t.Errorf("Collect without /proc/pressure = %v, want ErrNoData", err)
	}
}
