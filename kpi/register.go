package kpi

import (
	"time"

	"github.com/rs/zerolog"
)

// DefaultTimeout is the per-cycle time a procfs or sysfs collector gets when Options gives none;
// DefaultRemoteTimeout the time a BMC or libvirt poll gets.
const (
	DefaultTimeout       = 2 * time.Second
	DefaultRemoteTimeout = 5 * time.Second
)

// Options says which collectors NewHostRegistry registers and how.
type Options struct {
	Env Env // roots and clock of the procfs and sysfs collectors

	// BMC is the hypervisor's BMC; nil registers no IPMI collector. Pass a nil interface, not a
	// nil *bmc.Client.
	BMC SensorReader
	// Libvirt is the hypervisor's libvirt connection; nil registers no libvirt collector.
	Libvirt DomainStatsReader
	// KeepDomain selects the domains the libvirt collector reports; nil reports all.
	KeepDomain func(domain string) bool
	// MeasureDomain selects the reported domains whose dirty rate is measured, every
	// DirtyRateEvery (see Libvirt.MeasureDirtyRates); nil measures all.
	MeasureDomain  func(domain string) bool
	DirtyRateEvery time.Duration

	Timeout       time.Duration // per procfs/sysfs collector; DefaultTimeout when 0
	RemoteTimeout time.Duration // per BMC or libvirt poll; DefaultRemoteTimeout when 0

	// NodeExporterURL, when set, is a local node_exporter's /metrics: one "node_exporter"
	// collector scraping it replaces the procfs and sysfs collectors.
	NodeExporterURL string

	// Select picks collectors by name ("loadavg", "ipmi"…); nil registers every one. The agent
	// builds two registries with it: the health sensors and the rest, on their own schedules.
	Select func(name string) bool
}

// NewHostRegistry returns a registry of every collector drover runs on a hypervisor. This is the
// one place collectors are registered: the procfs ones, the sysfs ones of this platform
// (platformCollectors) — or instead of both a node_exporter scrape — then IPMI and libvirt when
// Options has them.
func NewHostRegistry(o Options, log zerolog.Logger) (*Registry, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RemoteTimeout <= 0 {
		o.RemoteTimeout = DefaultRemoteTimeout
	}
	type reg struct {
		name    string
		c       Collector
		timeout time.Duration
	}
	var list []reg
	if o.NodeExporterURL != "" {
		list = append(list, reg{"node_exporter", NewNodeExporter(o.NodeExporterURL, nil, o.Env.Now), o.Timeout})
	} else {
		list = append(list,
			reg{"loadavg", NewLoadavg(o.Env), o.Timeout},
			reg{"cpu", NewCPU(o.Env), o.Timeout},
			reg{"meminfo", NewMeminfo(o.Env), o.Timeout},
			reg{"pressure", NewPressure(o.Env), o.Timeout},
		)
		for _, p := range platformCollectors(o.Env) {
			list = append(list, reg{p.name, p.c, o.Timeout})
		}
	}
	if o.BMC != nil {
		list = append(list, reg{"ipmi", NewIPMI(o.BMC, o.Env.Now), o.RemoteTimeout})
	}
	if o.Libvirt != nil {
		lv := NewLibvirt(o.Libvirt, o.KeepDomain, o.Env.Now)
		lv.MeasureDirtyRates(o.DirtyRateEvery, o.MeasureDomain)
		list = append(list, reg{"libvirt", lv, o.RemoteTimeout})
	}
	r := NewRegistry(log, nil)
	for _, e := range list {
		if o.Select != nil && !o.Select(e.name) {
			continue
		}
		if err := r.Register(e.name, e.c, e.timeout); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// namedCollector is a collector and the name it is registered under.
type namedCollector struct {
	name string
	c    Collector
}
