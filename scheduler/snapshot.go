package scheduler

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"sync"
	"time"
)

// Candidate is a host prepared for the hot path: capacities as floats, features as an interned
// set, times as nanoseconds, and the checks and scores that do not depend on the request already
// done. Filters and scorers read it; only the snapshot writes it.
type Candidate struct {
	// hot: what Decide's passes read for every host. float32 holds CPU counts and MiB exactly up
	// to 2^24 (16 TiB).
	cpuCap   float32 // CPUs × overcommit
	cpuAlloc float32
	memCap   float32 // MiB × overcommit
	memAlloc float32
	powerCap float32 // W, +Inf = none (so the filter needs no branch)
	powerUse float32 // W now, plus what Assume added
	inv      inverse // reciprocal capacities, so that scorers multiply instead of divide
	// staticScore is Σ weight × normalised score over the static scorers.
	staticScore float64
	rack        int32 // index into the snapshot's rack table; 0 is "no rack", capped at +Inf
	feat        int32 // index of the host's feature set in the snapshot's featSets

	// cold (but for risky): static checks and explain traces
	idx    int32
	static int8  // index of the static filter that dropped it, -1 = passed them all
	risky  bool  // passed the static filters, with a predicted breach or in warning
	H      *Host // the snapshot's copy of the host
}

// Snapshot is a set of hosts prepared for many decisions: built once per KPI refresh, decided on
// many times. Its static filters and scorers (those that depend only on the host and the time)
// are evaluated when it is built, against its time. It is not safe for concurrent use when
// Assume is called; Decide alone may run concurrently.
type Snapshot struct {
	p        *Pipeline
	now      time.Time
	hosts    []Host      // name order
	cands    []Candidate // parallel to hosts
	passing  []int32     // indices of the candidates that passed the static filters
	risky    []int32     // the passing ones with a predicted breach or in warning (sorted)
	hashes   []uint64    // fnv64 of each name, for seeded tie-breaks
	byName   map[string]int32
	features map[string]int // feature name → bit
	// featSets are the distinct feature sets of the hosts (Candidate.feat indexes it): a
	// constraint is matched against each once per decision, not against each host.
	featSets []featureSet

	rackNames []string
	rackCap   []float32 // +Inf = none
	rackUse   []float32 // Σ watts of the rack's hosts
	// minHead is the least power headroom (cap − use) of a passing host with a cap, +Inf when
	// none has one: a vnode drawing no more than that fits under every host cap.
	minHead float32

	invalid       map[int32]string // hosts whose data makes no sense, and what is wrong
	staticDropped []int            // per static filter: hosts it dropped
	ranges        []rawRange       // per pipeline scorer: raw range over passing hosts (static scorers only)
	warnings      []string
	scratch       sync.Pool // *scratch, per-decision buffers
}

type rawRange struct{ lo, hi float64 }

var inf32 = float32(math.Inf(1))

// reciprocal is 1/x, 0 for x = 0 (a capacity the host does not report).
func reciprocal(x float32) float64 {
	if x == 0 || math.IsInf(float64(x), 0) {
		return 0
	}
	return 1 / float64(x)
}

// inverse holds a host's reciprocal capacities (0 = none), so that scorers multiply instead of
// divide.
type inverse struct{ cpu, mem, power float64 }

// Snapshot prepares hosts for Decide at time now. Hosts whose data makes no sense (negative
// sizes, unknown state or health, repeated names) are kept and dropped with ReasonInvalid; the
// error is for a snapshot that cannot be built at all (too many distinct features).
func (p *Pipeline) Snapshot(hosts []Host, now time.Time) (*Snapshot, error) {
	s := &Snapshot{p: p, now: now, byName: make(map[string]int32, len(hosts)), features: map[string]int{}, invalid: map[int32]string{}}
	s.hosts = append([]Host(nil), hosts...)
	sort.SliceStable(s.hosts, func(i, j int) bool { return s.hosts[i].Name < s.hosts[j].Name })
	rackIdx := map[string]int32{}
	s.rackNames, s.rackCap = []string{""}, []float32{inf32} // rack 0: hosts in no capped rack
	for _, r := range p.cfg.Racks {
		limit := float32(r.CapWatts)
		if limit == 0 {
			limit = inf32
		}
		rackIdx[r.Name] = int32(len(s.rackNames))
		s.rackNames = append(s.rackNames, r.Name)
		s.rackCap = append(s.rackCap, limit)
	}
	s.rackUse = make([]float32, len(s.rackNames))
	s.cands = make([]Candidate, len(s.hosts))
	s.hashes = make([]uint64, len(s.hosts))
	setIdx := map[featureSet]int32{}
	for i := range s.hosts {
		h := &s.hosts[i]
		c := &s.cands[i]
		*c = Candidate{H: h, idx: int32(i), static: -1}
		bad := invalidHost(h)
		if _, dup := s.byName[h.Name]; dup && bad == "" {
			bad = "repeated host name"
		} else if !dup {
			s.byName[h.Name] = int32(i)
		}
		if bad != "" {
			s.invalid[int32(i)] = bad
		}
		s.hashes[i] = fnv64(h.Name)
		var fs featureSet
		for _, f := range h.Features {
			bit, ok := s.features[f]
			if !ok {
				if len(s.features) == maxFeatures {
					return nil, fmt.Errorf("host %s: feature %q is beyond the %d distinct features a snapshot holds", h.Name, f, maxFeatures)
				}
				bit = len(s.features)
				s.features[f] = bit
			}
			fs.add(bit)
		}
		set, ok := setIdx[fs]
		if !ok {
			set = int32(len(s.featSets))
			setIdx[fs] = set
			s.featSets = append(s.featSets, fs)
		}
		c.feat = set
		if r, ok := rackIdx[h.Rack]; ok && h.Rack != "" {
			c.rack = r
		}
		s.rackUse[c.rack] += float32(h.PowerWatts)
		c.prepare(&p.cfg)
	}
	q := &Query{s: s}
	s.minHead = inf32
	// static filters, in the pipeline's order: the first that fails drops the host
	s.staticDropped = make([]int, len(p.static))
	for i := range s.cands {
		c := &s.cands[i]
		if _, bad := s.invalid[int32(i)]; bad {
			continue
		}
		for fi, f := range p.static {
			if !f.Feasible(q, c) {
				c.static = int8(fi)
				s.staticDropped[fi]++
				break
			}
		}
		if c.static < 0 {
			s.passing = append(s.passing, int32(i))
			s.minHead = min(s.minHead, c.powerCap-c.powerUse) // +Inf without a cap
			if !c.H.BreachAt.IsZero() || c.H.Health == "warning" {
				s.risky = append(s.risky, int32(i))
				c.risky = true
			}
		}
	}
	// static scorers: the raw range over the passing hosts first (for scorers that normalise
	// against it), then each host's weighted sum
	s.ranges = make([]rawRange, len(p.scorers))
	for si, sc := range p.scorers {
		if _, dyn := sc.(DynamicScorer); dyn {
			continue
		}
		r := rawRange{math.Inf(1), math.Inf(-1)}
		for _, i := range s.passing {
			if raw, ok := sc.Raw(q, &s.cands[i]); ok {
				r.lo, r.hi = math.Min(r.lo, raw), math.Max(r.hi, raw)
			}
		}
		s.ranges[si] = r
	}
	for _, i := range s.passing {
		c := &s.cands[i]
		for si, sc := range p.scorers {
			if _, dyn := sc.(DynamicScorer); !dyn && p.weights[si] > 0 {
				c.staticScore += p.weights[si] * s.normalized(si, q, c)
			}
		}
	}
	return s, nil
}

// Len is the number of hosts in the snapshot.
func (s *Snapshot) Len() int { return len(s.hosts) }

// Now is the time the snapshot's static checks were made against.
func (s *Snapshot) Now() time.Time { return s.now }

// Range is the scorer's raw range over the hosts that passed the static filters (static scorers
// only; lo > hi when no host had a value).
func (s *Snapshot) Range(scorer string) (lo, hi float64) {
	for si, sc := range s.p.scorers {
		if sc.Name() == scorer {
			return s.ranges[si].lo, s.ranges[si].hi
		}
	}
	return math.Inf(1), math.Inf(-1)
}

// normalized is scorer si's normalised value for c, checked to be in [0, 100]; a value outside
// (a bug in the scorer) counts as 0 and is remembered as a warning.
func (s *Snapshot) normalized(si int, q *Query, c *Candidate) float64 {
	raw, known := s.p.scorers[si].Raw(q, c)
	n := s.p.scorers[si].Normalize(q, c, raw, known)
	if n >= 0 && n <= 100 {
		return n
	}
	if len(s.warnings) < 10 {
		s.warnings = append(s.warnings, fmt.Sprintf("scorer %s gave %v for %s, outside [0, 100]: counted as 0", s.p.scorers[si].Name(), n, c.H.Name))
	}
	return 0
}

// Assume records that req was placed on host, so the next decisions on this snapshot see its
// CPUs, memory and watts taken (like the Kubernetes scheduler's assumed pods). Static scores are
// not recomputed; the next snapshot brings fresh KPIs.
func (s *Snapshot) Assume(host string, req Request) error {
	i, ok := s.byName[host]
	if !ok {
		return fmt.Errorf("assume %s on %s: no such host in the snapshot", req.VNode, host)
	}
	c := &s.cands[i]
	w := float32(s.p.watts(&req))
	c.cpuAlloc += float32(req.CPUs)
	c.memAlloc += float32(req.MemoryMiB)
	c.powerUse += w
	if c.static < 0 {
		s.minHead = min(s.minHead, c.powerCap-c.powerUse)
	}
	s.rackUse[c.rack] += w
	return nil
}

// prepare fills the hot-path fields from the host.
func (c *Candidate) prepare(cfg *Config) {
	h := c.H
	cpuOC, memOC := h.CPUOvercommit, h.MemOvercommit
	if cpuOC <= 0 {
		cpuOC = cfg.CPUOvercommit
	}
	if memOC <= 0 {
		memOC = cfg.MemOvercommit
	}
	c.cpuCap = float32(float64(h.CPUs) * cpuOC)
	c.cpuAlloc = float32(h.AllocCPUs)
	c.memAlloc = float32(h.AllocMemoryMiB)
	switch {
	case h.MemoryMiB > 0:
		c.memCap = float32(float64(h.MemoryMiB) * memOC)
	case h.FreeMemoryMiB >= 0: // capacity unknown, libvirt's free memory is all we have
		c.memCap = c.memAlloc + float32(h.FreeMemoryMiB)
	}
	c.powerCap = float32(h.PowerCapWatts)
	if c.powerCap == 0 {
		c.powerCap = inf32
	}
	c.powerUse = float32(h.PowerWatts)
	c.inv = inverse{reciprocal(c.cpuCap), reciprocal(c.memCap), reciprocal(c.powerCap)}
}

// invalidHost says what is wrong with a host's data, "" when nothing is.
func invalidHost(h *Host) string {
	switch {
	case h.Name == "":
		return "empty host name"
	case h.CPUs < 0 || h.MemoryMiB < 0 || h.AllocCPUs < 0 || h.AllocMemoryMiB < 0:
		return fmt.Sprintf("negative size (cpus %d, memory %d MiB, allocated %d cpus %d MiB)", h.CPUs, h.MemoryMiB, h.AllocCPUs, h.AllocMemoryMiB)
	case h.CPUOvercommit < 0 || h.MemOvercommit < 0:
		return fmt.Sprintf("negative overcommit (cpu %v, memory %v)", h.CPUOvercommit, h.MemOvercommit)
	case bad(h.Load1) || bad(h.CPUBusy) || bad(h.PredictedLoad) || bad(h.PowerWatts) || bad(h.PowerCapWatts) ||
		bad(h.TempWarnC) || bad(h.TempCritC) || math.IsNaN(h.TempC) || math.IsInf(h.TempC, 0):
		return "a KPI is negative, NaN or infinite"
	case h.RecentFailures < 0 || h.RecentMigrations < 0:
		return "negative failure or migration count"
	}
	switch h.State {
	case "", "active", "draining", "drained", "maintenance", "down":
	default:
		return fmt.Sprintf("unknown state %q (want active, draining, drained, maintenance or down)", h.State)
	}
	switch h.Health {
	case "", "unknown", "ok", "warning", "critical":
	default:
		return fmt.Sprintf("unknown health %q (want ok, warning, critical or unknown)", h.Health)
	}
	return ""
}

func bad(v float64) bool { return v < 0 || math.IsNaN(v) || math.IsInf(v, 0) }

func fnv64(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

// splitmix64 scrambles x; with the seed mixed in, sorting hosts by it is a seeded shuffle.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// scratch holds one decision's per-host buffers, reused through the snapshot's pool so that the
// hot path allocates nothing per host.
type scratch struct {
	in    []int32   // candidates still in the running
	total []float64 // their weighted sums, parallel to in
}

func (s *Snapshot) getScratch() *scratch {
	if sc, ok := s.scratch.Get().(*scratch); ok {
		return sc
	}
	return &scratch{in: make([]int32, len(s.passing)), total: make([]float64, len(s.passing))}
}
