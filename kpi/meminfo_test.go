package kpi

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	m := parseMeminfo("MemTotal:       24683620 kB\nHugePages_Total:     512\nCached:   12 MB\nSwapFree: abc kB\nnot a line\n")
	tests := []struct {
		key  string
		want float64 // -1: must be an error
	}{
		{"MemTotal", 24683620 * 1024}, // the kernel's kB are KiB
		{"HugePages_Total", 512},      // a count: no unit, no scaling
		{"Cached", -1},                // unknown unit
		{"SwapFree", -1},              // not a number
	}
	for _, tt := range tests {
		f, ok := m[tt.key]
		switch {
		case !ok:
			t.Errorf("%s missing", tt.key)
		case tt.want == -1 && !errors.Is(f.err, ErrBadValue):
			t.Errorf("%s = %v, %v; want a bad value", tt.key, f.v, f.err)
		case tt.want != -1 && (f.err != nil || f.v != tt.want):
			t.Errorf("%s = %v, %v; want %v", tt.key, f.v, f.err, tt.want)
		}
	}
	if len(m) != 4 {
		t.Errorf("parsed %d keys, want 4 (a line without a colon is not a key): %v", len(m), m)
	}
}

func TestMeminfoCollect(t *testing.T) {
	got, err := NewMeminfo(fixtureEnv("proc", "sys")).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := func(metric string, v float64) Sample {
		return Sample{Source: "procfs", Metric: metric, Unit: "bytes", Value: v, Time: t0}
	}
	want := []Sample{
		s("memory_total_bytes", 24683620*1024), // 25 276 026 880 B
		s("memory_available_bytes", 24253932*1024),
		s("memory_free_bytes", 23364704*1024),
		s("memory_buffers_bytes", 26596*1024),
		s("memory_cached_bytes", 1018920*1024),
		s("swap_total_bytes", 0),
		s("swap_free_bytes", 0),
		s("hugepages_total_bytes", 512*2048*1024), // 512 pages of 2 MiB = 1 GiB
		s("hugepages_free_bytes", 128*2048*1024),  // 256 MiB
	}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
}

func TestMeminfoBad(t *testing.T) {
	// testdata/proc-bad/meminfo: MemTotal -5 kB, no MemAvailable, MemFree 1000 kB, Cached in
	// MB, SwapTotal "abc"
	got, err := NewMeminfo(fixtureEnv("proc-bad", "sys")).Collect(context.Background())
	want := []Sample{{Source: "procfs", Metric: "memory_free_bytes", Unit: "bytes", Value: 1000 * 1024, Time: t0}}
	if d := diffSamples(got, want); d != "" {
		t.Error(d)
	}
	wantErrs := []string{
		"procfs||memory_total_bytes|-5|bad value",
		"procfs||memory_available_bytes||bad value",
		"procfs||memory_cached_bytes|12 MB|bad value",
		"procfs||swap_total_bytes|abc|bad value",
	}
	if g := errorKeys(sampleErrors(t, err)); !slices.Equal(g, wantErrs) {
		t.Errorf("errors = %q\nwant %q", g, wantErrs)
	}
}
