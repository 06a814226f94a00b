package kpi

import (
	"context"
	"os"
	"testing"

	"github.com/rs/zerolog"
)

// benchCollect measures one Collect of c per iteration; ErrNoData and partial results count
// as cycles too (the agent pays for them as well).
func benchCollect(b *testing.B, c Collector) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = c.Collect(ctx)
	}
}

// BenchmarkCollectProcfs is the per-cycle cost of the procfs collectors on this machine's /proc.
func BenchmarkCollectProcfs(b *testing.B) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		b.Skip("no /proc here")
	}
	env := Env{}
	b.Run("loadavg", func(b *testing.B) { benchCollect(b, NewLoadavg(env)) })
	b.Run("cpu", func(b *testing.B) { benchCollect(b, NewCPU(env)) })
	b.Run("meminfo", func(b *testing.B) { benchCollect(b, NewMeminfo(env)) })
	b.Run("pressure", func(b *testing.B) { benchCollect(b, NewPressure(env)) })
	b.Run("all", func(b *testing.B) {
		cs := []Collector{NewLoadavg(env), NewCPU(env), NewMeminfo(env), NewPressure(env)}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			for _, c := range cs {
				_, _ = c.Collect(ctx)
			}
		}
	})
}

// BenchmarkParse is the parsing part alone, on the fixtures.
func BenchmarkParse(b *testing.B) {
	read := func(p string) string {
		t, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return string(t)
	}
	load, stat, mem, psi := read("testdata/proc/loadavg"), read("testdata/proc/stat"), read("testdata/proc/meminfo"), read("testdata/proc/pressure/io")
	b.Run("loadavg", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			parseLoadavg(load)
		}
	})
	b.Run("stat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = parseStat(stat[:len("cpu  123523 15891 89885 751777 1846 0 4691 0 2100 0")])
		}
	})
	b.Run("meminfo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			parseMeminfo(mem)
		}
	})
	b.Run("pressure", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			parsePressure(psi)
		}
	})
}

// BenchmarkRegistryCycle is a whole cycle of the host registry on the fixture trees: every
// procfs and sysfs collector in its own goroutine, plus fake IPMI and libvirt.
func BenchmarkRegistryCycle(b *testing.B) {
	r, err := NewHostRegistry(Options{
		Env: fixtureEnv("proc", "sys"),
		BMC: &fakeBMC{sensors: simSensors()},
	}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.Collect(ctx)
	}
}
