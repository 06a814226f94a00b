package kpi

import (
	"cmp"
	"context"
	"errors"
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

// DirtyRateReader measures how fast domains dirty their memory; *virt.Conn is one. A
// DomainStatsReader that is also a DirtyRateReader gets dirty-rate samples.
type DirtyRateReader interface {
	StartDirtyRateCalc(ctx context.Context, name string, period time.Duration) error
	DirtyRates(ctx context.Context, names ...string) ([]virt.DirtyRate, error)
}

var _ DirtyRateReader = (*virt.Conn)(nil)

// JobReader tells whether a libvirt job (a live migration) runs on a domain; *virt.Conn is one.
// A DirtyRateReader that is also a JobReader starts no dirty-rate calculation on a domain that is
// migrating: the calculation would compete with the migration's own dirty-page tracking (KubeVirt
// stopped doing it for that reason), and a migration reports its own dirty rate.
type JobReader interface {
	DomainStatus(ctx context.Context, name string) (virt.DomainStatus, error)
}

var _ JobReader = (*virt.Conn)(nil)

// MetricVMDirtyRate is how fast a VM writes to its memory, in bytes per second, as libvirt's
// dirty-rate calculation measured it: what a live migration has to keep up with.
const MetricVMDirtyRate = "dirty_rate_bytes_per_second"

// DirtyRatePeriod is how long each dirty-rate calculation samples a VM's pages;
// DefaultDirtyRateEvery how often a VM is measured when the collector is not told otherwise.
// Once a minute is enough for migration cost estimates and keeps QEMU's page sampling off a
// guest's back for 59 seconds in 60.
const (
	DirtyRatePeriod       = time.Second
	DefaultDirtyRateEvery = time.Minute
)

var qBytesRate = quantity{"bytes_per_second", 0, 1 << 50}

// Libvirt reads per-VM KPIs from a hypervisor's libvirt: CPU time, memory, and the CPU
// utilisation per vCPU between two Collects. Samples carry the domain's name as VNode. A VM seen
// for the first time, or whose CPU time went back (it was restarted, or migrated in: a new QEMU
// process), gets its utilisation from the next Collect on. VMs coming and going is normal and not
// reported.
//
// When the reader is also a DirtyRateReader, Collect starts a dirty-rate calculation
// (DirtyRatePeriod long, QEMU ≥ 5.2) on each running VM it may measure (see MeasureDirtyRates),
// at most once per DefaultDirtyRateEvery, and reports as MetricVMDirtyRate each calculation
// found finished: starting returns at once, so the cycle never waits for a measurement. A
// calculation someone else runs is not disturbed, and its result is reported too. A hypervisor
// that cannot measure dirty rates makes one Collect return ErrNoData (with its other samples),
// after which the collector stops asking.
type Libvirt struct {
	r    DomainStatsReader
	now  func() time.Time
	keep func(domain string) bool

	mu       sync.Mutex
	prev     map[string]vmCPU
	dirty    DirtyRateReader  // nil: no dirty rates
	reported map[string]int64 // per domain, the dirty-rate calculation last reported (virt.DirtyRate.Started)
	measure  func(domain string) bool
	every    time.Duration
	started  map[string]time.Time // per domain, when this collector last started a calculation
}

var _ Collector = (*Libvirt)(nil)

// vmCPU is a domain's CPU time at a moment.
type vmCPU struct {
	cpu time.Duration
	at  time.Time
}

// NewLibvirt returns a collector reading r. keep selects the domains to report (nil: all, as the
// agent does: every guest's CPU and memory weigh on its host); now stamps the samples (time.Now
// when nil).
func NewLibvirt(r DomainStatsReader, keep func(domain string) bool, now func() time.Time) *Libvirt {
	if now == nil {
		now = time.Now
	}
	c := &Libvirt{r: r, now: now, keep: keep, prev: map[string]vmCPU{}, reported: map[string]int64{},
		every: DefaultDirtyRateEvery, started: map[string]time.Time{}}
	c.dirty, _ = r.(DirtyRateReader)
	return c
}

// MeasureDirtyRates sets which reported domains get dirty-rate calculations (nil: all; the agent
// passes its vnode catalog's Has, so that guests drover does not manage are left alone) and how
// often each is measured (DefaultDirtyRateEvery when 0; at least DirtyRatePeriod).
func (c *Libvirt) MeasureDirtyRates(every time.Duration, measure func(domain string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.every = max(cmp.Or(every, DefaultDirtyRateEvery), DirtyRatePeriod)
	c.measure = measure
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
	forget(c.prev, seen)
	if c.dirty != nil {
		if err := c.dirtyRates(ctx, b, stats, seen); err != nil {
			c.dirty = nil
			if len(b.errs) == 0 {
				return b.samples, err
			}
		}
	}
	return b.result()
}

// dirtyRates reports the dirty-rate calculations finished since the last Collect and starts
// the next ones. c.mu must be held. It returns an error matching ErrNoData when the hypervisor
// cannot measure dirty rates.
func (c *Libvirt) dirtyRates(ctx context.Context, b *batch, stats []virt.DomainStats, seen map[string]bool) error {
	unsupported := func(err error) error {
		return fmt.Errorf("libvirt: no dirty rates on this hypervisor, not asking again: %w: %w", ErrNoData, err)
	}
	rates, err := c.dirty.DirtyRates(ctx)
	if errors.Is(err, virt.ErrDirtyRateUnsupported) {
		return unsupported(err)
	}
	if err != nil {
		b.vnode = ""
		b.fail(MetricVMDirtyRate, "", "", err)
		return nil
	}
	measuring := map[string]bool{}
	for _, r := range rates {
		if !seen[r.Name] {
			continue
		}
		measuring[r.Name] = r.Status == virt.DirtyRateMeasuring
		if r.Status == virt.DirtyRateMeasured && r.Started != c.reported[r.Name] {
			b.vnode = r.Name
			b.add(MetricVMDirtyRate, "", qBytesRate, r.BytesPerSecond, "", "")
			c.reported[r.Name] = r.Started
		}
	}
	forget(c.reported, seen)
	forget(c.started, seen)
	now := c.now()
	for _, d := range stats {
		if !seen[d.Name] || d.State != virt.StateRunning || measuring[d.Name] {
			continue
		}
		if last, ok := c.started[d.Name]; ok && now.Sub(last) < c.every {
			continue
		}
		if (c.measure != nil && !c.measure(d.Name)) || c.migrating(ctx, d.Name) {
			continue
		}
		err := c.dirty.StartDirtyRateCalc(ctx, d.Name, DirtyRatePeriod)
		if err == nil {
			c.started[d.Name] = now
		}
		switch {
		case err == nil, errors.Is(err, virt.ErrNoDomain), errors.Is(err, virt.ErrWrongState), errors.Is(err, virt.ErrDirtyRateBusy):
			// started; or gone or stopped since the stats were read: nothing to measure; or
			// someone else measures it now, whose result the next Collect reports
		case errors.Is(err, virt.ErrDirtyRateUnsupported):
			return unsupported(err)
		default:
			b.vnode = d.Name
			b.fail(MetricVMDirtyRate, "", "", err)
		}
	}
	return nil
}

// forget drops the domains not seen in this Collect from a per-domain map.
func forget[V any](m map[string]V, seen map[string]bool) {
	for name := range m {
		if !seen[name] {
			delete(m, name)
		}
	}
}

// migrating reports whether a live migration may run on the domain: a job is active, or the
// domain is paused by one. A domain whose job cannot be read counts as migrating (no calculation
// is the safe side); a reader that cannot tell says no.
func (c *Libvirt) migrating(ctx context.Context, name string) bool {
	j, ok := c.r.(JobReader)
	if !ok {
		return false
	}
	s, err := j.DomainStatus(ctx, name)
	return err != nil || s.Job || s.Migrating
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
