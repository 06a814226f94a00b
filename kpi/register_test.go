package kpi

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/virt"
)

func TestNewHostRegistry(t *testing.T) {
	hv := &fakeHV{stats: []virt.DomainStats{dom("vn1", time.Second, 1, 1<<29)}}
	r, err := NewHostRegistry(Options{
		Env:     fixtureEnv("proc", "sys"),
		BMC:     &fakeBMC{sensors: simSensors()},
		Libvirt: hv,
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"loadavg", "cpu", "meminfo", "pressure", "hwmon", "thermal", "rapl", "ipmi", "libvirt"}
	if runtime.GOOS != "linux" {
		want = slices.DeleteFunc(want, func(n string) bool { return n == "hwmon" || n == "thermal" || n == "rapl" })
	}
	if got := r.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names = %v, want %v", got, want)
	}

	cycle := r.Collect(context.Background())
	outcomes := map[string]Outcome{}
	for _, run := range cycle.Runs {
		outcomes[run.Collector] = run.Outcome
	}
	wantOutcomes := map[string]Outcome{
		"loadavg": OutcomeOK, "cpu": OutcomeNoData, "meminfo": OutcomeOK, "pressure": OutcomeOK,
		"hwmon": OutcomeOK, "thermal": OutcomeOK, "rapl": OutcomeOK,
		"ipmi": OutcomePartial, "libvirt": OutcomeOK,
	}
	for _, name := range want {
		if outcomes[name] != wantOutcomes[name] {
			t.Errorf("%s: outcome %q, want %q", name, outcomes[name], wantOutcomes[name])
		}
	}
	// 3 load + 9 memory + 24 pressure + 18 hwmon + 4 thermal + 4 RAPL energy + 5 IPMI + 2 libvirt
	if runtime.GOOS == "linux" && len(cycle.Samples) != 3+9+24+18+4+4+5+2 {
		t.Errorf("%d samples, want 69", len(cycle.Samples))
	}
}

func TestNewHostRegistryWithoutRemotes(t *testing.T) {
	r, err := NewHostRegistry(Options{Env: fixtureEnv("proc", "sys")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(r.Names(), "ipmi") || slices.Contains(r.Names(), "libvirt") {
		t.Errorf("Names = %v: no BMC or libvirt was given", r.Names())
	}
}
