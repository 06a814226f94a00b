package virt

import (
	"strings"
	"testing"
)

func TestConvergence(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name     string
		readings []Progress
		want     string // "" = never stuck
	}{
		{"converging: the data left halves each pass", []Progress{
			{Iteration: 1, DataRemaining: 1024 * mib, BytesPerSec: 100 * mib, DirtyPages: 2560},
			{Iteration: 2, DataRemaining: 300 * mib, BytesPerSec: 100 * mib, DirtyPages: 2560},
			{Iteration: 3, DataRemaining: 150 * mib, BytesPerSec: 100 * mib, DirtyPages: 2560},
			{Iteration: 4, DataRemaining: 75 * mib, BytesPerSec: 100 * mib, DirtyPages: 2560},
			{Iteration: 5, DataRemaining: 37 * mib, BytesPerSec: 100 * mib, DirtyPages: 2560},
		}, ""},
		// 100 MiB/s sent; 25,000 pages of 4 KiB/s = 97.7 MiB/s dirtied ≥ 90 %: four readings in a row
		{"dirty rate at the link's speed", []Progress{
			{Iteration: 2, DataRemaining: 200 * mib, BytesPerSec: 100 * mib, DirtyPages: 25000},
			{Iteration: 2, DataRemaining: 190 * mib, BytesPerSec: 100 * mib, DirtyPages: 25000},
			{Iteration: 3, DataRemaining: 195 * mib, BytesPerSec: 100 * mib, DirtyPages: 25000},
			{Iteration: 3, DataRemaining: 180 * mib, BytesPerSec: 100 * mib, DirtyPages: 25000},
		}, "dirtied about as fast"},
		{"hot readings interrupted never add up", []Progress{
			{Iteration: 2, DataRemaining: 200 * mib, BytesPerSec: 100 * mib, DirtyPages: 25000},
			{Iteration: 2, DataRemaining: 190 * mib, BytesPerSec: 100 * mib, DirtyPages: 25000},
			{Iteration: 3, DataRemaining: 150 * mib, BytesPerSec: 100 * mib, DirtyPages: 100},
			{Iteration: 3, DataRemaining: 140 * mib, BytesPerSec: 100 * mib, DirtyPages: 25000},
			{Iteration: 3, DataRemaining: 130 * mib, BytesPerSec: 100 * mib, DirtyPages: 25000},
		}, ""},
		// passes 2 and 4 start with 120 and 118 MiB left: shrunk by 1.7 % < 5 %
		{"the data left stalls", []Progress{
			{Iteration: 1, DataRemaining: 1024 * mib, BytesPerSec: 100 * mib},
			{Iteration: 2, DataRemaining: 120 * mib, BytesPerSec: 100 * mib},
			{Iteration: 3, DataRemaining: 119 * mib, BytesPerSec: 100 * mib},
			{Iteration: 4, DataRemaining: 118 * mib, BytesPerSec: 100 * mib},
		}, "no longer shrinks"},
	} {
		c := newConvergence()
		got := ""
		for _, p := range tc.readings {
			if stuck, why := c.stuck(p, 0); stuck {
				got = why
				break
			}
		}
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: stuck = %q, want %q", tc.name, got, tc.want)
		}
	}
}
