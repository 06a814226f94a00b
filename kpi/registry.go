package kpi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Registry runs a set of named collectors together. Every collector of a cycle runs in its own
// goroutine under its own timeout, so a slow one (a BMC) never holds the others back, and each run
// is recorded as a Run: the outcome, duration and sample count the agent exports as metrics.
type Registry struct {
	log zerolog.Logger
	now func() time.Time

	mu      sync.Mutex
	entries []*entry
}

type entry struct {
	name    string
	c       Collector
	timeout time.Duration
	running atomic.Bool // a run, maybe from an earlier cycle, has not returned yet
}

// Outcome is how one collector's run ended.
type Outcome string

// Outcomes of a run.
const (
	OutcomeOK       Outcome = "ok"       // every reading good
	OutcomePartial  Outcome = "partial"  // good samples, and readings left out (*PartialError)
	OutcomeNoData   Outcome = "nodata"   // nothing to read on this host, or not yet (ErrNoData)
	OutcomeError    Outcome = "error"    // the collector failed
	OutcomeTimeout  Outcome = "timeout"  // it did not return within its timeout; its samples are lost
	OutcomeSkipped  Outcome = "skipped"  // its run from an earlier cycle has still not returned
	OutcomeCanceled Outcome = "canceled" // the cycle's context was canceled
)

// Run is the record of one collector's run in a cycle.
type Run struct {
	Collector string
	Start     time.Time
	Duration  time.Duration // until it returned, or until the registry stopped waiting
	Samples   int
	Problems  int // readings left out (the length of the *PartialError)
	Outcome   Outcome
	Err       error // nil when Outcome is OutcomeOK
}

// Success reports whether the collector did its job: every reading good, some readings left out,
// or nothing to read on this host.
func (r Run) Success() bool {
	return r.Outcome == OutcomeOK || r.Outcome == OutcomePartial || r.Outcome == OutcomeNoData
}

// Cycle is the result of one Collect: the samples of every collector, in registration order, and
// one Run per collector, in the same order.
type Cycle struct {
	Samples []Sample
	Runs    []Run
}

// NewRegistry returns an empty registry logging to log; now times the runs (time.Now when nil).
func NewRegistry(log zerolog.Logger, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{log: log, now: now}
}

// Register adds a collector under a unique name, with the time it is given per cycle.
func (r *Registry) Register(name string, c Collector, timeout time.Duration) error {
	if name == "" || c == nil {
		return errors.New("register collector: a name and a collector are required")
	}
	if timeout <= 0 {
		return fmt.Errorf("register collector %q: timeout %v is not positive", name, timeout)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if e.name == name {
			return fmt.Errorf("register collector %q: already registered", name)
		}
	}
	r.entries = append(r.entries, &entry{name: name, c: c, timeout: timeout})
	return nil
}

// Names lists the registered collectors in registration order.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.entries))
	for i, e := range r.entries {
		out[i] = e.name
	}
	return out
}

// Collect runs every collector once, concurrently, and returns when each has returned or run out
// of time: a cycle lasts at most the longest timeout.
func (r *Registry) Collect(ctx context.Context) Cycle {
	r.mu.Lock()
	entries := append([]*entry(nil), r.entries...)
	r.mu.Unlock()
	runs := make([]Run, len(entries))
	samples := make([][]Sample, len(entries))
	r.collect(ctx, entries, func(i int, run Run, s []Sample) { runs[i], samples[i] = run, s })
	var out Cycle
	out.Runs = runs
	for _, s := range samples {
		out.Samples = append(out.Samples, s...)
	}
	return out
}

// CollectFunc is Collect handing each collector's result to fn as soon as it is in, so that fast
// collectors' samples need not wait for slow ones. fn is called from the calling goroutine, once
// per collector, in the order they finish; CollectFunc returns after the last call.
func (r *Registry) CollectFunc(ctx context.Context, fn func(Run, []Sample)) {
	r.mu.Lock()
	entries := append([]*entry(nil), r.entries...)
	r.mu.Unlock()
	r.collect(ctx, entries, func(_ int, run Run, s []Sample) { fn(run, s) })
}

func (r *Registry) collect(ctx context.Context, entries []*entry, fn func(int, Run, []Sample)) {
	type result struct {
		i       int
		run     Run
		samples []Sample
	}
	results := make(chan result, len(entries))
	for i, e := range entries {
		go func() {
			run, s := r.run(ctx, e)
			results <- result{i, run, s}
		}()
	}
	for range entries {
		res := <-results
		r.logRun(res.run)
		fn(res.i, res.run, res.samples)
	}
}

// run runs one collector under its timeout. A collector that does not return in time is left
// running (its context is canceled); until it returns, later cycles skip it rather than pile up
// goroutines behind it.
func (r *Registry) run(ctx context.Context, e *entry) (Run, []Sample) {
	run := Run{Collector: e.name, Start: r.now()}
	finish := func(o Outcome, err error) Run {
		run.Duration, run.Outcome, run.Err = r.now().Sub(run.Start), o, err
		return run
	}
	if !e.running.CompareAndSwap(false, true) {
		return finish(OutcomeSkipped, fmt.Errorf("collector %s: its previous run has not returned", e.name)), nil
	}
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	type result struct {
		samples []Sample
		err     error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			if p := recover(); p != nil {
				res = result{err: fmt.Errorf("collector %s panicked: %v", e.name, p)}
			}
			e.running.Store(false) // before the result is out: a returned run is never "running"
			done <- res
		}()
		res.samples, res.err = e.c.Collect(cctx)
	}()
	var res result
	select {
	case res = <-done:
	case <-cctx.Done():
		select {
		case res = <-done: // it made it after all
		default:
			if ctx.Err() != nil {
				return finish(OutcomeCanceled, fmt.Errorf("collector %s: %w", e.name, ctx.Err())), nil
			}
			return finish(OutcomeTimeout, fmt.Errorf("collector %s: no answer within %v: %w", e.name, e.timeout, cctx.Err())), nil
		}
	}
	run.Samples = len(res.samples)
	var partial *PartialError
	switch err := res.err; {
	case err == nil:
		return finish(OutcomeOK, nil), res.samples
	case errors.As(err, &partial):
		run.Problems = len(partial.Errs)
		return finish(OutcomePartial, fmt.Errorf("collector %s: %w", e.name, err)), res.samples
	case errors.Is(err, ErrNoData):
		return finish(OutcomeNoData, err), res.samples
	case ctx.Err() != nil:
		return finish(OutcomeCanceled, fmt.Errorf("collector %s: %w", e.name, err)), nil
	case cctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		return finish(OutcomeTimeout, fmt.Errorf("collector %s: %w", e.name, err)), nil
	default:
		return finish(OutcomeError, fmt.Errorf("collector %s: %w", e.name, err)), res.samples
	}
}

// logRun logs a run that did not go well: ErrNoData at debug level, the rest as warnings.
func (r *Registry) logRun(run Run) {
	var ev *zerolog.Event
	switch run.Outcome {
	case OutcomeOK:
		return
	case OutcomeNoData:
		ev = r.log.Debug()
	default:
		ev = r.log.Warn()
	}
	ev.Str("collector", run.Collector).Str("outcome", string(run.Outcome)).
		Dur("took", run.Duration).Int("samples", run.Samples).Int("problems", run.Problems).
		Err(run.Err).Msg("kpi collector")
}
