package agent

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/drover-hpc/drover/health"
	"github.com/drover-hpc/drover/kpi"
)

// Reading is one sample of a Once report, with the collector that read it and, for a checked
// sensor, its health state after the reading.
type Reading struct {
	Collector string
	kpi.Sample
	Checked bool         // the sensor has a threshold
	State   health.State // its state; Unknown when not checked
}

// Report is what Once read: the readings in collector order, every collector's run, and the
// health events the readings caused (a sensor already beyond a bound gives one).
type Report struct {
	Readings []Reading
	Runs     []kpi.Run
	Events   []health.Event
}

// RateWarmup is how long Once waits between the two readings rate collectors (CPU, RAPL
// power, VM CPU) need.
const RateWarmup = time.Second

// Once reads every collector once, as one cycle of both schedules, and ships nothing. The KPI
// collectors are read twice, RateWarmup apart, so that rates have a value; the report holds
// the second reading.
func (a *Agent) Once(ctx context.Context) Report {
	a.readBMCThresholds(ctx)
	type result struct {
		run     kpi.Run
		samples []kpi.Sample
		events  []health.Event
	}
	var (
		mu      sync.Mutex
		results = map[string]result{}
	)
	keep := func(run kpi.Run, samples []kpi.Sample) {
		a.record(run)
		events := a.mon.observe(run, samples)
		mu.Lock()
		results[run.Collector] = result{run, samples, events}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Go(func() { a.healthReg.CollectFunc(ctx, keep) })
	wg.Go(func() {
		if len(a.kpiReg.Names()) == 0 {
			return
		}
		start := time.Now()
		a.kpiReg.CollectFunc(ctx, func(kpi.Run, []kpi.Sample) {}) // warm-up for the rates
		select {
		case <-ctx.Done():
			return
		case <-time.After(RateWarmup - time.Since(start)):
		}
		a.kpiReg.CollectFunc(ctx, keep)
	})
	wg.Wait()

	var rep Report
	for _, name := range slices.Concat(a.healthReg.Names(), a.kpiReg.Names()) {
		res, ok := results[name]
		if !ok {
			continue
		}
		rep.Runs = append(rep.Runs, res.run)
		rep.Events = append(rep.Events, res.events...)
		for _, s := range res.samples {
			r := Reading{Collector: name, Sample: s}
			if monitored(s) {
				r.State, r.Checked = a.mon.state(s.Source, s.Sensor)
			}
			rep.Readings = append(rep.Readings, r)
		}
	}
	return rep
}
