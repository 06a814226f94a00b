package kpi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// CPU reports how the hypervisor's CPUs spent their time between two Collects, from the "cpu"
// line of /proc/stat. The first Collect only keeps the counters and returns ErrNoData: a ratio
// needs two readings, and a made-up zero would look like an idle host.
type CPU struct {
	env Env

	mu   sync.Mutex
	prev cpuTimes
	have bool
	buf  []byte
}

var _ Collector = (*CPU)(nil)

// NewCPU returns a collector reading env's /proc/stat.
func NewCPU(env Env) *CPU { return &CPU{env: env.withDefaults(), buf: make([]byte, 4096)} }

// Collect reads the counters and returns the busy, iowait, steal and guest ratios since the last
// call that returned samples.
func (c *CPU) Collect(ctx context.Context) ([]Sample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	head, err := readHead(c.env.proc("stat"), c.buf)
	if err != nil {
		if isAbsent(err) {
			return nil, fmt.Errorf("cpu: %w", ErrNoData)
		}
		return nil, fmt.Errorf("cpu: %w", err)
	}
	b := newBatch(SourceProcfs, c.env.Now(), 4)
	line, _, _ := bytes.Cut(head, []byte{'\n'})
	cur, err := parseStat(string(line))
	if err != nil {
		b.fail(MetricCPUBusyRatio, "", string(line), err)
		return b.result()
	}
	if !c.have {
		c.prev, c.have = cur, true
		return nil, fmt.Errorf("cpu: first reading, a ratio needs two: %w", ErrNoData)
	}
	r, ok := cpuUtilisation(c.prev, cur)
	if !ok {
		// keep the older counters: the next call then measures a longer interval
		return nil, fmt.Errorf("cpu: counters have not advanced since the last reading: %w", ErrNoData)
	}
	c.prev = cur
	b.add(MetricCPUBusyRatio, "", qRatio, r.busy, "", "")
	b.add(MetricCPUIOWaitRatio, "", qRatio, r.iowait, "", "")
	b.add(MetricCPUStealRatio, "", qRatio, r.steal, "", "")
	b.add(MetricCPUGuestRatio, "", qRatio, r.guest, "", "")
	return b.result()
}

// readHead reads the start of a file into buf (as much as fits) and returns it.
func readHead(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// cpuTimes are the aggregate CPU counters of /proc/stat, in USER_HZ ticks. Guest time is also
// counted in user (and guest nice in nice).
type cpuTimes struct {
	user, nice, system, idle, iowait, irq, softirq, steal, guest, guestNice uint64
}

// parseStat parses the aggregate line of /proc/stat,
//
//	cpu  123523 15891 89885 751777 1846 0 4691 0 0 0
//
// Kernels older than 2.6.33 have fewer columns; the missing ones are zero. At least user, nice,
// system and idle must be there.
func parseStat(line string) (cpuTimes, error) {
	fs := strings.Fields(line)
	if len(fs) == 0 || fs[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("%w: not the aggregate cpu line", ErrBadValue)
	}
	fs = fs[1:]
	if len(fs) < 4 {
		return cpuTimes{}, fmt.Errorf("%w: %d counters, want at least 4", ErrBadValue, len(fs))
	}
	var t cpuTimes
	dst := [...]*uint64{&t.user, &t.nice, &t.system, &t.idle, &t.iowait, &t.irq, &t.softirq, &t.steal, &t.guest, &t.guestNice}
	for i, f := range fs {
		if i == len(dst) {
			break // a column added by a later kernel
		}
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("counter %d %q: %w", i+1, f, badNumber(err))
		}
		*dst[i] = v
	}
	return t, nil
}

// cpuRatios are shares of the CPU time that passed between two readings.
type cpuRatios struct {
	busy, iowait, steal, guest float64
}

// cpuUtilisation computes the ratios between two readings; ok is false when no time passed. A
// counter that went backwards counts as not moving: iowait is known to do that on some kernels.
//
//	elapsed = Δ(user + nice + system + idle + iowait + irq + softirq + steal)
//	busy    = (elapsed − Δidle − Δiowait) / elapsed
//	guest   = Δ(guest + guest nice) / elapsed   (part of busy)
func cpuUtilisation(prev, cur cpuTimes) (cpuRatios, bool) {
	d := func(a, b uint64) float64 {
		if b < a {
			return 0
		}
		return float64(b - a)
	}
	idle, iowait, steal := d(prev.idle, cur.idle), d(prev.iowait, cur.iowait), d(prev.steal, cur.steal)
	elapsed := d(prev.user, cur.user) + d(prev.nice, cur.nice) + d(prev.system, cur.system) +
		idle + iowait + d(prev.irq, cur.irq) + d(prev.softirq, cur.softirq) + steal
	if elapsed == 0 {
		return cpuRatios{}, false
	}
	guest := d(prev.guest, cur.guest) + d(prev.guestNice, cur.guestNice)
	return cpuRatios{
		busy:   (elapsed - idle - iowait) / elapsed,
		iowait: iowait / elapsed,
		steal:  steal / elapsed,
		guest:  guest / elapsed,
	}, true
}
