package kpi

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
)

func TestParseLoadavg(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		in   string
		want [3]float64 // NaN where the field must be NaN
		bad  [3]bool    // fields that must carry an error
	}{
		{"kernel line", "0.52 0.58 0.59 1/467 12345\n", [3]float64{0.52, 0.58, 0.59}, [3]bool{}},
		{"idle host", "0.00 0.00 0.00 1/100 1\n", [3]float64{0, 0, 0}, [3]bool{}},
		// "nan" parses (to NaN): rejecting it is the batch's job, not the parser's
		{"nan and short", "0.50 nan\n", [3]float64{0.5, nan, 0}, [3]bool{false, false, true}},
		{"decimal comma", "1,5 0.2 0.3", [3]float64{0, 0.2, 0.3}, [3]bool{true, false, false}},
		{"empty", "", [3]float64{}, [3]bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseLoadavg(tt.in)
			for i, f := range got {
				if (f.err != nil) != tt.bad[i] {
					t.Errorf("field %d: err = %v, want error %v", i, f.err, tt.bad[i])
				}
				if f.err != nil {
					if !errors.Is(f.err, ErrBadValue) {
						t.Errorf("field %d: err %v does not match ErrBadValue", i, f.err)
					}
					continue
				}
				if w := tt.want[i]; !(math.IsNaN(w) && math.IsNaN(f.v)) && f.v != w {
					t.Errorf("field %d = %v, want %v", i, f.v, w)
				}
			}
		})
	}
}

func TestLoadavgCollect(t *testing.T) {
	got, err := NewLoadavg(fixtureEnv("proc", "sys")).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Sample{
		{Source: "procfs", Metric: "load1", Value: 0.52, Time: t0},
		{Source: "procfs", Metric: "load5", Value: 0.58, Time: t0},
		{Source: "procfs", Metric: "load15", Value: 0.59, Time: t0},
	}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
}

func TestLoadavgBad(t *testing.T) {
	// testdata/proc-bad/loadavg is "0.50 nan": load1 is good, load5 NaN, load15 missing
	got, err := NewLoadavg(fixtureEnv("proc-bad", "sys")).Collect(context.Background())
	want := []Sample{{Source: "procfs", Metric: "load1", Value: 0.5, Time: t0}}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
	wantErrs := []string{
		"procfs||load5|nan|bad value",
		"procfs||load15||bad value",
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, wantErrs) {
		t.Errorf("errors = %q, want %q", g, wantErrs)
	}
	if !errors.Is(err, ErrBadValue) {
		t.Errorf("%v does not match ErrBadValue", err)
	}
}

func TestLoadavgAbsent(t *testing.T) {
	_, err := NewLoadavg(Env{ProcRoot: t.TempDir()}).Collect(context.Background())
	if !errors.Is(err, ErrNoData) {
		t.Errorf("Collect without /proc/loadavg = %v, want ErrNoData", err)
	}
}
