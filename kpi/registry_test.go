package kpi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// collectorFunc makes a function a Collector.
type collectorFunc func(ctx context.Context) ([]Sample, error)

func (f collectorFunc) Collect(ctx context.Context) ([]Sample, error) { return f(ctx) }

func returns(metric string, err error) collectorFunc {
	return func(context.Context) ([]Sample, error) {
		if metric == "" {
			return nil, err
		}
		return []Sample{{Source: "test", Metric: metric, Time: t0}}, err
	}
}

func newTestRegistry(t *testing.T) (*Registry, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	return NewRegistry(zerolog.New(&logs).Level(zerolog.DebugLevel), nil), &logs
}

func mustRegister(t *testing.T, r *Registry, name string, c Collector, timeout time.Duration) {
	t.Helper()
	if err := r.Register(name, c, timeout); err != nil {
		t.Fatal(err)
	}
}

// A slow BMC must not hold back the other collectors: each runs under its own timeout.
func TestRegistrySlowCollector(t *testing.T) {
	r, _ := newTestRegistry(t)
	release := make(chan struct{})
	defer close(release)
	mustRegister(t, r, "fast", returns("load1", nil), time.Second)
	// honours its context: returns when its 50 ms are up
	mustRegister(t, r, "slow", collectorFunc(func(ctx context.Context) ([]Sample, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}), 50*time.Millisecond)
	// ignores its context (a hung read): the registry stops waiting after 100 ms anyway
	mustRegister(t, r, "stuck", collectorFunc(func(context.Context) ([]Sample, error) {
		<-release
		return []Sample{{Metric: "late"}}, nil
	}), 100*time.Millisecond)

	start := time.Now()
	var order []string
	var fastAt time.Duration
	r.CollectFunc(context.Background(), func(run Run, s []Sample) {
		order = append(order, run.Collector)
		if run.Collector == "fast" {
			fastAt = time.Since(start)
		}
	})
	took := time.Since(start)
	// the cycle lasts about the longest timeout (100 ms), not until the stuck one returns; the
	// upper bound leaves 800 ms for a loaded machine
	if took < 95*time.Millisecond || took > 900*time.Millisecond {
		t.Errorf("cycle took %v, want about 100 ms", took)
	}
	if order[0] != "fast" || fastAt >= 50*time.Millisecond {
		t.Errorf("results came in as %v, fast after %v; want fast first, before any timeout", order, fastAt)
	}

	cycle := r.Collect(context.Background())
	byName := map[string]Run{}
	for _, run := range cycle.Runs {
		byName[run.Collector] = run
	}
	if run := byName["fast"]; run.Outcome != OutcomeOK || run.Samples != 1 || !run.Success() || run.Err != nil {
		t.Errorf("fast: %+v", run)
	}
	if run := byName["slow"]; run.Outcome != OutcomeTimeout || run.Success() || !errors.Is(run.Err, context.DeadlineExceeded) {
		t.Errorf("slow: %+v", run)
	}
	// still stuck in the first cycle's run: skipped, not started a second time
	if run := byName["stuck"]; run.Outcome != OutcomeSkipped || run.Success() || run.Duration > 40*time.Millisecond {
		t.Errorf("stuck: %+v", run)
	}
	if len(cycle.Samples) != 1 || cycle.Samples[0].Metric != "load1" {
		t.Errorf("samples %v, want only fast's", cycle.Samples)
	}
}

func TestRegistryStuckCollectorRecovers(t *testing.T) {
	r, _ := newTestRegistry(t)
	release := make(chan struct{})
	var calls sync.WaitGroup
	mustRegister(t, r, "stuck", collectorFunc(func(context.Context) ([]Sample, error) {
		defer calls.Done()
		<-release
		return nil, nil
	}), 20*time.Millisecond)
	calls.Add(1)
	if run := r.Collect(context.Background()).Runs[0]; run.Outcome != OutcomeTimeout {
		t.Fatalf("first cycle: %+v, want a timeout", run)
	}
	close(release)
	calls.Wait() // its collector has returned; the registry notices a moment later
	calls.Add(1)
	var run Run
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if run = r.Collect(context.Background()).Runs[0]; run.Outcome != OutcomeSkipped {
			break
		}
	}
	if run.Outcome != OutcomeOK {
		t.Errorf("after it returned: %+v, want ok", run)
	}
}

func TestRegistryOutcomes(t *testing.T) {
	r, logs := newTestRegistry(t)
	partial := &PartialError{Errs: []*SampleError{{Source: "sysfs", Sensor: "nct6775.656/fan1", Metric: "fan_rpm", Value: "250000", Err: ErrBadValue}}}
	mustRegister(t, r, "ok", returns("a", nil), time.Second)
	mustRegister(t, r, "partial", returns("b", partial), time.Second)
	mustRegister(t, r, "nodata", returns("", errors.New("rapl: "+ErrNoData.Error())), time.Second) // not wrapped: an error
	mustRegister(t, r, "nodata2", returns("", ErrNoData), time.Second)
	mustRegister(t, r, "broken", returns("", errors.New("read /proc/stat: permission denied")), time.Second)
	mustRegister(t, r, "panics", collectorFunc(func(context.Context) ([]Sample, error) { panic("index out of range") }), time.Second)

	cycle := r.Collect(context.Background())
	want := []struct {
		name     string
		outcome  Outcome
		samples  int
		problems int
		success  bool
	}{
		{"ok", OutcomeOK, 1, 0, true},
		{"partial", OutcomePartial, 1, 1, true},
		{"nodata", OutcomeError, 0, 0, false},
		{"nodata2", OutcomeNoData, 0, 0, true},
		{"broken", OutcomeError, 0, 0, false},
		{"panics", OutcomeError, 0, 0, false},
	}
	if len(cycle.Runs) != len(want) {
		t.Fatalf("%d runs, want %d", len(cycle.Runs), len(want))
	}
	for i, w := range want {
		run := cycle.Runs[i]
		if run.Collector != w.name || run.Outcome != w.outcome || run.Samples != w.samples || run.Problems != w.problems || run.Success() != w.success {
			t.Errorf("run %d = %+v, want %+v", i, run, w)
		}
	}
	if !errors.Is(cycle.Runs[1].Err, ErrBadValue) {
		t.Errorf("partial run's error %v does not match ErrBadValue", cycle.Runs[1].Err)
	}
	// samples in registration order
	if len(cycle.Samples) != 2 || cycle.Samples[0].Metric != "a" || cycle.Samples[1].Metric != "b" {
		t.Errorf("samples %v, want a then b", cycle.Samples)
	}
	// ErrNoData at debug level, problems as warnings, nothing for ok
	levels := map[string]string{}
	for line := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		levels[m["collector"].(string)] = m["level"].(string)
	}
	wantLevels := map[string]string{"partial": "warn", "nodata": "warn", "nodata2": "debug", "broken": "warn", "panics": "warn"}
	for name, lvl := range wantLevels {
		if levels[name] != lvl {
			t.Errorf("%s logged at %q, want %q (all: %v)", name, levels[name], lvl, levels)
		}
	}
	if _, ok := levels["ok"]; ok {
		t.Error("a good run was logged")
	}
}

func TestRegistryCanceled(t *testing.T) {
	r, _ := newTestRegistry(t)
	mustRegister(t, r, "waits", collectorFunc(func(ctx context.Context) ([]Sample, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}), time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	run := r.Collect(ctx).Runs[0]
	if run.Outcome != OutcomeCanceled || time.Since(start) > 5*time.Second {
		t.Errorf("run %+v after %v, want canceled soon", run, time.Since(start))
	}
}

func TestRegister(t *testing.T) {
	r, _ := newTestRegistry(t)
	mustRegister(t, r, "loadavg", returns("a", nil), time.Second)
	for _, tt := range []struct {
		name    string
		c       Collector
		timeout time.Duration
	}{
		{"loadavg", returns("a", nil), time.Second}, // taken
		{"cpu", returns("a", nil), 0},               // no timeout
		{"", returns("a", nil), time.Second},        // no name
		{"cpu", nil, time.Second},                   // no collector
	} {
		if err := r.Register(tt.name, tt.c, tt.timeout); err == nil {
			t.Errorf("Register(%q, %v, %v) succeeded", tt.name, tt.c, tt.timeout)
		}
	}
	if got := r.Names(); len(got) != 1 || got[0] != "loadavg" {
		t.Errorf("Names = %v", got)
	}
}

func TestPartialErrorMessage(t *testing.T) {
	err := error(&PartialError{Errs: []*SampleError{
		{Source: "sysfs", Sensor: "coretemp.0/Core 0", Metric: "temp_celsius", Value: "250000", Err: errors.New("bad value: 250 celsius is above 200")},
		{Source: "libvirt", VNode: "vn1", Metric: "vm_memory_bytes", Err: ErrUnavailable},
	}})
	want := `2 readings left out: sysfs "coretemp.0/Core 0" temp_celsius: read "250000": bad value: 250 celsius is above 200; ` +
		`libvirt vnode "vn1" vm_memory_bytes: reading unavailable`
	if err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}
	var se *SampleError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &se) || se.Sensor != "coretemp.0/Core 0" {
		t.Errorf("errors.Is/As do not reach the sample errors of %v", err)
	}
}
