package kpi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sample is one reading of one KPI, in base units.
type Sample struct {
	Source string // SourceProcfs, SourceSysfs, SourceIPMI or SourceLibvirt
	Metric string // base-unit name, e.g. MetricTempCelsius ("temp_celsius")
	VNode  string // the vnode (libvirt domain) the reading is about; "" for the hypervisor itself
	Sensor string // which sensor: "coretemp.0/Core 0", "CPU Temp", "intel-rapl:0/package-0"…; "" when the metric says it all
	Unit   string // the metric's unit: "celsius", "bytes", "ratio"…; "" for pure numbers (load)
	Value  float64
	Status string    // the hardware's own verdict (StatusOK…) for sensors that give one; "" otherwise
	Time   time.Time // when the reading was taken
}

// Collector reads one group of KPIs. A collector that cannot be read at all returns an error; one
// whose readings are partly bad returns the good samples and a *PartialError listing the bad ones.
// A host without the hardware or kernel feature gets an error matching ErrNoData.
type Collector interface {
	Collect(ctx context.Context) ([]Sample, error)
}

// Sources.
const (
	SourceProcfs  = "procfs"
	SourceSysfs   = "sysfs"
	SourceIPMI    = "ipmi"
	SourceLibvirt = "libvirt"
)

// Statuses a sensor sample can carry. They are the vocabulary of internal/bmc, so IPMI and sysfs
// sensors read alike: the most severe threshold the reading is at or beyond. StatusAlarm is a
// sysfs chip raising an alarm without saying which limit it crossed.
const (
	StatusOK                  = "ok"
	StatusLowerNonCritical    = "lower-non-critical"
	StatusLowerCritical       = "lower-critical"
	StatusLowerNonRecoverable = "lower-non-recoverable"
	StatusUpperNonCritical    = "upper-non-critical"
	StatusUpperCritical       = "upper-critical"
	StatusUpperNonRecoverable = "upper-non-recoverable"
	StatusAlarm               = "alarm"
)

var (
	// ErrNoData: the host lacks the sensor or kernel feature (no hwmon, no RAPL, PSI disabled), or
	// a rate needs one more reading. Not a failure: log it at debug level.
	ErrNoData = errors.New("no data")
	// ErrBadValue: a reading that is unparsable, not finite, negative where it cannot be, or
	// physically absurd. It is never returned as a Sample.
	ErrBadValue = errors.New("bad value")
	// ErrVanished: a sensor seen in an earlier Collect is no longer there.
	ErrVanished = errors.New("sensor vanished")
	// ErrUnavailable: the hardware says it has no valid reading (BMC "unavailable", hwmon fault).
	ErrUnavailable = errors.New("reading unavailable")
)

// SampleError is one reading left out of a Collect: where it comes from, the value as read (text,
// before conversion; "" when there was none) and why it was left out.
type SampleError struct {
	Source string
	Sensor string
	Metric string
	VNode  string
	Value  string
	Err    error
}

func (e *SampleError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.VNode != "" {
		fmt.Fprintf(&b, " vnode %q", e.VNode)
	}
	if e.Sensor != "" {
		fmt.Fprintf(&b, " %q", e.Sensor)
	}
	if e.Metric != "" {
		b.WriteString(" " + e.Metric)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, ": read %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *SampleError) Unwrap() error { return e.Err }

// PartialError is what Collect returns next to the good samples when some readings were left out.
// errors.Is and errors.As see each of Errs.
type PartialError struct {
	Errs []*SampleError
}

func (e *PartialError) Error() string {
	var b strings.Builder
	if len(e.Errs) == 1 {
		b.WriteString("1 reading left out: ")
	} else {
		fmt.Fprintf(&b, "%d readings left out: ", len(e.Errs))
	}
	for i, se := range e.Errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(se.Error())
	}
	return b.String()
}

func (e *PartialError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, se := range e.Errs {
		out[i] = se
	}
	return out
}
