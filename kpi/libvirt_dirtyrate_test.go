package kpi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/virt"
)

// fakeDirtyHV is a hypervisor that measures dirty rates.
type fakeDirtyHV struct {
	fakeHV
	rates    []virt.DirtyRate
	ratesErr error
	startErr map[string]error
	started  []string // domains a calculation was started on, in order
	calls    int      // DirtyRates calls
}

func (f *fakeDirtyHV) DirtyRates(_ context.Context, names ...string) ([]virt.DirtyRate, error) {
	if len(names) > 0 {
		panic("the collector must ask for all domains in one call")
	}
	f.calls++
	return f.rates, f.ratesErr
}

func (f *fakeDirtyHV) StartDirtyRateCalc(_ context.Context, name string, period time.Duration) error {
	if period != DirtyRatePeriod {
		panic(fmt.Sprintf("period %v", period))
	}
	f.started = append(f.started, name)
	return f.startErr[name]
}

// dirtySamples returns the dirty-rate samples by vnode.
func dirtySamples(ss []Sample) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ss {
		if s.Metric == MetricVMDirtyRate {
			out[s.VNode] = s.Value
		}
	}
	return out
}

func TestLibvirtDirtyRate(t *testing.T) {
	off := dom("vn3", 0, 0, 1<<29)
	off.State = virt.StateShutOff
	hv := &fakeDirtyHV{fakeHV: fakeHV{stats: []virt.DomainStats{dom("vn1", time.Second, 1, 1<<29), dom("vn2", time.Second, 1, 1<<29), off}}}
	clock := newClock()
	c := NewLibvirt(hv, nil, clock.Now)
	ctx := context.Background()

	// first Collect: nothing measured yet; calculations start on the running VMs only
	ss, err := c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := dirtySamples(ss); len(d) != 0 {
		t.Errorf("first Collect: dirty rates %v before any calculation", d)
	}
	if !slices.Equal(hv.started, []string{"vn1", "vn2"}) {
		t.Errorf("started %v, want [vn1 vn2] (vn3 is shut off)", hv.started)
	}

	// 10 s later vn1 measured 8 MiB/s, vn2 still measures; none is started again before
	// DefaultDirtyRateEvery has passed
	clock.Advance(10 * time.Second)
	hv.started = nil
	hv.rates = []virt.DirtyRate{
		{Name: "vn1", Status: virt.DirtyRateMeasured, Started: 100, Period: time.Second, BytesPerSecond: 8 << 20},
		{Name: "vn2", Status: virt.DirtyRateMeasuring, Started: 101},
		{Name: "vn3"},
	}
	ss, err = c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := dirtySamples(ss); len(d) != 1 || d["vn1"] != 8<<20 {
		t.Errorf("second Collect: dirty rates %v, want vn1 8 MiB/s", d)
	}
	for _, s := range ss {
		if s.Metric == MetricVMDirtyRate && (s.Unit != "bytes_per_second" || s.Source != SourceLibvirt) {
			t.Errorf("sample %+v", s)
		}
	}
	if len(hv.started) != 0 {
		t.Errorf("started %v 10 s after the last calculations, want none before %v", hv.started, DefaultDirtyRateEvery)
	}

	// a minute after the first: vn1 is measured again (vn2 still measures); the same result
	// is not reported twice; a failing start is a per-sample error
	clock.Advance(DefaultDirtyRateEvery - 10*time.Second)
	hv.startErr = map[string]error{"vn1": errors.New("qemu: monitor busy")}
	ss, err = c.Collect(ctx)
	if d := dirtySamples(ss); len(d) != 0 {
		t.Errorf("third Collect: dirty rates %v reported again", d)
	}
	var pe *PartialError
	if !errors.As(err, &pe) || len(pe.Errs) != 1 || pe.Errs[0].VNode != "vn1" || pe.Errs[0].Metric != MetricVMDirtyRate {
		t.Errorf("third Collect: err %v, want one error for vn1's dirty rate", err)
	}
	if !slices.Equal(hv.started, []string{"vn1"}) {
		t.Errorf("started %v a minute on, want [vn1]", hv.started)
	}
	// the failed start is tried again at the next Collect
	hv.started = nil
	hv.startErr = nil
	clock.Advance(10 * time.Second)
	if _, err := c.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hv.started, []string{"vn1"}) {
		t.Errorf("started %v after a failed start, want [vn1]", hv.started)
	}
}

// Only the domains the agent may measure get calculations, at the cadence it set; a
// calculation someone else started (QEMU: "already being measured") is no error, and its result
// is reported.
func TestLibvirtDirtyRateMeasureAndBusy(t *testing.T) {
	hv := &fakeDirtyHV{fakeHV: fakeHV{stats: []virt.DomainStats{dom("vn1", time.Second, 1, 1<<29), dom("vn2", time.Second, 1, 1<<29), dom("guest", time.Second, 1, 1<<29)}}}
	clock := newClock()
	c := NewLibvirt(hv, nil, clock.Now)
	c.MeasureDirtyRates(5*time.Second, func(d string) bool { return d != "guest" })
	hv.startErr = map[string]error{"vn2": fmt.Errorf("%w: internal error: the dirty rate is already being measured", virt.ErrDirtyRateBusy)}
	ctx := context.Background()
	ss, err := c.Collect(ctx)
	if err != nil {
		t.Fatalf("a busy start failed the Collect: %v", err)
	}
	if !slices.Equal(hv.started, []string{"vn1", "vn2"}) {
		t.Errorf("started %v, want [vn1 vn2]: guest is not ours", hv.started)
	}
	if n := len(ss); n != 6 {
		t.Errorf("%d samples, want CPU time and memory of all three domains", n)
	}
	// 5 s on: vn1 again; vn2 too, since its start was refused; the other's result is reported
	clock.Advance(5 * time.Second)
	hv.started, hv.startErr = nil, nil
	hv.rates = []virt.DirtyRate{{Name: "vn2", Status: virt.DirtyRateMeasured, Started: 7, Period: time.Second, BytesPerSecond: 1 << 20}}
	ss, err = c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := dirtySamples(ss); len(d) != 1 || d["vn2"] != 1<<20 {
		t.Errorf("dirty rates %v, want vn2's 1 MiB/s", d)
	}
	if !slices.Equal(hv.started, []string{"vn1", "vn2"}) {
		t.Errorf("second Collect started %v, want [vn1 vn2]", hv.started)
	}
}

// A hypervisor without dirty rates gives ErrNoData once, with the other samples, and is not
// asked again.
func TestLibvirtDirtyRateUnsupported(t *testing.T) {
	hv := &fakeDirtyHV{
		fakeHV:   fakeHV{stats: []virt.DomainStats{dom("vn1", time.Second, 1, 1<<29)}},
		ratesErr: fmt.Errorf("%w: read dirty rates: unsupported flags", virt.ErrDirtyRateUnsupported),
	}
	c := NewLibvirt(hv, nil, newClock().Now)
	ss, err := c.Collect(context.Background())
	if !errors.Is(err, ErrNoData) || !errors.Is(err, virt.ErrDirtyRateUnsupported) {
		t.Errorf("err = %v, want ErrNoData naming the unsupported calculation", err)
	}
	if len(ss) != 2 {
		t.Errorf("%d samples, want vn1's CPU time and memory", len(ss))
	}
	for range 3 {
		if _, err := c.Collect(context.Background()); err != nil {
			t.Errorf("later Collect: %v", err)
		}
	}
	if hv.calls != 1 || len(hv.started) != 0 {
		t.Errorf("asked %d times, started %v: want one question, no starts", hv.calls, hv.started)
	}
}

// jobDirtyHV is a hypervisor that also says which domains a migration job runs on.
type jobDirtyHV struct {
	fakeDirtyHV
	jobs map[string]virt.DomainStatus
	errs map[string]error
}

func (f *jobDirtyHV) DomainStatus(_ context.Context, name string) (virt.DomainStatus, error) {
	return f.jobs[name], f.errs[name]
}

// No dirty-rate calculation starts on a domain a migration runs on (its job is active, or it is
// paused by one), nor on one whose job cannot be read: the calculation would compete with the
// migration's dirty-page tracking.
func TestLibvirtDirtyRateSkipsMigratingDomains(t *testing.T) {
	hv := &jobDirtyHV{fakeDirtyHV: fakeDirtyHV{fakeHV: fakeHV{stats: []virt.DomainStats{
		dom("vn1", time.Second, 1, 1<<29), dom("vn2", time.Second, 1, 1<<29), dom("vn3", time.Second, 1, 1<<29), dom("vn4", time.Second, 1, 1<<29)}}},
		jobs: map[string]virt.DomainStatus{"vn2": {State: virt.StateRunning, Job: true}, "vn3": {State: virt.StateRunning, Migrating: true}},
		errs: map[string]error{"vn4": errors.New("timeout")}}
	c := NewLibvirt(hv, nil, newClock().Now)
	if _, err := c.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hv.started, []string{"vn1"}) {
		t.Errorf("started %v, want [vn1]: vn2 and vn3 migrate, vn4's job is unknown", hv.started)
	}
	// the migration ended: the next Collect measures vn2 (vn1 was measured a moment ago)
	delete(hv.jobs, "vn2")
	hv.started = nil
	if _, err := c.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hv.started, []string{"vn2"}) {
		t.Errorf("second Collect started %v, want [vn2]", hv.started)
	}
}
