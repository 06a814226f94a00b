package kpi

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    cpuTimes
		wantErr string
	}{
		{name: "ten columns", in: "cpu  123523 15891 89885 751777 1846 0 4691 0 2100 0",
			want: cpuTimes{user: 123523, nice: 15891, system: 89885, idle: 751777, iowait: 1846, softirq: 4691, guest: 2100}},
		{name: "old kernel, four columns", in: "cpu 1 2 3 4", want: cpuTimes{user: 1, nice: 2, system: 3, idle: 4}},
		{name: "a column from a later kernel", in: "cpu 1 2 3 4 5 6 7 8 9 10 11", want: cpuTimes{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "per-cpu line", in: "cpu0 1 2 3 4", wantErr: "not the aggregate cpu line"},
		{name: "too short", in: "cpu 1 2 3", wantErr: "3 counters, want at least 4"},
		{name: "not a number", in: "cpu  123523 15891 89x885 751777", wantErr: `counter 3 "89x885": bad value: invalid syntax`},
		{name: "negative", in: "cpu 1 -2 3 4", wantErr: `counter 2 "-2"`},
		{name: "empty", in: "", wantErr: "not the aggregate cpu line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBadValue) {
					t.Fatalf("err = %v, want a bad value error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStat = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestCPUUtilisation(t *testing.T) {
	base := cpuTimes{user: 100, system: 50, idle: 800, iowait: 50, guest: 40}
	tests := []struct {
		name     string
		prev     cpuTimes
		cur      cpuTimes
		want     cpuRatios
		computed bool
	}{
		{
			// Δuser 60, Δsystem 20, Δidle 80, Δiowait 20, Δirq 5, Δsoftirq 5, Δsteal 10: elapsed 200
			// busy = (200−80−20)/200 = 0.5, iowait 20/200 = 0.1, steal 10/200 = 0.05,
			// guest Δ30/200 = 0.15
			name:     "mixed",
			prev:     base,
			cur:      cpuTimes{user: 160, system: 70, idle: 880, iowait: 70, irq: 5, softirq: 5, steal: 10, guest: 70},
			want:     cpuRatios{busy: 0.5, iowait: 0.1, steal: 0.05, guest: 0.15},
			computed: true,
		},
		{
			// only idle moves: elapsed 100, busy 0 — a real zero, not a missing value
			name: "idle", prev: base, cur: cpuTimes{user: 100, system: 50, idle: 900, iowait: 50, guest: 40},
			want: cpuRatios{}, computed: true,
		},
		{
			// iowait goes back by 5 (a known kernel quirk): counted as 0. Δuser 50 + Δidle 50 = 100,
			// busy 50/100
			name: "iowait goes back", prev: base, cur: cpuTimes{user: 150, system: 50, idle: 850, iowait: 45, guest: 40},
			want: cpuRatios{busy: 0.5}, computed: true,
		},
		{name: "no time passed", prev: base, cur: base, computed: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cpuUtilisation(tt.prev, tt.cur)
			if ok != tt.computed {
				t.Fatalf("ok = %v, want %v", ok, tt.computed)
			}
			if !approx(got.busy, tt.want.busy) || !approx(got.iowait, tt.want.iowait) ||
				!approx(got.steal, tt.want.steal) || !approx(got.guest, tt.want.guest) {
				t.Errorf("cpuUtilisation = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCPUCollect(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	c := NewCPU(Env{ProcRoot: dir, Now: clock.Now})
	stat := filepath.Join(dir, "stat")
	ctx := context.Background()

	writeFile(t, stat, "cpu  100 0 50 800 50 0 0 0 40 0\ncpu0 100 0 50 800 50 0 0 0 40 0\nintr 1 2 3\n")
	if s, err := c.Collect(ctx); !errors.Is(err, ErrNoData) || len(s) != 0 {
		t.Fatalf("first Collect = %v, %v; want no samples and ErrNoData", s, err)
	}

	// the "mixed" case of TestCPUUtilisation: busy 0.5, iowait 0.1, steal 0.05, guest 0.15
	clock.Advance(10e9)
	writeFile(t, stat, "cpu  160 0 70 880 70 5 5 10 70 0\n")
	got, err := c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(10e9)
	want := []Sample{
		{Source: "procfs", Metric: "cpu_busy_ratio", Unit: "ratio", Value: 0.5, Time: at},
		{Source: "procfs", Metric: "cpu_iowait_ratio", Unit: "ratio", Value: 0.1, Time: at},
		{Source: "procfs", Metric: "cpu_steal_ratio", Unit: "ratio", Value: 0.05, Time: at},
		{Source: "procfs", Metric: "cpu_guest_ratio", Unit: "ratio", Value: 0.15, Time: at},
	}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}

	// no tick since: no ratio, and the counters of the last good reading are kept
	if s, err := c.Collect(ctx); !errors.Is(err, ErrNoData) || len(s) != 0 {
		t.Fatalf("Collect without progress = %v, %v; want ErrNoData", s, err)
	}
	// 200 more idle ticks since the kept reading: busy 0, not an average with the empty interval
	writeFile(t, stat, "cpu  160 0 70 1080 70 5 5 10 70 0\n")
	got, err = c.Collect(ctx)
	if err != nil || len(got) != 4 || got[0].Value != 0 {
		t.Fatalf("Collect after idle ticks = %v, %v; want busy 0", got, err)
	}

	// a broken line is a per-sample error; the counters are kept
	writeFile(t, stat, "cpu  160 0 x 1080\n")
	got, err = c.Collect(ctx)
	errs := sampleErrors(t, err)
	if len(got) != 0 || len(errs) != 1 || errorKey(errs[0]) != "procfs||cpu_busy_ratio|cpu  160 0 x 1080|bad value" {
		t.Fatalf("Collect of a broken line = %v, %v", got, err)
	}
}

func TestCPUAbsent(t *testing.T) {
	_, err := NewCPU(Env{ProcRoot: t.TempDir()}).Collect(context.Background())
	if !errors.Is(err, ErrNoData) {
		t.Errorf("Collect without /proc/stat = %v, want ErrNoData", err)
	}
}
