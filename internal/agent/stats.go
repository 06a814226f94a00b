package agent

import (
	"maps"
	"time"

	"github.com/drover-hpc/drover/kpi"
)

// Stats are an agent's figures since it started.
type Stats struct {
	Collectors map[string]CollectorStats // by collector name

	Batches      int // handed to the shipper
	Samples      int // in those batches
	Events       int // health events in those batches
	PutErrors    int // batches the shipper refused
	SampleErrors int // readings left out (*kpi.SampleError), never shipped
	SkippedTicks int // schedule ticks skipped because a cycle outlasted its period
	Monitors     int // sensors checked for health

	Maintenance       int // partition maintenance runs
	MaintenanceErrors int
}

// CollectorStats are one collector's runs: how they ended and how long they took.
type CollectorStats struct {
	Runs     int
	Outcomes map[kpi.Outcome]int
	Samples  int
	Problems int // readings left out
	Last     time.Duration
	Total    time.Duration
	Max      time.Duration
	LastRun  kpi.Outcome
	LastErr  string // the last run's error; "" when it had none
}

// Mean is the average duration of a run.
func (c CollectorStats) Mean() time.Duration {
	if c.Runs == 0 {
		return 0
	}
	return c.Total / time.Duration(c.Runs)
}

func (c *CollectorStats) add(run kpi.Run) {
	if c.Outcomes == nil {
		c.Outcomes = map[kpi.Outcome]int{}
	}
	c.Runs++
	c.Outcomes[run.Outcome]++
	c.Samples += run.Samples
	c.Problems += run.Problems
	c.Last = run.Duration
	c.Total += run.Duration
	c.Max = max(c.Max, run.Duration)
	c.LastRun = run.Outcome
	c.LastErr = ""
	if run.Err != nil {
		c.LastErr = run.Err.Error()
	}
}

// Stats returns a copy of the agent's figures.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	s := a.stats
	s.Collectors = make(map[string]CollectorStats, len(a.stats.Collectors))
	for k, v := range a.stats.Collectors {
		v.Outcomes = maps.Clone(v.Outcomes)
		s.Collectors[k] = v
	}
	a.mu.Unlock()
	s.Monitors = a.mon.count()
	return s
}
