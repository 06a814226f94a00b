package kpi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/drover-hpc/drover/internal/virt"
)

// DomainStatsReader reads the statistics of a hypervisor's domains (all of them when no names are
// given); *virt.Conn is one.
type DomainStatsReader interface {
	DomainStats(ctx context.Context, names ...string) ([]virt.DomainStats, error)
}

var _ DomainStatsReader = (*virt.Conn)(nil)

// Libvirt reads per-VM KPIs from a hypervisor's libvirt: CPU time, memory, and the CPU
// utilisation per vCPU between two Collects. Samples carry the domain's name as VNode. A VM seen
// for the first time, or whose CPU time went back (it was restarted, or migrated in: a new QEMU
// process), gets its utilisation from the next Collect on. VMs coming and going is normal and not
// reported.
type Libvirt struct {
	r    DomainStatsReader
	now  func() time.Time
	keep func(domain string) bool

	mu   sync.Mutex
	prev map[string]vmCPU
}

var _ Collector = (*Libvirt)(nil)

// vmCPU is a domain's CPU time at a moment.
type vmCPU struct {
	cpu time.Duration
	at  time.Time
}

// NewLibvirt returns a collector reading r. keep selects the domains to report (nil: all; the
// agent passes its vnode catalog's Has); now stamps the samples (time.Now when nil).
func NewLibvirt(r DomainStatsReader, keep func(domain string) bool, now func() time.Time) *Libvirt {
	if now == nil {
		now = time.Now
	}
	return &Libvirt{r: r, now: now, keep: keep, prev: map[string]vmCPU{}}
}

// Collect reads every domain's statistics once, in one libvirt call.
func (c *Libvirt) Collect(ctx context.Context) ([]Sample, error) {
	stats, err := c.r.DomainStats(ctx)
	if err != nil {
		return nil, fmt.Errorf("libvirt: %w", err)
	}
	at := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	b := newBatch(SourceLibvirt, at, 3*len(stats))
	seen := make(map[string]bool, len(stats))
	for _, d := range stats {
		if c.keep != nil && !c.keep(d.Name) {
			continue
		}
		seen[d.Name] = true
		b.vnode = d.Name
		b.add(MetricVMCPUSeconds, "", qSeconds, d.CPUTime.Seconds(), "", "")
		b.add(MetricVMMemoryBytes, "", qBytes, float64(d.MemoryBytes), "", "")
		cur := vmCPU{cpu: d.CPUTime, at: at}
		prev, ok := c.prev[d.Name]
		if ratio, fine := vmCPUBusy(prev, cur, d.VCPUs); ok && fine {
			b.add(MetricVMCPUBusyRatio, "", qVMRatio, ratio, "", "")
		}
		if !ok || cur.at.After(prev.at) {
			c.prev[d.Name] = cur
		}
	}
	for name := range c.prev {
		if !seen[name] {
			delete(c.prev, name)
		}
	}
	return b.result()
}

// vmCPUBusy is the CPU time a VM used per vCPU per second of wall time between two readings:
//
//	ratio = Δcpu / (Δwall × vCPUs)
//
// ok is false when it cannot be computed: no time passed, the VM has no vCPUs online (shut off),
// or its CPU time went back (a new QEMU process).
func vmCPUBusy(prev, cur vmCPU, vcpus int) (float64, bool) {
	wall := cur.at.Sub(prev.at)
	if wall <= 0 || vcpus <= 0 || cur.cpu < prev.cpu {
		return 0, false
	}
	return (cur.cpu - prev.cpu).Seconds() / (wall.Seconds() * float64(vcpus)), true
}
