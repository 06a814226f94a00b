package kpi

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Metric names. Every name ends in its base unit, except the load averages (pure numbers) and the
// pressure averages, whose names follow the kernel's and whose values are ratios.
const (
	MetricLoad1  = "load1"
	MetricLoad5  = "load5"
	MetricLoad15 = "load15"

	MetricCPUBusyRatio   = "cpu_busy_ratio"   // not idle, not waiting for I/O
	MetricCPUIOWaitRatio = "cpu_iowait_ratio" // idle with I/O outstanding
	MetricCPUStealRatio  = "cpu_steal_ratio"  // taken by a hypervisor below this one
	MetricCPUGuestRatio  = "cpu_guest_ratio"  // running guests (VMs): part of busy

	MetricMemoryTotalBytes     = "memory_total_bytes"
	MetricMemoryAvailableBytes = "memory_available_bytes"
	MetricMemoryFreeBytes      = "memory_free_bytes"
	MetricMemoryBuffersBytes   = "memory_buffers_bytes"
	MetricMemoryCachedBytes    = "memory_cached_bytes"
	MetricSwapTotalBytes       = "swap_total_bytes"
	MetricSwapFreeBytes        = "swap_free_bytes"
	MetricHugepagesTotalBytes  = "hugepages_total_bytes"
	MetricHugepagesFreeBytes   = "hugepages_free_bytes"

	// Pressure (PSI) metrics are named pressure_<resource>_<some|full>_<avg10|avg60|avg300> (a
	// ratio of wall time, 0 to 1) and pressure_<resource>_<some|full>_seconds (the cumulative
	// stall time), for resource cpu, memory, io and irq.

	MetricTempCelsius    = "temp_celsius"
	MetricFanRPM         = "fan_rpm"
	MetricVoltageVolts   = "voltage_volts"
	MetricCurrentAmperes = "current_amperes"
	MetricPowerWatts     = "power_watts"
	MetricEnergyJoules   = "energy_joules"

	MetricVMCPUSeconds   = "vm_cpu_seconds"    // CPU time of the VM's QEMU process (cumulative)
	MetricVMCPUBusyRatio = "vm_cpu_busy_ratio" // CPU time per vCPU per second between two Collects
	MetricVMMemoryBytes  = "vm_memory_bytes"   // memory the guest has now (balloon size)
)

// quantity is what a metric measures: its unit and the values it can physically take. A value
// outside [min, max] is a broken reading, not an extreme one.
type quantity struct {
	unit     string
	min, max float64
}

var (
	qLoad    = quantity{"", 0, 1e6}
	qRatio   = quantity{"ratio", 0, 1}
	qBytes   = quantity{"bytes", 0, 1 << 60} // an exbibyte
	qSeconds = quantity{"seconds", 0, math.MaxFloat64}
	qJoules  = quantity{"joules", 0, math.MaxFloat64}
	qCelsius = quantity{"celsius", -60, 200}
	qRPM     = quantity{"rpm", 0, 100_000}
	qVolts   = quantity{"volts", -1000, 1000}
	qAmperes = quantity{"amperes", -10_000, 10_000}
	qWatts   = quantity{"watts", 0, 100_000}
	// qVMRatio: a QEMU process also burns CPU outside its vCPUs (I/O, TCG), so a fully busy VM can
	// go somewhat above 1 per vCPU; 100 is beyond anything a process can do.
	qVMRatio = quantity{"ratio", 0, 100}
)

// check says why v is not a value of q, or nil when it is.
func (q quantity) check(v float64) error {
	switch {
	case math.IsNaN(v):
		return fmt.Errorf("%w: not a number", ErrBadValue)
	case math.IsInf(v, 0):
		return fmt.Errorf("%w: infinite", ErrBadValue)
	case v < 0 && q.min == 0:
		return fmt.Errorf("%w: %g %s is negative", ErrBadValue, v, q.unit)
	case v < q.min:
		return fmt.Errorf("%w: %g %s is below %g", ErrBadValue, v, q.unit, q.min)
	case v > q.max:
		return fmt.Errorf("%w: %g %s is above %g", ErrBadValue, v, q.unit, q.max)
	}
	return nil
}

// batch gathers the samples and the per-sample errors of one Collect of one source.
type batch struct {
	source  string
	vnode   string
	at      time.Time
	samples []Sample
	errs    []*SampleError
}

func newBatch(source string, at time.Time, capacity int) *batch {
	return &batch{source: source, at: at, samples: make([]Sample, 0, capacity)}
}

// add keeps v as a sample when it is a value of q, and records why not otherwise; raw is the text
// it was converted from ("" to print v itself).
func (b *batch) add(metric, sensor string, q quantity, v float64, status, raw string) {
	if err := q.check(v); err != nil {
		if raw == "" {
			raw = fmt.Sprint(v)
		}
		b.fail(metric, sensor, raw, err)
		return
	}
	b.samples = append(b.samples, Sample{
		Source: b.source, Metric: metric, VNode: b.vnode, Sensor: sensor,
		Unit: q.unit, Value: v, Status: status, Time: b.at,
	})
}

// fail records a reading left out.
func (b *batch) fail(metric, sensor, raw string, err error) {
	b.errs = append(b.errs, &SampleError{
		Source: b.source, Sensor: sensor, Metric: metric, VNode: b.vnode, Value: raw, Err: err,
	})
}

// result is what Collect returns: the good samples, and a *PartialError when some were left out.
func (b *batch) result() ([]Sample, error) {
	if len(b.errs) > 0 {
		return b.samples, &PartialError{Errs: b.errs}
	}
	return b.samples, nil
}

// field is one number parsed from a file: the text as read and its value, or why it has none.
type field struct {
	raw string
	v   float64
	err error
}

// floatField parses a decimal number.
func floatField(raw string) field {
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return field{raw: raw, err: badNumber(err)}
	}
	return field{raw: raw, v: v}
}

// addField keeps f, scaled to base units, as a sample, or records why it cannot be one.
func (b *batch) addField(metric, sensor string, q quantity, f field, scale float64) {
	if f.err != nil {
		b.fail(metric, sensor, f.raw, f.err)
		return
	}
	b.add(metric, sensor, q, f.v*scale, "", f.raw)
}

// errMissing: a value the file should hold is not in it.
var errMissing = fmt.Errorf("%w: missing", ErrBadValue)
