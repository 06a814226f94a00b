package scheduler

import (
	"math"
)

// Scorer says how good a feasible host is (Nomad's RankIterator, the Kubernetes Score and
// NormalizeScore plugins). Raw is in the scorer's own unit (load per CPU, watts, degrees);
// Normalize maps it onto the one scale every scorer shares, [0, 100], higher is better. The
// pipeline checks the range, multiplies by the configured weight and sums. A plain Scorer depends
// only on the host and the snapshot: it runs once, when the snapshot is built.
type Scorer interface {
	Name() string
	// Raw is c's value in the scorer's unit; known is false when the host lacks the data.
	Raw(q *Query, c *Candidate) (raw float64, known bool)
	// Normalize maps raw into [0, 100]; the formula and its clamp are in each scorer's doc.
	Normalize(q *Query, c *Candidate, raw float64, known bool) float64
}

// DynamicScorer depends on the request: it runs per decision, on every feasible host (see
// score).
type DynamicScorer interface {
	Scorer
	// Score is Normalize(Raw(c)), the pass's hot path: small enough to inline, never allocating.
	Score(q *Query, c *Candidate) float64
}

var (
	_ Scorer        = LoadScorer{}
	_ DynamicScorer = PowerScorer{}
	_ Scorer        = EnergyScorer{}
	_ Scorer        = ThermalScorer{}
	_ DynamicScorer = BinPackScorer{}
	_ Scorer        = PenaltyScorer{}
	_ DynamicScorer = AffinityScorer{}
)

// neutral is the score of a host that lacks a scorer's data: neither good nor bad.
const neutral = 50

// clamp01 clamps x into [0, 1]; NaN passes through for the combiner's range check to catch.
func clamp01(x float64) float64 {
	if x < 0 {
		return 0
	}
	if x > 1 {
		return 1
	}
	return x
}

// LoadScorer prefers idle hosts, now and as predicted.
//
//	raw   = max(Load1/CPUs, PredictedLoad/CPUs, CPUBusy)   (load per CPU, 1 = saturated)
//	score = 100 × clamp(1 − raw, 0, 1)
//
// A host with no CPU count scores 0.
type LoadScorer struct{}

func (LoadScorer) Name() string { return ScoreLoad }
func (LoadScorer) Raw(_ *Query, c *Candidate) (float64, bool) {
	h := c.H
	if h.CPUs <= 0 {
		return 1, false
	}
	n := float64(h.CPUs)
	return math.Max(math.Max(h.Load1/n, h.PredictedLoad/n), h.CPUBusy), true
}
func (LoadScorer) Normalize(_ *Query, _ *Candidate, raw float64, known bool) float64 {
	if !known {
		return 0
	}
	return 100 * clamp01(1-raw)
}

// PowerScorer prefers hosts with power headroom under their cap after the vnode is added.
//
//	raw   = (cap − watts now − watts of the vnode) / cap        (fraction of the cap left)
//	score = 100 × clamp(raw, 0, 1); a host without a cap scores 100 (raw reported as 1)
type PowerScorer struct{}

func (PowerScorer) Name() string { return ScorePower }
func (PowerScorer) Raw(q *Query, c *Candidate) (float64, bool) {
	inv := c.inv.power
	if inv == 0 { // no cap
		return 1, true
	}
	return (float64(c.powerCap) - float64(c.powerUse) - float64(q.watts)) * inv, true
}
func (PowerScorer) Normalize(_ *Query, _ *Candidate, raw float64, _ bool) float64 {
	return 100 * clamp01(raw)
}

// EnergyScorer prefers hosts that spend few watts per allocated core: a host already running
// vnodes efficiently beats one that burns idle power for nothing.
//
//	raw   = PowerWatts / max(AllocCPUs, 1)                      (W per allocated core)
//	score = 100 × (hi − raw) / (hi − lo), lo and hi the raw range over the snapshot's hosts that
//	        passed the static filters; 100 when hi = lo; 50 for a host without a power reading
type EnergyScorer struct{}

func (EnergyScorer) Name() string { return ScoreEnergy }
func (EnergyScorer) Raw(_ *Query, c *Candidate) (float64, bool) {
	if c.H.PowerWatts <= 0 {
		return 0, false
	}
	return c.H.PowerWatts / math.Max(float64(c.H.AllocCPUs), 1), true
}
func (EnergyScorer) Normalize(q *Query, _ *Candidate, raw float64, known bool) float64 {
	if !known {
		return neutral
	}
	lo, hi := q.s.Range(ScoreEnergy)
	if hi <= lo {
		return 100
	}
	return 100 * clamp01((hi-raw)/(hi-lo))
}

// ThermalScorer prefers hosts far from their temperature bounds (W warning, C critical).
//
//	raw   = W − TempC                                          (degrees below warning)
//	score = 50 + 50 × min(1, raw / 20)     below W: full marks 20 °C under warning
//	      = 50 × (C − TempC) / (C − W)     between W and C
//	      = 0                              at or above C
//	      = 50                             no reading or no sane bounds (0 < W < C)
type ThermalScorer struct{}

// thermalSpan is how far below warning a host must be for full marks.
const thermalSpan = 20.0

func (ThermalScorer) Name() string { return ScoreThermal }
func (ThermalScorer) Raw(_ *Query, c *Candidate) (float64, bool) {
	h := c.H
	if h.TempC == 0 || h.TempWarnC <= 0 || h.TempCritC <= h.TempWarnC {
		return 0, false
	}
	return h.TempWarnC - h.TempC, true
}
func (ThermalScorer) Normalize(_ *Query, c *Candidate, raw float64, known bool) float64 {
	if !known {
		return neutral
	}
	w, cr, t := c.H.TempWarnC, c.H.TempCritC, c.H.TempC
	switch {
	case t >= cr:
		return 0
	case t >= w:
		return 50 * (cr - t) / (cr - w)
	default:
		return 50 + 50*math.Min(1, raw/thermalSpan)
	}
}

// BinPackScorer fills hosts (pack) or spreads vnodes over them (spread), by how full the host is
// after placement.
//
//	raw   = max((AllocCPUs + cpus) / CPU capacity, (AllocMemory + memory) / memory capacity)
//	score = 100 × clamp(raw, 0, 1)        pack: pack and energy policies, or the pack hint
//	      = 100 × clamp(1 − raw, 0, 1)    spread: balanced and thermal policies
type BinPackScorer struct{}

func (BinPackScorer) Name() string { return ScoreBinPack }
func (BinPackScorer) Raw(q *Query, c *Candidate) (float64, bool) {
	if c.cpuCap <= 0 || c.memCap <= 0 {
		return 1, false
	}
	inv := &c.inv
	return max((float64(c.cpuAlloc)+float64(q.cpus))*inv.cpu, (float64(c.memAlloc)+float64(q.mem))*inv.mem), true
}
func (BinPackScorer) Normalize(q *Query, _ *Candidate, raw float64, _ bool) float64 {
	if !q.pack {
		raw = 1 - raw
	}
	return 100 * clamp01(raw)
}

// PenaltyScorer keeps vnodes off hosts that failed or moved vnodes recently. Each event weighs
// less as it ages, linearly to nothing over Config.FailureWindow; a failure counts twice.
//
//	decay(t) = clamp(1 − (now − t) / window, 0, 1)   (1 when the time is unknown)
//	raw      = 2 × RecentFailures × decay(LastFailureAt) + RecentMigrations × decay(LastMigrationAt)
//	score    = 100 / (1 + raw)
type PenaltyScorer struct{}

func (PenaltyScorer) Name() string { return ScorePenalty }
func (PenaltyScorer) Raw(q *Query, c *Candidate) (float64, bool) {
	h := c.H
	decay := func(n int, at int64) float64 {
		if n == 0 {
			return 0
		}
		if at == 0 {
			return float64(n)
		}
		return float64(n) * clamp01(1-float64(q.s.now.UnixNano()-at)/float64(q.s.p.cfg.FailureWindow))
	}
	var fAt, mAt int64
	if !h.LastFailureAt.IsZero() {
		fAt = h.LastFailureAt.UnixNano()
	}
	if !h.LastMigrationAt.IsZero() {
		mAt = h.LastMigrationAt.UnixNano()
	}
	return 2*decay(h.RecentFailures, fAt) + decay(h.RecentMigrations, mAt), true
}
func (PenaltyScorer) Normalize(_ *Query, _ *Candidate, raw float64, _ bool) float64 {
	return 100 / (1 + math.Max(0, raw))
}

// AffinityScorer places a job's vnodes together (pack) or apart (spread), by n, the number of the
// job's vnodes already on the host.
//
//	raw   = n
//	score = 100 / (1 + n)         spread: balanced and thermal policies
//	      = 100 if n > 0, else 0  pack: pack and energy policies, or the pack hint (which also
//	                              raises its weight above all others together, see Decide)
type AffinityScorer struct{}

func (AffinityScorer) Name() string { return ScoreAffinity }
func (AffinityScorer) Raw(q *Query, c *Candidate) (float64, bool) {
	return float64(q.jobCount(c)), true
}
func (AffinityScorer) Normalize(q *Query, _ *Candidate, raw float64, _ bool) float64 {
	if q.pack {
		if raw > 0 {
			return 100
		}
		return 0
	}
	return 100 / (1 + raw)
}

// Score implements DynamicScorer.
func (sc PowerScorer) Score(q *Query, c *Candidate) float64 {
	raw, known := sc.Raw(q, c)
	return sc.Normalize(q, c, raw, known)
}

// Score implements DynamicScorer.
func (sc BinPackScorer) Score(q *Query, c *Candidate) float64 {
	raw, known := sc.Raw(q, c)
	return sc.Normalize(q, c, raw, known)
}

// Score implements DynamicScorer. Decide gives every host the value for n = 0 and scores the
// job's few hosts again (see score).
func (sc AffinityScorer) Score(q *Query, c *Candidate) float64 {
	raw, known := sc.Raw(q, c)
	return sc.Normalize(q, c, raw, known)
}

// uniform: without job hosts every host has n = 0.
func (sc AffinityScorer) uniform(q *Query) (float64, bool) {
	return sc.Normalize(q, nil, 0, true), len(q.jobIdx) == 0
}
