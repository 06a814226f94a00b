package kpi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/virt"
)

// fakeHV answers DomainStats with what the test put in it.
type fakeHV struct {
	stats []virt.DomainStats
	err   error
}

func (f *fakeHV) DomainStats(_ context.Context, names ...string) ([]virt.DomainStats, error) {
	if len(names) > 0 {
		panic("the collector must ask for all domains in one call")
	}
	return f.stats, f.err
}

func dom(name string, cpu time.Duration, vcpus int, mem uint64) virt.DomainStats {
	return virt.DomainStats{Name: name, State: virt.StateRunning, VCPUs: vcpus, CPUTime: cpu, MemoryBytes: mem, MaxMemoryBytes: mem}
}

func TestLibvirtCollect(t *testing.T) {
	const mib = 1 << 20
	hv := &fakeHV{}
	clock := newClock()
	vnodes := map[string]bool{"vn1": true, "vn2": true, "vn3": true}
	c := NewLibvirt(hv, func(d string) bool { return vnodes[d] }, clock.Now)
	ctx := context.Background()
	s := func(vnode, metric, unit string, v float64, at time.Time) Sample {
		return Sample{Source: "libvirt", VNode: vnode, Metric: metric, Unit: unit, Value: v, Time: at}
	}
	check := func(step string, want []Sample) {
		t.Helper()
		got, err := c.Collect(ctx)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if d := diffSamples(got, want); d != "" {
			t.Errorf("%s:\n%s", step, d)
		}
	}

	// first reading: CPU time and memory, no utilisation yet; "build-box" is not a vnode
	hv.stats = []virt.DomainStats{
		dom("build-box", 9*time.Second, 4, 4096*mib),
		dom("vn1", 100*time.Second, 2, 512*mib),
		dom("vn2", 50*time.Second, 1, 256*mib),
	}
	check("first", []Sample{
		s("vn1", "vm_cpu_seconds", "seconds", 100, t0),
		s("vn1", "vm_memory_bytes", "bytes", 512*mib, t0),
		s("vn2", "vm_cpu_seconds", "seconds", 50, t0),
		s("vn2", "vm_memory_bytes", "bytes", 256*mib, t0),
	})

	// 10 s later: vn1 used 15 s of CPU on 2 vCPUs: 15 / (10 × 2) = 0.75. vn2's CPU time went
	// back (restarted, or migrated in: a new QEMU process): no ratio. vn3 is new: no ratio.
	clock.Advance(10 * time.Second)
	t1 := t0.Add(10 * time.Second)
	hv.stats = []virt.DomainStats{
		dom("vn1", 115*time.Second, 2, 512*mib),
		dom("vn2", time.Second, 1, 256*mib),
		dom("vn3", 2*time.Second, 1, 128*mib),
	}
	check("second", []Sample{
		s("vn1", "vm_cpu_seconds", "seconds", 115, t1),
		s("vn1", "vm_memory_bytes", "bytes", 512*mib, t1),
		s("vn1", "vm_cpu_busy_ratio", "ratio", 0.75, t1),
		s("vn2", "vm_cpu_seconds", "seconds", 1, t1),
		s("vn2", "vm_memory_bytes", "bytes", 256*mib, t1),
		s("vn3", "vm_cpu_seconds", "seconds", 2, t1),
		s("vn3", "vm_memory_bytes", "bytes", 128*mib, t1),
	})

	// 10 s later: vn1 idle (0), vn2 used 5 s on 1 vCPU: 5 / 10 = 0.5; vn3 left (migrated away)
	clock.Advance(10 * time.Second)
	t2 := t0.Add(20 * time.Second)
	hv.stats = []virt.DomainStats{
		dom("vn1", 115*time.Second, 2, 512*mib),
		dom("vn2", 6*time.Second, 1, 256*mib),
	}
	check("third", []Sample{
		s("vn1", "vm_cpu_seconds", "seconds", 115, t2),
		s("vn1", "vm_memory_bytes", "bytes", 512*mib, t2),
		s("vn1", "vm_cpu_busy_ratio", "ratio", 0, t2),
		s("vn2", "vm_cpu_seconds", "seconds", 6, t2),
		s("vn2", "vm_memory_bytes", "bytes", 256*mib, t2),
		s("vn2", "vm_cpu_busy_ratio", "ratio", 0.5, t2),
	})
	if _, ok := c.prev["vn3"]; ok {
		t.Error("state of a domain that left is kept")
	}

	// vn3 comes back 10 s later: it starts afresh, no ratio against its old reading
	clock.Advance(10 * time.Second)
	hv.stats = []virt.DomainStats{dom("vn3", 40*time.Second, 1, 128*mib)}
	got, _ := c.Collect(ctx)
	if len(got) != 2 {
		t.Errorf("returning domain: %v; want CPU seconds and memory only", got)
	}
}

func TestLibvirtShutOff(t *testing.T) {
	// a shut-off domain has no vCPUs online: its CPU time is reported, no ratio
	hv := &fakeHV{stats: []virt.DomainStats{{Name: "vn1", State: virt.StateShutOff}}}
	clock := newClock()
	c := NewLibvirt(hv, nil, clock.Now)
	_, _ = c.Collect(context.Background())
	clock.Advance(time.Second)
	got, err := c.Collect(context.Background())
	if err != nil || len(got) != 2 {
		t.Errorf("Collect = %v, %v; want CPU seconds and memory", got, err)
	}
}

func TestLibvirtFails(t *testing.T) {
	down := errors.New("libvirt qemu+tcp://127.0.0.2/system: unreachable")
	if got, err := NewLibvirt(&fakeHV{err: down}, nil, nil).Collect(context.Background()); got != nil || !errors.Is(err, down) {
		t.Errorf("Collect = %v, %v; want the error", got, err)
	}
}
