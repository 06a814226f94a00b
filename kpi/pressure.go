package kpi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Pressure reads pressure stall information (PSI) from /proc/pressure/{cpu,memory,io,irq}: the
// share of wall time in which some (or all) runnable tasks were stalled on the resource, averaged
// over 10, 60 and 300 s, and the cumulative stall time. A kernel without PSI (before 4.20, or
// booted with psi=0) gives ErrNoData; a missing resource file (irq needs 6.1 and
// CONFIG_IRQ_TIME_ACCOUNTING) is skipped.
type Pressure struct {
	env   Env
	names [len(psiResources)][len(psiKinds)][4]string // metric names, built once
}

var _ Collector = (*Pressure)(nil)

var (
	psiResources = [...]string{"cpu", "memory", "io", "irq"}
	psiKinds     = [...]string{"some", "full"}
	psiSuffixes  = [4]string{"avg10", "avg60", "avg300", "seconds"}
)

// NewPressure returns a collector reading env's /proc/pressure.
func NewPressure(env Env) *Pressure {
	c := &Pressure{env: env.withDefaults()}
	for r, res := range psiResources {
		for k, kind := range psiKinds {
			for i, suf := range psiSuffixes {
				c.names[r][k][i] = "pressure_" + res + "_" + kind + "_" + suf
			}
		}
	}
	return c
}

// Collect reads every resource's pressure once.
func (c *Pressure) Collect(ctx context.Context) ([]Sample, error) {
	b := newBatch(SourceProcfs, c.env.Now(), 32)
	read := 0
	for r, res := range psiResources {
		text, err := os.ReadFile(c.env.proc("pressure", res))
		switch {
		case isAbsent(err):
			continue
		case errors.Is(err, syscall.EOPNOTSUPP):
			return nil, fmt.Errorf("pressure: PSI is disabled (psi=0): %w", ErrNoData)
		case err != nil:
			return nil, fmt.Errorf("pressure: %w", err)
		}
		read++
		for _, l := range parsePressure(string(text)) {
			k := indexOf(psiKinds[:], l.kind)
			if k < 0 {
				continue // a kind a later kernel may add
			}
			names := &c.names[r][k]
			for i, f := range l.avg {
				b.addField(names[i], "", qRatio, f, 1.0/100) // the kernel gives percentages
			}
			b.addField(names[3], "", qSeconds, l.total, 1e-6) // µs
		}
	}
	if read == 0 {
		return nil, fmt.Errorf("pressure: no /proc/pressure: %w", ErrNoData)
	}
	return b.result()
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// psiLine is one line of a /proc/pressure file: averages in percent, total in microseconds.
type psiLine struct {
	kind  string // "some" or "full"
	avg   [3]field
	total field
}

// parsePressure parses a /proc/pressure file,
//
//	some avg10=11.13 avg60=13.19 avg300=7.39 total=404847072
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//
// A value missing from a line is errMissing.
func parsePressure(s string) []psiLine {
	var out []psiLine
	for line := range strings.Lines(s) {
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		l := psiLine{kind: fs[0], avg: [3]field{{err: errMissing}, {err: errMissing}, {err: errMissing}}, total: field{err: errMissing}}
		for _, kv := range fs[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "avg10":
				l.avg[0] = floatField(v)
			case "avg60":
				l.avg[1] = floatField(v)
			case "avg300":
				l.avg[2] = floatField(v)
			case "total":
				l.total = floatField(v)
			}
		}
		out = append(out, l)
	}
	return out
}
