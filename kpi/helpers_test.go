package kpi

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// t0 is the fixed time of the fake clocks.
var t0 = time.Date(2025, 11, 22, 5, 0, 0, 0, time.UTC)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixtureEnv reads the fixture trees testdata/<proc> and testdata/<sys> with a fixed clock.
func fixtureEnv(proc, sys string) Env {
	return Env{ProcRoot: filepath.Join("testdata", proc), SysRoot: filepath.Join("testdata", sys), Now: func() time.Time { return t0 }}
}

// copyTree copies a fixture tree into a temporary directory, symbolic links as links, so a test
// can change it between Collects.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// approx reports whether a and b agree to 1e-9 relative (or absolute, near 0).
func approx(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// diffSamples describes how got differs from want ("" when it does not); values are compared
// with approx.
func diffSamples(got, want []Sample) string {
	var b strings.Builder
	n := max(len(got), len(want))
	for i := range n {
		switch {
		case i >= len(got):
			fmt.Fprintf(&b, "missing [%d] %s\n", i, fmtSample(want[i]))
		case i >= len(want):
			fmt.Fprintf(&b, "extra   [%d] %s\n", i, fmtSample(got[i]))
		default:
			g, w := got[i], want[i]
			gv, wv := g.Value, w.Value
			g.Value, w.Value = 0, 0
			if g != w || !approx(gv, wv) {
				g.Value, w.Value = gv, wv
				fmt.Fprintf(&b, "[%d] got  %s\n    want %s\n", i, fmtSample(g), fmtSample(w))
			}
		}
	}
	return b.String()
}

func fmtSample(s Sample) string {
	return fmt.Sprintf("{%s %s vnode=%q sensor=%q %v %s status=%q %s}", s.Source, s.Metric, s.VNode, s.Sensor, s.Value, s.Unit, s.Status, s.Time.Format(time.RFC3339Nano))
}

// sampleErrors returns the per-sample errors of a Collect's error, failing when err is something
// else.
func sampleErrors(t testing.TB, err error) []*SampleError {
	t.Helper()
	if err == nil {
		return nil
	}
	var pe *PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *PartialError", err, err)
	}
	return pe.Errs
}

// errorKey is what tests compare of a SampleError: sensor, metric, value as read, and the
// sentinel it wraps.
func errorKey(e *SampleError) string {
	kind := "other"
	for _, s := range []error{ErrBadValue, ErrVanished, ErrUnavailable, ErrNoData} {
		if errors.Is(e, s) {
			kind = s.Error()
			break
		}
	}
	return fmt.Sprintf("%s|%s|%s|%s|%s", e.Source, e.Sensor, e.Metric, e.Value, kind)
}

func errorKeys(errs []*SampleError) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = errorKey(e)
	}
	return out
}
