package kpi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Env is where the procfs and sysfs collectors read and the clock that stamps their samples.
// Tests point the roots at fixture trees under testdata/.
type Env struct {
	ProcRoot string           // "/proc" when empty
	SysRoot  string           // "/sys" when empty
	Now      func() time.Time // time.Now when nil
}

func (e Env) withDefaults() Env {
	if e.ProcRoot == "" {
		e.ProcRoot = "/proc"
	}
	if e.SysRoot == "" {
		e.SysRoot = "/sys"
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

func (e Env) proc(elem ...string) string {
	return filepath.Join(append([]string{e.ProcRoot}, elem...)...)
}

func (e Env) sys(elem ...string) string {
	return filepath.Join(append([]string{e.SysRoot}, elem...)...)
}

// readTrimmed reads a small sysfs or procfs file without its trailing newline.
func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// isAbsent reports whether err means the file or directory is not there (rather than unreadable).
func isAbsent(err error) bool {
	return errors.Is(err, fs.ErrNotExist)
}

// parseSysfsInt parses a sysfs attribute holding one decimal integer ("45000\n").
func parseSysfsInt(s string) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, badNumber(err)
	}
	return v, nil
}

// badNumber turns a strconv error into an ErrBadValue that says what was wrong ("invalid syntax",
// "value out of range") without repeating the text, which SampleError prints already.
func badNumber(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return fmt.Errorf("%w: %w", ErrBadValue, ne.Err)
	}
	return fmt.Errorf("%w: %w", ErrBadValue, err)
}

// presence remembers which sensors a collector has seen, so that one that goes away is reported
// (ErrVanished) instead of silently dropped. A vanished sensor is reported at every Collect until
// it comes back.
type presence struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// update records the sensors present now and returns those seen before but not now, sorted.
// A key is sensor + "\x00" + metric.
func (p *presence) update(now map[string]struct{}) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]struct{}{}
	}
	var gone []string
	for k := range p.seen {
		if _, ok := now[k]; !ok {
			gone = append(gone, k)
		}
	}
	for k := range now {
		p.seen[k] = struct{}{}
	}
	sort.Strings(gone)
	return gone
}

// reportVanished turns the keys returned by presence.update into per-sample errors.
func (b *batch) reportVanished(gone []string) {
	for _, k := range gone {
		sensor, metric, _ := strings.Cut(k, "\x00")
		b.fail(metric, sensor, "", ErrVanished)
	}
}

func presenceKey(sensor, metric string) string { return sensor + "\x00" + metric }

// naturalCompare orders names with a trailing number by their prefix, then numerically:
// hwmon2 before hwmon10.
func naturalCompare(a, b string) int {
	pa, na := splitTrailingNumber(a)
	pb, nb := splitTrailingNumber(b)
	if c := strings.Compare(pa, pb); c != 0 {
		return c
	}
	if na != nb {
		if na < nb {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func splitTrailingNumber(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(s[i:])
	if err != nil {
		return s, -1
	}
	return s[:i], n
}
