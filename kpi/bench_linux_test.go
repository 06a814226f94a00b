//go:build linux

package kpi

import (
	"context"
	"testing"
)

// BenchmarkCollectSysfs is the per-cycle cost of the sysfs collectors on the fixture tree (5 hwmon
// chips with 18 channels, 5 thermal zones, 4 RAPL zones); a real host has more files and slower
// drivers behind them.
func BenchmarkCollectSysfs(b *testing.B) {
	env := fixtureEnv("proc", "sys")
	b.Run("hwmon", func(b *testing.B) { benchCollect(b, NewHwmon(env)) })
	b.Run("thermal", func(b *testing.B) { benchCollect(b, NewThermal(env)) })
	b.Run("rapl", func(b *testing.B) { benchCollect(b, NewRAPL(env)) })
	b.Run("all", func(b *testing.B) {
		cs := []Collector{NewHwmon(env), NewThermal(env), NewRAPL(env)}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			for _, c := range cs {
				_, _ = c.Collect(ctx)
			}
		}
	})
}
