package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Rebalancing plans moves of running vnodes: evacuations of hypervisors in trouble first, then,
// as aggressiveness allows, load and thermal rebalancing and power consolidation. It reads top to
// bottom like the descheduler's LowNodeUtilization:
//
//	snapshot → evacuation sources (critical, predicted to breach within the horizon, draining),
//	           earliest breach first → their vnodes, shortest migration first → a target each
//	         → aggressiveness ≥ 2: pressure per host → hosts above the level's threshold (or in
//	           warning), most pressed first → move a small or quiet vnode when the score gain
//	           beats the hysteresis → stop at the caps
//	         → aggressiveness ≥ 4, nothing pressed: empty a lightly used host when all of its
//	           vnodes fit elsewhere
//
// It only plans: the server's control loop applies the Plan through migrate/, whose executor
// owns the concurrency limits.

// VM is a running vnode as the rebalancer sees it.
type VM struct {
	VNode     string
	Host      string // where it runs now
	JobID     int64  // 0 = none known
	CPUs      int
	MemoryMiB int64
	// DirtyBytesPerSec is how fast the guest dirties memory (0 = unknown, counted as quiet).
	DirtyBytesPerSec float64
	JobEnd           time.Time // the job's start + time limit; zero = unknown or unlimited
	NoMigrate        bool      // drover:no-migrate: never moved
	LastMigrated     time.Time // the last move (or attempt); zero = never
	Hints            Hints
	Constraint       string
}

// RebalanceConfig tunes a Rebalance. Zero fields take the defaults below.
type RebalanceConfig struct {
	Aggressiveness   int           // 1 only evacuations … 5 most eager (default 2)
	Horizon          time.Duration // a breach predicted within it evacuates now (default 15m)
	Cooldown         time.Duration // a vnode moved more recently is left alone (default 10m; critical and draining hosts ignore it)
	MaxMovesPerCycle int           // rebalancing + consolidation moves per plan (default 2)
	MaxMovesPerHost  int           // of those, per hypervisor in or out (default 1)
	// Hysteresis is the score gain (0–100 points) a rebalancing move must exceed at
	// aggressiveness 3; level L needs Hysteresis × (6 − L) / 3 (default 10).
	Hysteresis float64
	Spares     []string // evacuation targets tried first; never rebalancing or consolidation targets
	// BandwidthBytesPerSec is the migration link's usable rate (default 1000 MiB/s) and Overhead
	// each migration's fixed cost (set-up and switch-over, default 1 s): the estimate is
	// Overhead + memory / (bandwidth − dirty rate), or, when the guest dirties memory as fast as
	// the link carries it, the post-copy estimate Overhead + 2 × memory / bandwidth.
	BandwidthBytesPerSec float64
	Overhead             time.Duration
}

// Defaults for zero RebalanceConfig fields.
const (
	DefaultAggressiveness   = 2
	DefaultHorizon          = 15 * time.Minute
	DefaultCooldown         = 10 * time.Minute
	DefaultMaxMovesPerCycle = 2
	DefaultMaxMovesPerHost  = 1
	DefaultHysteresis       = 10.0
	DefaultBandwidth        = 1000 << 20 // bytes/s
	DefaultOverhead         = time.Second
)

// Move reasons, as the migration journal records them.
const (
	MoveEvacuation    = "evacuation"
	MoveRebalance     = "rebalance"
	MoveConsolidation = "consolidation"
	MoveDrain         = "drain"
)

// Skip codes: why a vnode (or a host, VNode "") was left where it is.
const (
	SkipNoMigrate   = "no-migrate"   // the job asked drover:no-migrate
	SkipJobEnds     = "job-ends"     // the job ends before the migration would finish, or before the breach
	SkipCooldown    = "cooldown"     // moved too recently
	SkipNoTarget    = "no-target"    // no other host can take it
	SkipGain        = "small-gain"   // the best target is not better by more than the hysteresis
	SkipCap         = "cap"          // max_moves_per_cycle or max_moves_per_host reached
	SkipUnknown     = "unknown-host" // it runs on a host the snapshot does not hold
	SkipBadVM       = "bad-vm"       // its size makes no sense
	SkipUnreachable = "unreachable"  // its host's libvirt did not answer: it cannot be moved from there
)

// Move is one planned migration.
type Move struct {
	VNode       string        `json:"vnode"`
	From        string        `json:"from"`
	To          string        `json:"to"`
	Reason      string        `json:"reason"`   // evacuation, rebalance, consolidation, drain
	Priority    int           `json:"priority"` // 1 first
	EstDuration time.Duration `json:"est_duration_ns"`
	Deadline    time.Time     `json:"deadline,omitzero"` // the source's predicted (or past) breach
	Gain        float64       `json:"gain,omitempty"`    // rebalancing: score gain of the move
	Why         string        `json:"why"`
}

// Skip is a vnode (or host) the plan leaves alone, and why.
type Skip struct {
	VNode string `json:"vnode,omitempty"`
	Host  string `json:"host"`
	Code  string `json:"code"`
	Why   string `json:"why"`
}

// Plan is what Rebalance proposes: moves in the order to run them, and what it left alone.
type Plan struct {
	At      time.Time `json:"at"`
	Moves   []Move    `json:"moves"`
	Skipped []Skip    `json:"skipped,omitempty"`
}

// Kind is the reason of the plan's first move ("" when it has none): what the plan is mostly for.
func (p Plan) Kind() string {
	if len(p.Moves) == 0 {
		return ""
	}
	return p.Moves[0].Reason
}

// Summary is one line saying what the plan does, for logs and the plans table.
func (p Plan) Summary() string {
	if len(p.Moves) == 0 {
		return fmt.Sprintf("nothing to move (%d left alone)", len(p.Skipped))
	}
	parts := make([]string, 0, len(p.Moves))
	for _, m := range p.Moves {
		parts = append(parts, fmt.Sprintf("%s %s→%s (%s)", m.VNode, m.From, m.To, m.Reason))
	}
	return strings.Join(parts, ", ")
}

// highPressure is, per aggressiveness, the pressure above which a host is rebalanced; lowPressure
// the one below which it may be emptied by consolidation (levels 4 and 5).
var (
	highPressure = [6]float64{2: 0.9, 3: 0.8, 4: 0.7, 5: 0.6}
	lowPressure  = [6]float64{4: 0.15, 5: 0.25}
)

func (cfg RebalanceConfig) withDefaults() (RebalanceConfig, error) {
	cfg.Aggressiveness = cmp.Or(cfg.Aggressiveness, DefaultAggressiveness)
	cfg.Horizon = cmp.Or(cfg.Horizon, DefaultHorizon)
	cfg.Cooldown = cmp.Or(cfg.Cooldown, DefaultCooldown)
	cfg.MaxMovesPerCycle = cmp.Or(cfg.MaxMovesPerCycle, DefaultMaxMovesPerCycle)
	cfg.MaxMovesPerHost = cmp.Or(cfg.MaxMovesPerHost, DefaultMaxMovesPerHost)
	cfg.Hysteresis = cmp.Or(cfg.Hysteresis, DefaultHysteresis)
	cfg.BandwidthBytesPerSec = cmp.Or(cfg.BandwidthBytesPerSec, DefaultBandwidth)
	cfg.Overhead = cmp.Or(cfg.Overhead, DefaultOverhead)
	var bad []string
	if cfg.Aggressiveness < 1 || cfg.Aggressiveness > 5 {
		bad = append(bad, fmt.Sprintf("aggressiveness %d is not 1 to 5", cfg.Aggressiveness))
	}
	if cfg.Horizon < 0 || cfg.Cooldown < 0 || cfg.Overhead < 0 {
		bad = append(bad, fmt.Sprintf("horizon %v, cooldown %v and overhead %v must not be negative", cfg.Horizon, cfg.Cooldown, cfg.Overhead))
	}
	if cfg.MaxMovesPerCycle < 0 || cfg.MaxMovesPerHost < 0 {
		bad = append(bad, fmt.Sprintf("caps %d per cycle and %d per host must not be negative", cfg.MaxMovesPerCycle, cfg.MaxMovesPerHost))
	}
	if !(cfg.Hysteresis >= 0 && cfg.Hysteresis <= 100) {
		bad = append(bad, fmt.Sprintf("hysteresis %v is not a score gain in [0, 100]", cfg.Hysteresis))
	}
	if !(cfg.BandwidthBytesPerSec > 0) || math.IsInf(cfg.BandwidthBytesPerSec, 0) {
		bad = append(bad, fmt.Sprintf("bandwidth %v bytes/s must be a positive number", cfg.BandwidthBytesPerSec))
	}
	if len(bad) > 0 {
		return cfg, errors.New("rebalance: " + strings.Join(bad, "; "))
	}
	return cfg, nil
}

// Estimate is how long migrating vm should take: Overhead + memory / (bandwidth − dirty rate), or
// the post-copy estimate Overhead + 2 × memory / bandwidth when the guest dirties memory at least
// as fast as the link carries it (pre-copy would never converge).
func (cfg RebalanceConfig) Estimate(vm VM) time.Duration {
	c, err := cfg.withDefaults()
	if err != nil {
		c = cfg
	}
	return c.estimate(vm)
}

func (cfg RebalanceConfig) estimate(vm VM) time.Duration {
	mem := float64(vm.MemoryMiB) * (1 << 20)
	bw, dirty := cfg.BandwidthBytesPerSec, math.Max(vm.DirtyBytesPerSec, 0)
	secs := 2 * mem / bw // post-copy: one pre-copy pass, then the rest on demand
	if dirty < bw {
		secs = mem / (bw - dirty)
	}
	return cfg.Overhead + time.Duration(secs*float64(time.Second))
}

// Pressure is how close a host is to what it should carry, 1 = at the limit: the largest of
// load1 / CPUs, the CPU busy fraction, power / its cap, and heat, which counts from coolWindow
// below the temperature's warning bound (0) up to the bound (1). Each term only where known;
// 0 when none is.
func Pressure(h *Host) float64 {
	p := h.CPUBusy
	if h.CPUs > 0 {
		p = math.Max(p, h.Load1/float64(h.CPUs))
	}
	if h.TempWarnC > 0 && h.TempC > 0 {
		p = math.Max(p, (h.TempC-(h.TempWarnC-coolWindow))/coolWindow)
	}
	if h.PowerCapWatts > 0 {
		p = math.Max(p, h.PowerWatts/h.PowerCapWatts)
	}
	return p
}

// coolWindow: a host this many °C below its warning bound has no thermal pressure.
const coolWindow = 20.0

// Use is how much of a host its vnodes and load take, for consolidation: the largest of load1 /
// CPUs, the CPU busy fraction and the allocated share of CPUs and memory.
func Use(h *Host) float64 {
	u := h.CPUBusy
	if h.CPUs > 0 {
		u = math.Max(u, math.Max(h.Load1, float64(h.AllocCPUs))/float64(h.CPUs))
	}
	if h.MemoryMiB > 0 {
		u = math.Max(u, float64(h.AllocMemoryMiB)/float64(h.MemoryMiB))
	}
	return u
}

// evacSource is a host whose vnodes must leave.
type evacSource struct {
	host     *Host
	reason   string    // evacuation or drain
	at       time.Time // the breach (now for a critical host); far future for a plain drain
	critical bool
	why      string
}

// planner is one Rebalance call's state.
type planner struct {
	p    *Pipeline
	cfg  RebalanceConfig
	now  time.Time
	s    *Snapshot
	plan Plan

	vms      []VM              // by name
	where    map[string]string // vnode → its host, as planned so far
	onHost   map[string][]int  // host → indices into vms, by vnode name
	moved    map[string]bool   // vnodes with a move in the plan
	hostUse  map[string]int    // moves touching each host, evacuations included
	optional int               // rebalancing and consolidation moves so far
	spares   map[string]bool
	evac     map[string]bool // hosts being evacuated
}

// Rebalance plans moves of vms across hosts at time now (see the top of this file for the
// order). It never moves a no-migrate vnode, never targets a host the placement filters drop, and
// keeps rebalancing and consolidation within the caps; evacuations are mandatory and uncapped.
// The same input gives the same plan, whatever the order of hosts and vms. The error is for a
// configuration or snapshot that cannot be used at all.
func (p *Pipeline) Rebalance(hosts []Host, vms []VM, cfg RebalanceConfig, now time.Time) (Plan, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Plan{}, err
	}
	pl := &planner{p: p, cfg: cfg, now: now, plan: Plan{At: now, Moves: []Move{}}, where: map[string]string{},
		onHost: map[string][]int{}, moved: map[string]bool{}, hostUse: map[string]int{}, spares: map[string]bool{},
		evac: map[string]bool{}}
	for _, s := range cfg.Spares {
		pl.spares[s] = true
	}

	// 1. evacuation sources, earliest breach first; in the planner's copy of the hosts they are
	// draining, so that no decision of this plan targets them
	sources := evacuationSources(hosts, now, cfg.Horizon)
	planned := append([]Host(nil), hosts...)
	for i := range planned {
		if _, ok := findSource(sources, planned[i].Name); ok {
			pl.evac[planned[i].Name] = true
			if planned[i].State == "" || planned[i].State == "active" {
				planned[i].State = "draining"
			}
		}
	}
	if pl.s, err = p.Snapshot(planned, now); err != nil {
		return Plan{}, fmt.Errorf("rebalance: %w", err)
	}

	// 2. the vnodes, by name, grouped by host
	pl.vms = append([]VM(nil), vms...)
	sort.SliceStable(pl.vms, func(i, j int) bool { return pl.vms[i].VNode < pl.vms[j].VNode })
	for i, vm := range pl.vms {
		switch {
		case vm.CPUs <= 0 || vm.MemoryMiB <= 0 || !(vm.DirtyBytesPerSec >= 0):
			pl.skip(vm, SkipBadVM, fmt.Sprintf("%d CPUs, %d MiB, dirty rate %v B/s: sizes must be positive", vm.CPUs, vm.MemoryMiB, vm.DirtyBytesPerSec))
			continue
		case pl.host(vm.Host) == nil:
			pl.skip(vm, SkipUnknown, fmt.Sprintf("runs on %q, which is not in the snapshot", vm.Host))
			continue
		}
		pl.where[vm.VNode] = vm.Host
		pl.onHost[vm.Host] = append(pl.onHost[vm.Host], i)
	}

	// 3. evacuations: mandatory, never capped
	for _, src := range sources {
		pl.evacuate(src)
	}
	if cfg.Aggressiveness < 2 {
		return pl.finish(), nil
	}
	// 4. rebalancing, then 5. consolidation when nothing is pressed
	pressed := pl.rebalance()
	if cfg.Aggressiveness >= 4 && !pressed && len(sources) == 0 {
		pl.consolidate()
	}
	return pl.finish(), nil
}

func (pl *planner) finish() Plan {
	for i := range pl.plan.Moves {
		pl.plan.Moves[i].Priority = i + 1
	}
	return pl.plan
}

// evacuationSources lists the hosts whose vnodes must leave, earliest breach first (a critical
// host has breached: now), then draining hosts, ties by name.
func evacuationSources(hosts []Host, now time.Time, horizon time.Duration) []evacSource {
	far := now.Add(100 * 365 * 24 * time.Hour)
	var out []evacSource
	for i := range hosts {
		h := &hosts[i]
		switch {
		case h.State == "down" || h.State == "maintenance" || h.State == "drained":
			// nothing runs there that could be moved live, or an operator holds it
		case h.Health == "critical":
			out = append(out, evacSource{h, MoveEvacuation, now, true, h.Name + " is critical"})
		case !h.BreachAt.IsZero() && !h.BreachAt.After(now.Add(horizon)):
			out = append(out, evacSource{h, MoveEvacuation, h.BreachAt, false,
				fmt.Sprintf("%s is predicted to breach a health threshold at %s (in %s)", h.Name,
					h.BreachAt.UTC().Format("15:04:05"), h.BreachAt.Sub(now).Round(time.Second))})
		case h.State == "draining":
			out = append(out, evacSource{h, MoveDrain, far, false, h.Name + " is draining"})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		return out[i].host.Name < out[j].host.Name
	})
	return out
}

func findSource(ss []evacSource, name string) (evacSource, bool) {
	for _, s := range ss {
		if s.host.Name == name {
			return s, true
		}
	}
	return evacSource{}, false
}

func (pl *planner) host(name string) *Host {
	i, ok := pl.s.byName[name]
	if !ok {
		return nil
	}
	return &pl.s.hosts[i]
}

func (pl *planner) skip(vm VM, code, why string) {
	pl.plan.Skipped = append(pl.plan.Skipped, Skip{VNode: vm.VNode, Host: vm.Host, Code: code, Why: why})
}

// byEstimate returns the host's vnodes not yet moved, shortest migration first (small and quiet
// vnodes first), ties by name.
func (pl *planner) byEstimate(host string) []int {
	var out []int
	for _, i := range pl.onHost[host] {
		if !pl.moved[pl.vms[i].VNode] {
			out = append(out, i)
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		ea, eb := pl.cfg.estimate(pl.vms[out[a]]), pl.cfg.estimate(pl.vms[out[b]])
		if ea != eb {
			return ea < eb
		}
		return pl.vms[out[a]].VNode < pl.vms[out[b]].VNode
	})
	return out
}

// movable says why vm must stay ("" when it may move): its no-migrate hint, a job that ends
// before the move would finish (or before deadline, when not zero), or the cooldown unless
// ignoreCooldown.
func (pl *planner) movable(vm VM, est time.Duration, deadline time.Time, ignoreCooldown bool) (code, why string) {
	switch {
	case vm.NoMigrate || vm.Hints.NoMigrate:
		return SkipNoMigrate, "its job asked drover:no-migrate"
	case !vm.JobEnd.IsZero() && !vm.JobEnd.After(pl.now.Add(est)):
		return SkipJobEnds, fmt.Sprintf("job %d ends at %s, before the migration would finish (about %s)",
			vm.JobID, vm.JobEnd.UTC().Format("15:04:05"), est.Round(100*time.Millisecond))
	case !vm.JobEnd.IsZero() && !deadline.IsZero() && !vm.JobEnd.After(deadline):
		return SkipJobEnds, fmt.Sprintf("job %d ends at %s, before the predicted breach at %s",
			vm.JobID, vm.JobEnd.UTC().Format("15:04:05"), deadline.UTC().Format("15:04:05"))
	case !ignoreCooldown && !vm.LastMigrated.IsZero() && pl.now.Sub(vm.LastMigrated) < pl.cfg.Cooldown:
		return SkipCooldown, fmt.Sprintf("moved %s ago (cooldown %s)", pl.now.Sub(vm.LastMigrated).Round(time.Second), pl.cfg.Cooldown)
	}
	return "", ""
}

// request is vm as a placement request, with where the job's other vnodes are now planned to be.
func (pl *planner) request(vm VM) Request {
	r := Request{VNode: vm.VNode, JobID: vm.JobID, CPUs: vm.CPUs, MemoryMiB: vm.MemoryMiB, Constraint: vm.Constraint,
		Hints: vm.Hints, Now: pl.now}
	r.Hints.NoMigrate = false // it is being moved: the placement filters need no stricter rule
	if !vm.JobEnd.IsZero() && vm.JobEnd.After(pl.now) {
		r.TimeLimit = vm.JobEnd.Sub(pl.now)
	}
	if vm.JobID != 0 {
		for _, o := range pl.vms {
			if o.JobID == vm.JobID && o.VNode != vm.VNode && pl.where[o.VNode] != "" {
				r.JobHosts = append(r.JobHosts, pl.where[o.VNode])
			}
		}
	}
	return r
}

// commit records a move in the plan and in the snapshot's capacities.
func (pl *planner) commit(vm VM, req Request, to, reason, why string, est time.Duration, deadline time.Time, gain float64) {
	pl.s.release(vm.Host, req)
	_ = pl.s.Assume(to, req) // to comes from the snapshot
	pl.where[vm.VNode] = to
	pl.moved[vm.VNode] = true
	pl.hostUse[vm.Host]++
	pl.hostUse[to]++
	pl.plan.Moves = append(pl.plan.Moves, Move{VNode: vm.VNode, From: vm.Host, To: to, Reason: reason,
		EstDuration: est, Deadline: deadline, Gain: gain, Why: why})
}

// evacuate moves every vnode it may off src, shortest migration first.
func (pl *planner) evacuate(src evacSource) {
	var deadline time.Time
	if src.reason == MoveEvacuation {
		deadline = src.at
	}
	for _, i := range pl.byEstimate(src.host.Name) {
		vm := pl.vms[i]
		if !src.host.Reachable {
			pl.skip(vm, SkipUnreachable, src.why+", but its libvirt does not answer: nothing can be moved from it")
			continue
		}
		est := pl.cfg.estimate(vm)
		var until time.Time // a job that ends before a predicted breach can stay
		if !src.critical && src.reason == MoveEvacuation {
			until = deadline
		}
		// an operator's drain and a critical host do not wait for the cooldown
		if code, why := pl.movable(vm, est, until, src.critical || src.reason == MoveDrain); code != "" {
			pl.skip(vm, code, src.why+", but "+why)
			continue
		}
		req := pl.request(vm)
		to, reason := pl.target(req)
		if to == "" {
			pl.skip(vm, SkipNoTarget, src.why+", but "+reason)
			continue
		}
		why := fmt.Sprintf("%s; est %s; to %s: %s", src.why, est.Round(100*time.Millisecond), to, reason)
		if !deadline.IsZero() && pl.now.Add(est).After(deadline) {
			why += " (may not finish before the breach)"
		}
		pl.commit(vm, req, to, src.reason, why, est, deadline, 0)
	}
}

// target picks an evacuation target: the best feasible spare when there is one, else the best
// feasible host. Evacuation sources are draining in the snapshot, so never chosen.
func (pl *planner) target(req Request) (string, string) {
	if len(pl.spares) == 0 {
		d := pl.p.Decide(req, pl.s, false)
		if d.Host == "" {
			return "", d.Reason
		}
		return d.Host, d.Reason
	}
	d := pl.p.Decide(req, pl.s, true)
	best := -1
	for k, v := range d.Verdicts {
		if v.Feasible && pl.spares[v.Host] && (best < 0 || v.Score > d.Verdicts[best].Score+tieEpsilon) {
			best = k
		}
	}
	if best >= 0 {
		return d.Verdicts[best].Host, fmt.Sprintf("spare hypervisor (score %.1f)", d.Verdicts[best].Score)
	}
	if d.Host == "" {
		return "", d.Reason
	}
	return d.Host, "no spare can take it; " + d.Reason
}

// bestExcept decides req with every host's verdict and returns the best feasible host that
// exclude allows, with its score, and the score of from (0 when from cannot take it).
func (pl *planner) bestExcept(req Request, from string, exclude func(string) bool) (to string, score, fromScore float64, d Decision) {
	d = pl.p.Decide(req, pl.s, true)
	best := -1
	for k, v := range d.Verdicts {
		if v.Host == from {
			if v.Feasible {
				fromScore = v.Score
			}
			continue
		}
		if v.Feasible && !exclude(v.Host) && (best < 0 || v.Score > d.Verdicts[best].Score+tieEpsilon) {
			best = k
		}
	}
	if best < 0 {
		return "", 0, fromScore, d
	}
	return d.Verdicts[best].Host, d.Verdicts[best].Score, fromScore, d
}

func (pl *planner) atCap(host string) bool { return pl.hostUse[host] >= pl.cfg.MaxMovesPerHost }

// rebalance moves small or quiet vnodes off the most pressed hosts while the score gain beats
// the hysteresis and the caps allow. It reports whether any host was pressed.
func (pl *planner) rebalance() bool {
	level := pl.cfg.Aggressiveness
	high, need := highPressure[level], pl.cfg.Hysteresis*float64(6-level)/3
	type pressed struct {
		h *Host
		p float64
	}
	var hot []pressed
	for _, i := range pl.s.passing {
		h := pl.s.cands[i].H
		if pl.evac[h.Name] || len(pl.onHost[h.Name]) == 0 {
			continue
		}
		if p := Pressure(h); p >= high || h.Health == "warning" {
			hot = append(hot, pressed{h, p})
		}
	}
	sort.SliceStable(hot, func(i, j int) bool {
		if hot[i].p != hot[j].p {
			return hot[i].p > hot[j].p
		}
		return hot[i].h.Name < hot[j].h.Name
	})
	exclude := func(h string) bool { return pl.spares[h] || pl.evac[h] || pl.atCap(h) }
	for _, hp := range hot {
		src := hp.h
		state := fmt.Sprintf("pressure %.2f", hp.p)
		if src.Health == "warning" {
			state = "health warning, " + state
		}
		for _, i := range pl.byEstimate(src.Name) {
			vm := pl.vms[i]
			if pl.optional >= pl.cfg.MaxMovesPerCycle || pl.atCap(src.Name) {
				pl.plan.Skipped = append(pl.plan.Skipped, Skip{Host: src.Name, Code: SkipCap,
					Why: fmt.Sprintf("%s is pressed (%s) but the caps are reached (%d moves per cycle, %d per host)",
						src.Name, state, pl.cfg.MaxMovesPerCycle, pl.cfg.MaxMovesPerHost)})
				break
			}
			est := pl.cfg.estimate(vm)
			if code, why := pl.movable(vm, est, time.Time{}, false); code != "" {
				pl.skip(vm, code, why)
				continue
			}
			req := pl.request(vm)
			pl.s.release(src.Name, req) // score the source as if the vnode had left
			to, score, fromScore, d := pl.bestExcept(req, src.Name, exclude)
			_ = pl.s.Assume(src.Name, req)
			if to == "" {
				pl.skip(vm, SkipNoTarget, fmt.Sprintf("%s (%s): no other host can take it: %s", src.Name, state, whyNowhere(&d)))
				continue
			}
			gain := score - fromScore
			if gain <= need {
				pl.skip(vm, SkipGain, fmt.Sprintf("%s (%s): the best target %s scores %.1f against %.1f here, a gain of %.1f, not above %.1f (hysteresis %.1f at aggressiveness %d)",
					src.Name, state, to, score, fromScore, gain, need, pl.cfg.Hysteresis, level))
				continue
			}
			pl.optional++
			pl.commit(vm, req, to, MoveRebalance, fmt.Sprintf("%s (%s); %s scores %.1f against %.1f, gain %.1f > %.1f; est %s",
				src.Name, state, to, score, fromScore, gain, need, est.Round(100*time.Millisecond)), est, time.Time{}, gain)
		}
	}
	return len(hot) > 0
}

// consolidate empties lightly used hosts whose vnodes all fit elsewhere, lightest first, within
// the caps: the host can then be powered down (by an operator or a power manager; not here).
// It runs only while the cluster stays well below the rebalancing threshold without the host.
func (pl *planner) consolidate() {
	level := pl.cfg.Aggressiveness
	low, high := lowPressure[level], highPressure[level]
	var light []*Host
	var load, cpus float64
	for _, i := range pl.s.passing {
		h := pl.s.cands[i].H
		if pl.spares[h.Name] {
			continue
		}
		load += math.Max(h.Load1, h.CPUBusy*float64(h.CPUs))
		cpus += float64(h.CPUs)
		if len(pl.onHost[h.Name]) > 0 && Use(h) < low {
			light = append(light, h)
		}
	}
	sort.SliceStable(light, func(i, j int) bool {
		if light[i].AllocCPUs != light[j].AllocCPUs {
			return light[i].AllocCPUs < light[j].AllocCPUs
		}
		return light[i].Name < light[j].Name
	})
	emptied := map[string]bool{}
	exclude := func(h string) bool { return pl.spares[h] || pl.evac[h] || emptied[h] }
	for _, src := range light {
		if pl.optional >= pl.cfg.MaxMovesPerCycle {
			return
		}
		rest := cpus - float64(src.CPUs)
		if rest <= 0 || load/rest >= high/2 {
			pl.plan.Skipped = append(pl.plan.Skipped, Skip{Host: src.Name, Code: SkipNoTarget,
				Why: fmt.Sprintf("%s is lightly used but the others would carry %.2f of their CPUs, not below %.2f", src.Name, load/math.Max(rest, 1), high/2)})
			continue
		}
		emptied[src.Name] = true
		// every vnode must fit elsewhere: try them all, largest first, then keep what the caps allow
		idx := pl.byEstimate(src.Name)
		sort.SliceStable(idx, func(a, b int) bool { return pl.vms[idx[a]].MemoryMiB > pl.vms[idx[b]].MemoryMiB })
		type trial struct {
			vm  VM
			req Request
			to  string
			est time.Duration
		}
		var trials []trial
		problem := ""
		for _, i := range idx {
			vm := pl.vms[i]
			est := pl.cfg.estimate(vm)
			if code, why := pl.movable(vm, est, time.Time{}, false); code != "" {
				if code == SkipJobEnds {
					continue // it leaves on its own
				}
				problem = vm.VNode + ": " + why
				break
			}
			req := pl.request(vm)
			pl.s.release(src.Name, req)
			to, _, _, d := pl.bestExcept(req, src.Name, exclude)
			if to == "" {
				_ = pl.s.Assume(src.Name, req)
				problem = vm.VNode + " fits nowhere else: " + whyNowhere(&d)
				break
			}
			_ = pl.s.Assume(to, req)
			trials = append(trials, trial{vm, req, to, est})
		}
		keep := 0
		if problem == "" {
			for keep < len(trials) && pl.optional+keep < pl.cfg.MaxMovesPerCycle && pl.hostUse[src.Name]+keep < pl.cfg.MaxMovesPerHost &&
				pl.hostUse[trials[keep].to] < pl.cfg.MaxMovesPerHost {
				keep++
			}
		}
		// undo the trial placements not kept, latest first
		for k := len(trials) - 1; k >= keep; k-- {
			pl.s.release(trials[k].to, trials[k].req)
			_ = pl.s.Assume(src.Name, trials[k].req)
		}
		if problem != "" {
			pl.plan.Skipped = append(pl.plan.Skipped, Skip{Host: src.Name, Code: SkipNoTarget,
				Why: fmt.Sprintf("%s is lightly used but cannot be emptied: %s", src.Name, problem)})
			continue
		}
		for k := 0; k < keep; k++ {
			t := trials[k]
			// the trial already moved its capacity: record the move without moving it again
			pl.where[t.vm.VNode] = t.to
			pl.moved[t.vm.VNode] = true
			pl.hostUse[src.Name]++
			pl.hostUse[t.to]++
			pl.optional++
			pl.plan.Moves = append(pl.plan.Moves, Move{VNode: t.vm.VNode, From: src.Name, To: t.to, Reason: MoveConsolidation,
				EstDuration: t.est, Why: fmt.Sprintf("%s is lightly used (%.2f < %.2f) and its %d vnodes all fit elsewhere; est %s",
					src.Name, Use(src), low, len(trials), t.est.Round(100*time.Millisecond))})
		}
		if keep < len(trials) {
			pl.plan.Skipped = append(pl.plan.Skipped, Skip{Host: src.Name, Code: SkipCap,
				Why: fmt.Sprintf("emptying %s: %d of %d moves wait for the next cycles (caps)", src.Name, len(trials)-keep, len(trials))})
		}
	}
}

// release is Assume undone: req no longer holds its CPUs, memory and watts on host.
func (s *Snapshot) release(host string, req Request) {
	i, ok := s.byName[host]
	if !ok {
		return
	}
	c := &s.cands[i]
	w := float32(s.p.watts(&req))
	c.cpuAlloc = max(0, c.cpuAlloc-float32(req.CPUs))
	c.memAlloc = max(0, c.memAlloc-float32(req.MemoryMiB))
	c.powerUse = max(0, c.powerUse-w)
	s.rackUse[c.rack] = max(0, s.rackUse[c.rack]-w)
}

// Check re-validates planned moves against a fresh view of hosts and vms at now, in order (each
// move counts for the next): the vnode still runs on the move's source, may still move, and the
// target can still take it. It returns one problem per move ("" when the move still holds). The
// error is for a snapshot that cannot be built.
func (p *Pipeline) Check(hosts []Host, vms []VM, moves []Move, now time.Time) ([]string, error) {
	s, err := p.Snapshot(hosts, now)
	if err != nil {
		return nil, fmt.Errorf("check plan: %w", err)
	}
	byName := map[string]VM{}
	for _, vm := range vms {
		byName[vm.VNode] = vm
	}
	pl := &planner{p: p, now: now, s: s, where: map[string]string{}}
	for _, vm := range vms {
		pl.where[vm.VNode] = vm.Host
	}
	pl.vms = vms
	out := make([]string, len(moves))
	for k, m := range moves {
		vm, ok := byName[m.VNode]
		switch {
		case !ok:
			out[k] = fmt.Sprintf("%s is no longer running", m.VNode)
		case vm.Host != m.From:
			out[k] = fmt.Sprintf("%s now runs on %s, not %s", m.VNode, vm.Host, m.From)
		case vm.NoMigrate || vm.Hints.NoMigrate:
			out[k] = fmt.Sprintf("%s's job now asks drover:no-migrate", m.VNode)
		}
		if out[k] != "" {
			continue
		}
		req := pl.request(vm)
		d := p.Decide(req, s, true)
		var v *Verdict
		for i := range d.Verdicts {
			if d.Verdicts[i].Host == m.To {
				v = &d.Verdicts[i]
			}
		}
		switch {
		case v == nil:
			out[k] = fmt.Sprintf("target %s is no longer a known hypervisor", m.To)
		case !v.Feasible:
			out[k] = fmt.Sprintf("%s can no longer take %s: %s (%s)", m.To, m.VNode, v.Reason, v.Detail)
		default:
			s.release(m.From, req)
			_ = s.Assume(m.To, req)
			pl.where[m.VNode] = m.To
		}
	}
	return out, nil
}
