package kpi

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// Meminfo reads the hypervisor's memory from /proc/meminfo: total, available, free, buffers,
// page cache, swap and huge pages, in bytes.
type Meminfo struct {
	env Env
}

var _ Collector = (*Meminfo)(nil)

// NewMeminfo returns a collector reading env's /proc/meminfo.
func NewMeminfo(env Env) *Meminfo { return &Meminfo{env: env.withDefaults()} }

// meminfoMetrics are the /proc/meminfo keys reported as they are; required ones are reported as
// errMissing when absent, the others only when the kernel has them (swap, for one, can be
// configured out).
var meminfoMetrics = [...]struct {
	key, metric string
	required    bool
}{
	{"MemTotal", MetricMemoryTotalBytes, true},
	{"MemAvailable", MetricMemoryAvailableBytes, true},
	{"MemFree", MetricMemoryFreeBytes, true},
	{"Buffers", MetricMemoryBuffersBytes, false},
	{"Cached", MetricMemoryCachedBytes, false},
	{"SwapTotal", MetricSwapTotalBytes, false},
	{"SwapFree", MetricSwapFreeBytes, false},
}

// Collect reads /proc/meminfo once.
func (c *Meminfo) Collect(ctx context.Context) ([]Sample, error) {
	text, err := os.ReadFile(c.env.proc("meminfo"))
	if err != nil {
		if isAbsent(err) {
			return nil, fmt.Errorf("meminfo: %w", ErrNoData)
		}
		return nil, fmt.Errorf("meminfo: %w", err)
	}
	m := parseMeminfo(string(text))
	b := newBatch(SourceProcfs, c.env.Now(), len(meminfoMetrics)+2)
	for _, k := range meminfoMetrics {
		f, ok := m[k.key]
		switch {
		case ok:
			b.addField(k.metric, "", qBytes, f, 1)
		case k.required:
			b.fail(k.metric, "", "", fmt.Errorf("%s: %w", k.key, errMissing))
		}
	}
	// huge pages are counted in pages of Hugepagesize
	if size, ok := m["Hugepagesize"]; ok && size.err == nil {
		for _, k := range [...]struct{ key, metric string }{
			{"HugePages_Total", MetricHugepagesTotalBytes},
			{"HugePages_Free", MetricHugepagesFreeBytes},
		} {
			if f, ok := m[k.key]; ok {
				b.addField(k.metric, "", qBytes, f, size.v)
			}
		}
	}
	return b.result()
}

// parseMeminfo parses /proc/meminfo,
//
//	MemTotal:       24683620 kB
//	HugePages_Total:       0
//
// into its values, in bytes for the "kB" lines (×1024; the kernel's kB are KiB) and as they are
// for the counts.
func parseMeminfo(s string) map[string]field {
	out := make(map[string]field, 64)
	for line := range strings.Lines(s) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		f := floatField(val)
		switch unit = strings.TrimSpace(unit); {
		case f.err != nil:
		case unit == "kB":
			f.v *= 1024
		case unit != "":
			f = field{raw: strings.TrimSpace(rest), err: fmt.Errorf("%w: unit %q is not kB", ErrBadValue, unit)}
		}
		out[key] = f
	}
	return out
}
