package virt

import (
	"context"
	"errors"
	"sort"
	"time"

	"libvirt.org/go/libvirt"
)

// DomainStats is one domain's resource use, in base units.
type DomainStats struct {
	Name           string
	State          State
	VCPUs          int           // vCPUs online (0 when libvirt reports none, e.g. shut off)
	CPUTime        time.Duration // CPU time used since the QEMU process started
	MemoryBytes    uint64        // memory the guest has now (the balloon's current size)
	MaxMemoryBytes uint64        // memory it may grow to
}

// statsTypes are the groups DomainStats asks libvirt for in one bulk call.
const statsTypes = libvirt.DOMAIN_STATS_STATE | libvirt.DOMAIN_STATS_CPU_TOTAL |
	libvirt.DOMAIN_STATS_BALLOON | libvirt.DOMAIN_STATS_VCPU

// DomainStats returns statistics for the named domains, or for every domain when names is empty,
// sorted by name. It uses libvirt's bulk statistics call (one round trip for all domains), and falls
// back to one call per domain on drivers that lack it.
func (c *Conn) DomainStats(ctx context.Context, names ...string) ([]DomainStats, error) {
	op := "read domain stats"
	if len(names) == 1 {
		op += " of " + quote(names[0])
	}
	var out []DomainStats
	err := c.withDomains(ctx, op, names, func(doms []*libvirt.Domain) error {
		var err error
		out, err = c.bulkStats(doms)
		if errors.Is(err, libvirt.ERR_NO_SUPPORT) {
			out, err = c.infoStats(doms)
		}
		if err != nil {
			return err
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// withDomains runs fn, under call, on handles to the named domains, or on nil (every domain, to
// libvirt's bulk calls) when names is empty, freeing them afterwards.
func (c *Conn) withDomains(ctx context.Context, op string, names []string, fn func(doms []*libvirt.Domain) error) error {
	return c.call(ctx, op, func() error {
		var doms []*libvirt.Domain
		defer func() {
			for _, d := range doms {
				_ = d.Free()
			}
		}()
		for _, name := range names {
			d, err := c.lv.LookupDomainByName(name)
			if err != nil {
				return err
			}
			doms = append(doms, d)
		}
		return fn(doms)
	})
}

// freeRecords frees the domain handles of a bulk statistics call.
func freeRecords(records []libvirt.DomainStats) {
	for _, r := range records {
		_ = r.Domain.Free()
	}
}

// bulkStats reads doms (all domains when nil) with virConnectGetAllDomainStats/virDomainListGetStats.
func (c *Conn) bulkStats(doms []*libvirt.Domain) ([]DomainStats, error) {
	records, err := c.lv.GetAllDomainStats(doms, statsTypes, 0)
	if err != nil {
		return nil, err
	}
	defer freeRecords(records)
	out := make([]DomainStats, 0, len(records))
	for _, r := range records {
		name, err := r.Domain.GetName()
		if err != nil {
			return nil, err
		}
		st := fromRecord(name, r)
		if r.Balloon == nil || r.Cpu == nil || len(r.Vcpu) == 0 {
			// drivers that report only some groups (the test driver: state only; QEMU: no vCPUs
			// for a shut-off domain) get the rest from virDomainGetInfo
			info, err := r.Domain.GetInfo()
			if err != nil {
				return nil, err
			}
			fill(&st, info, r.Balloon == nil, r.Cpu == nil, len(r.Vcpu) == 0)
		}
		out = append(out, st)
	}
	return out, nil
}

// fill completes s from info for the groups the bulk call left out.
func fill(s *DomainStats, info *libvirt.DomainInfo, memory, cpu, vcpus bool) {
	if memory {
		s.MemoryBytes, s.MaxMemoryBytes = info.Memory*1024, info.MaxMem*1024 // KiB
	}
	if cpu {
		s.CPUTime = time.Duration(info.CpuTime)
	}
	if vcpus && s.State != StateShutOff {
		s.VCPUs = int(info.NrVirtCpu)
	}
}

// fromRecord converts one bulk statistics record; groups libvirt left out stay zero.
func fromRecord(name string, r libvirt.DomainStats) DomainStats {
	s := DomainStats{Name: name}
	if r.State != nil && r.State.StateSet {
		s.State = stateOf(r.State.State)
	}
	if r.Cpu != nil && r.Cpu.TimeSet {
		s.CPUTime = time.Duration(r.Cpu.Time) // nanoseconds
	}
	if r.Balloon != nil {
		if r.Balloon.CurrentSet {
			s.MemoryBytes = r.Balloon.Current * 1024 // KiB
		}
		if r.Balloon.MaximumSet {
			s.MaxMemoryBytes = r.Balloon.Maximum * 1024
		}
	}
	for _, v := range r.Vcpu {
		if v.StateSet && v.State != libvirt.VCPU_OFFLINE {
			s.VCPUs++
		}
	}
	return s
}

// infoStats reads doms (all domains when nil) one virDomainGetInfo at a time.
func (c *Conn) infoStats(doms []*libvirt.Domain) ([]DomainStats, error) {
	if doms == nil {
		all, err := c.lv.ListAllDomains(0)
		if err != nil {
			return nil, err
		}
		for i := range all {
			doms = append(doms, &all[i])
		}
		defer func() {
			for i := range all {
				_ = all[i].Free()
			}
		}()
	}
	out := make([]DomainStats, 0, len(doms))
	for _, d := range doms {
		name, err := d.GetName()
		if err != nil {
			return nil, err
		}
		info, err := d.GetInfo()
		if err != nil {
			return nil, err
		}
		s := DomainStats{Name: name, State: stateOf(info.State)}
		fill(&s, info, true, true, true)
		out = append(out, s)
	}
	return out, nil
}
