package kpi

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// Loadavg reads the 1, 5 and 15 minute load averages from /proc/loadavg.
type Loadavg struct {
	env Env
}

var _ Collector = (*Loadavg)(nil)

// NewLoadavg returns a collector reading env's /proc/loadavg.
func NewLoadavg(env Env) *Loadavg { return &Loadavg{env: env.withDefaults()} }

// Collect reads the load averages once.
func (c *Loadavg) Collect(ctx context.Context) ([]Sample, error) {
	path := c.env.proc("loadavg")
	text, err := os.ReadFile(path)
	if err != nil {
		if isAbsent(err) {
			return nil, fmt.Errorf("loadavg: %w", ErrNoData)
		}
		return nil, fmt.Errorf("loadavg: %w", err)
	}
	b := newBatch(SourceProcfs, c.env.Now(), 3)
	for i, f := range parseLoadavg(string(text)) {
		b.addField(loadMetrics[i], "", qLoad, f, 1)
	}
	return b.result()
}

var loadMetrics = [3]string{MetricLoad1, MetricLoad5, MetricLoad15}

// parseLoadavg parses /proc/loadavg ("0.52 0.58 0.59 1/467 12345"): the three load averages, each
// with errMissing when the line is too short.
func parseLoadavg(s string) [3]field {
	var out [3]field
	fs := strings.Fields(s)
	for i := range out {
		if i < len(fs) {
			out[i] = floatField(fs[i])
		} else {
			out[i] = field{err: errMissing}
		}
	}
	return out
}
