package scheduler

import (
	"fmt"
	"strings"
	"time"
)

// Filter is a feasibility check: may this vnode go on this host? A host that fails is dropped
// with the filter's reason code; that is an answer, not an error (Nomad's FeasibilityChecker,
// the Kubernetes Filter plugin). A plain Filter depends only on the host and the snapshot's time:
// it runs once, when the snapshot is built.
type Filter interface {
	Name() string
	Reason() string
	// Feasible checks one host: when a snapshot is built, and for explain traces.
	Feasible(q *Query, c *Candidate) bool
	// Explain says, for the verdict, why c failed.
	Explain(q *Query, c *Candidate) string
}

// DynamicFilter depends on the request: it runs per decision, on every host that passed the
// static filters (see filter). Its Feasible is the hot path: small enough to inline, reading the
// Candidate's hot fields, never allocating or formatting.
type DynamicFilter interface {
	Filter
	// Applies is false when the filter would pass every host for this request, so it is skipped.
	Applies(q *Query) bool
}

var (
	_ Filter        = ReachableFilter{}
	_ Filter        = StateFilter{}
	_ Filter        = StaleFilter{}
	_ Filter        = HealthFilter{}
	_ DynamicFilter = CPUFilter{}
	_ DynamicFilter = MemoryFilter{}
	_ DynamicFilter = ForecastFilter{}
	_ DynamicFilter = PowerFilter{}
	_ DynamicFilter = RackPowerFilter{}
	_ DynamicFilter = FeatureFilter{}
	_ DynamicFilter = AntiAffinityFilter{}
)

// ReachableFilter drops a host libvirt did not answer for.
type ReachableFilter struct{}

func (ReachableFilter) Name() string                          { return "reachable" }
func (ReachableFilter) Reason() string                        { return ReasonUnreachable }
func (ReachableFilter) Feasible(_ *Query, c *Candidate) bool  { return c.H.Reachable }
func (ReachableFilter) Explain(_ *Query, _ *Candidate) string { return "libvirt did not answer" }

// StateFilter drops a host that is not active: draining, drained, maintenance or down.
type StateFilter struct{}

func (StateFilter) Name() string   { return "state" }
func (StateFilter) Reason() string { return ReasonNotActive }
func (StateFilter) Feasible(_ *Query, c *Candidate) bool {
	return c.H.State == "" || c.H.State == "active"
}
func (StateFilter) Explain(_ *Query, c *Candidate) string { return "hypervisor is " + c.H.State }

// StaleFilter drops a host whose KPIs are older than Config.StaleAfter (or missing): stale data
// must not look healthy.
type StaleFilter struct{}

func (StaleFilter) Name() string   { return "stale-kpis" }
func (StaleFilter) Reason() string { return ReasonStaleKPIs }
func (StaleFilter) Feasible(q *Query, c *Candidate) bool {
	return !c.H.KPIAt.IsZero() && q.s.now.Sub(c.H.KPIAt) <= q.s.p.cfg.StaleAfter
}
func (StaleFilter) Explain(q *Query, c *Candidate) string {
	if c.H.KPIAt.IsZero() {
		return "no KPIs"
	}
	return fmt.Sprintf("KPIs are %s old (stale after %s)", q.s.now.Sub(c.H.KPIAt).Round(time.Second), q.s.p.cfg.StaleAfter)
}

// HealthFilter drops a host whose health is critical.
type HealthFilter struct{}

func (HealthFilter) Name() string                          { return "health" }
func (HealthFilter) Reason() string                        { return ReasonUnhealthy }
func (HealthFilter) Feasible(_ *Query, c *Candidate) bool  { return c.H.Health != "critical" }
func (HealthFilter) Explain(_ *Query, _ *Candidate) string { return "health is critical" }

// CPUFilter drops a host without room for the vCPUs: allocated + requested ≤ CPUs × overcommit.
type CPUFilter struct{}

func (CPUFilter) Name() string                         { return "cpu" }
func (CPUFilter) Reason() string                       { return ReasonNoCPU }
func (CPUFilter) Applies(*Query) bool                  { return true }
func (CPUFilter) Feasible(q *Query, c *Candidate) bool { return c.cpuAlloc+q.cpus <= c.cpuCap }
func (CPUFilter) Explain(q *Query, c *Candidate) string {
	return fmt.Sprintf("needs %g vCPUs, %g of %g free (%d CPUs × overcommit)", q.cpus, c.cpuCap-c.cpuAlloc, c.cpuCap, c.H.CPUs)
}

// MemoryFilter drops a host without room for the memory: allocated + requested ≤ MiB × overcommit
// (or, when the host's capacity is unknown, requested ≤ libvirt's free memory).
type MemoryFilter struct{}

func (MemoryFilter) Name() string                         { return "memory" }
func (MemoryFilter) Reason() string                       { return ReasonNoMemory }
func (MemoryFilter) Applies(*Query) bool                  { return true }
func (MemoryFilter) Feasible(q *Query, c *Candidate) bool { return c.memAlloc+q.mem <= c.memCap }
func (MemoryFilter) Explain(q *Query, c *Candidate) string {
	return fmt.Sprintf("needs %g MiB, %g of %g MiB free", q.mem, c.memCap-c.memAlloc, c.memCap)
}

// ForecastFilter drops a host predicted to breach a health threshold before the job's time limit
// runs out (any predicted breach when the job has no limit), and, for a no-migrate job, a host
// already in warning: such a vnode could not be moved away later.
type ForecastFilter struct{}

func (ForecastFilter) Name() string          { return "forecast" }
func (ForecastFilter) Reason() string        { return ReasonBreachSoon }
func (ForecastFilter) Applies(q *Query) bool { return len(q.s.risky) > 0 }

// Feasible reads the host itself: Decide only asks about the snapshot's few risky hosts (a
// predicted breach, or in warning), every other host passes.
func (ForecastFilter) Feasible(q *Query, c *Candidate) bool {
	h := c.H
	return (h.BreachAt.IsZero() || h.BreachAt.UnixNano() >= q.deadline) && !(h.Health == "warning" && q.req.Hints.NoMigrate)
}
func (ForecastFilter) Explain(q *Query, c *Candidate) string {
	if c.H.Health == "warning" && q.req.Hints.NoMigrate {
		return "health is warning and the job asked not to be migrated"
	}
	limit := "no time limit"
	if q.req.TimeLimit > 0 {
		limit = "time limit " + q.req.TimeLimit.String()
	}
	return fmt.Sprintf("breach predicted in %s, job has %s", c.H.BreachAt.Sub(q.s.now).Round(time.Second), limit)
}

// PowerFilter drops a host whose power cap the new vnode would exceed: watts now + estimated
// watts of the vnode ≤ cap.
type PowerFilter struct{}

func (PowerFilter) Name() string   { return "power" }
func (PowerFilter) Reason() string { return ReasonPowerCap }

// Applies is false when the vnode fits under the tightest host cap.
func (PowerFilter) Applies(q *Query) bool { return q.watts > q.s.minHead }
func (PowerFilter) Feasible(q *Query, c *Candidate) bool {
	return c.powerUse+q.watts <= c.powerCap // +Inf without a cap
}
func (PowerFilter) Explain(q *Query, c *Candidate) string {
	return fmt.Sprintf("%.0f W now + %.0f W for the vnode > cap %.0f W", c.powerUse, q.watts, c.powerCap)
}

// RackPowerFilter drops a host whose rack's power cap the new vnode would exceed: Σ watts of the
// rack's hosts + estimated watts of the vnode ≤ the rack's cap (Config.Racks).
type RackPowerFilter struct{}

func (RackPowerFilter) Name() string   { return "rack-power" }
func (RackPowerFilter) Reason() string { return ReasonRackPowerCap }

// Applies is false when no rack is within the vnode's watts of its cap.
func (RackPowerFilter) Applies(q *Query) bool {
	for r, limit := range q.s.rackCap {
		if q.s.rackUse[r]+q.watts > limit { // never for +Inf
			return true
		}
	}
	return false
}
func (RackPowerFilter) Feasible(q *Query, c *Candidate) bool {
	return q.s.rackUse[c.rack]+q.watts <= q.s.rackCap[c.rack] // rack 0 and uncapped racks: +Inf
}
func (RackPowerFilter) Explain(q *Query, c *Candidate) string {
	return fmt.Sprintf("rack %s: %.0f W now + %.0f W for the vnode > cap %.0f W", c.H.Rack, q.s.rackUse[c.rack], q.watts, q.s.rackCap[c.rack])
}

// FeatureFilter drops a host whose features do not satisfy the request's constraint.
type FeatureFilter struct{}

func (FeatureFilter) Name() string          { return "features" }
func (FeatureFilter) Reason() string        { return ReasonFeatures }
func (FeatureFilter) Applies(q *Query) bool { return len(q.cons) > 0 }
func (FeatureFilter) Feasible(q *Query, c *Candidate) bool {
	return len(q.cons) == 0 || q.featOK[c.feat] // the constraint matched once per distinct feature set
}
func (FeatureFilter) Explain(q *Query, c *Candidate) string {
	have := "none"
	if len(c.H.Features) > 0 {
		have = strings.Join(c.H.Features, ",")
	}
	return fmt.Sprintf("constraint %q, host has %s", q.req.Constraint, have)
}

// AntiAffinityFilter (spread hint) drops a host that already runs one of the job's vnodes.
type AntiAffinityFilter struct{}

func (AntiAffinityFilter) Name() string   { return "anti-affinity" }
func (AntiAffinityFilter) Reason() string { return ReasonAntiAffinity }
func (AntiAffinityFilter) Applies(q *Query) bool {
	return q.req.Hints.Spread && len(q.jobIdx) > 0
}
func (AntiAffinityFilter) Feasible(q *Query, c *Candidate) bool { return q.jobCount(c) == 0 }
func (AntiAffinityFilter) Explain(q *Query, c *Candidate) string {
	return fmt.Sprintf("runs %d of job %d's vnodes and the job asked to spread", q.jobCount(c), q.req.JobID)
}
