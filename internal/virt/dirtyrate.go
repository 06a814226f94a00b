package virt

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"libvirt.org/go/libvirt"
)

// ErrDirtyRateUnsupported: the hypervisor cannot measure a domain's memory dirty rate (libvirt
// before 7.2, QEMU before 5.2, or a driver without it).
var ErrDirtyRateUnsupported = errors.New("dirty rate calculation not supported")

// ErrDirtyRateBusy: a dirty-rate calculation already runs on the domain (QEMU measures one at a
// time per domain); its result appears in DirtyRates when its period is over.
var ErrDirtyRateBusy = errors.New("a dirty rate calculation is already running")

// DirtyRateStatus is where a domain's dirty-rate calculation is.
type DirtyRateStatus int

// The states of a dirty-rate calculation.
const (
	DirtyRateUnstarted DirtyRateStatus = iota // none started since the QEMU process began
	DirtyRateMeasuring                        // one is running
	DirtyRateMeasured                         // the last one finished: BytesPerSecond holds its result
)

func (s DirtyRateStatus) String() string {
	switch s {
	case DirtyRateUnstarted:
		return "unstarted"
	case DirtyRateMeasuring:
		return "measuring"
	case DirtyRateMeasured:
		return "measured"
	}
	return fmt.Sprintf("DirtyRateStatus(%d)", int(s))
}

// DirtyRate is the state of a domain's last dirty-rate calculation: how fast the guest wrote
// to its memory over Period. Live migration copies memory while the guest runs;
// a guest that dirties memory faster than the link carries it never converges.
type DirtyRate struct {
	Name   string
	Status DirtyRateStatus
	// Started tells calculations apart: when the last one started, in seconds of QEMU's own
	// monotonic clock (not wall time); 0 when unstarted.
	Started        int64
	Period         time.Duration // the calculation's length
	BytesPerSecond float64       // meaningful when Status is DirtyRateMeasured
}

// Dirty-rate calculation periods libvirt accepts.
const (
	MinDirtyRatePeriod = time.Second
	MaxDirtyRatePeriod = 60 * time.Second
)

// StartDirtyRateCalc starts measuring how fast the running domain called name dirties its
// memory, over period (rounded to whole seconds, 1 to 60), by QEMU's page sampling. It returns
// at once; the result appears in DirtyRates when the period is over. A hypervisor that cannot
// do it gives an error matching ErrDirtyRateUnsupported; one already measuring the domain an
// error matching ErrDirtyRateBusy.
func (c *Conn) StartDirtyRateCalc(ctx context.Context, name string, period time.Duration) error {
	secs := int(period.Round(time.Second) / time.Second)
	if secs < 1 || secs > 60 {
		return fmt.Errorf("%s: dirty rate of %s: period %v is not between %v and %v", c.name, quote(name), period, MinDirtyRatePeriod, MaxDirtyRatePeriod)
	}
	err := c.withDomain(ctx, "start dirty rate calculation of "+quote(name), name, func(d *libvirt.Domain) error {
		return d.StartDirtyRateCalc(secs, 0)
	})
	return dirtyRateError(err)
}

// DirtyRates returns the state of the dirty-rate calculation of the named domains, or of every
// domain when names is empty, sorted by name, in one libvirt call.
func (c *Conn) DirtyRates(ctx context.Context, names ...string) ([]DirtyRate, error) {
	var out []DirtyRate
	err := c.withDomains(ctx, "read dirty rates", names, func(doms []*libvirt.Domain) error {
		records, err := c.lv.GetAllDomainStats(doms, libvirt.DOMAIN_STATS_DIRTYRATE, 0)
		if err != nil {
			return err
		}
		defer freeRecords(records)
		for _, r := range records {
			name, err := r.Domain.GetName()
			if err != nil {
				return err
			}
			out = append(out, dirtyRateFrom(name, r.DirtyRate))
		}
		return nil
	})
	if err != nil {
		return nil, dirtyRateError(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// dirtyRateFrom converts the dirtyrate.* statistics of one domain; nil (QEMU gave none, e.g. a
// shut-off domain) is unstarted.
func dirtyRateFrom(name string, r *libvirt.DomainStatsDirtyRate) DirtyRate {
	d := DirtyRate{Name: name}
	if r == nil {
		return d
	}
	if r.CalcStatusSet {
		switch libvirt.DomainDirtyRateStatus(r.CalcStatus) {
		case libvirt.DOMAIN_DIRTYRATE_MEASURING:
			d.Status = DirtyRateMeasuring
		case libvirt.DOMAIN_DIRTYRATE_MEASURED:
			d.Status = DirtyRateMeasured
		}
	}
	if r.CalcStartTimeSet {
		d.Started = r.CalcStartTime
	}
	if r.CalcPeriodSet {
		d.Period = time.Duration(r.CalcPeriod) * time.Second
	}
	if r.MegabytesPerSecondSet {
		d.BytesPerSecond = float64(r.MegabytesPerSecond) * (1 << 20) // MiB/s
	} else if d.Status == DirtyRateMeasured {
		d.Status = DirtyRateUnstarted // measured without a result: nothing to report
	}
	return d
}

// dirtyRateError marks the errors that mean the hypervisor cannot measure dirty rates, and the
// one that says a calculation is already running (QEMU's words; libvirt passes them on as an
// internal error).
func dirtyRateError(err error) error {
	var lerr libvirt.Error
	if err == nil || !errors.As(err, &lerr) {
		return err
	}
	if strings.Contains(lerr.Message, "already being measured") {
		return fmt.Errorf("%w: %w", ErrDirtyRateBusy, err)
	}
	switch lerr.Code {
	case libvirt.ERR_NO_SUPPORT, libvirt.ERR_OPERATION_UNSUPPORTED, libvirt.ERR_ARGUMENT_UNSUPPORTED, libvirt.ERR_INVALID_ARG:
		return fmt.Errorf("%w: %w", ErrDirtyRateUnsupported, err)
	}
	return err
}
