// Package kpi collects hypervisor key performance indicators (procfs, sysfs hwmon/RAPL, IPMI,
// libvirt per-VM statistics), ingests them into PostgreSQL in batches, and answers queries on them.
// Collectors follow node_exporter's shape: one file per collector, reading separate from parsing.
//
// # Collectors
//
// A Collector returns Samples in base units (seconds, bytes, ratios, °C, RPM, volts, amperes,
// watts, joules), converted where they are read. One file per collector: loadavg.go, cpu.go,
// meminfo.go and pressure.go read /proc; hwmon_linux.go, thermal_linux.go and rapl_linux.go read
// /sys; ipmi.go wraps a BMC (SensorReader, satisfied by *bmc.Client) and libvirt.go a libvirt
// connection (DomainStatsReader, satisfied by *virt.Conn). Each file keeps its I/O apart from
// pure parseX functions, and reads under the roots of an Env, so tests run on the fixture trees
// under testdata/. Rates (CPU, RAPL power, per-VM CPU) need two Collects: the first one gives
// none, never a made-up zero.
//
// Errors say how much went wrong. ErrNoData: the host lacks the hardware or kernel feature (log
// it at debug level). A *PartialError next to the good samples: some readings were left out, each
// a *SampleError naming source, sensor, metric and the value as read — unparsable, NaN, infinite,
// negative where it cannot be, physically absurd (ErrBadValue), reported unavailable by the
// hardware (ErrUnavailable), or gone since an earlier Collect (ErrVanished). A bad reading is
// never returned as a Sample. Any other error: the collector could not read at all.
//
// NewHostRegistry registers every collector in one place. The Registry runs them concurrently,
// each under its own timeout, so a slow BMC never holds the others back, and records one Run per
// collector and cycle (outcome, duration, samples, problems) for the agent to export.
//
// The collectors must not decide what a reading means (health/ and scheduler/ do) and never write
// anywhere: they only read procfs, sysfs, the BMC and libvirt.
package kpi
