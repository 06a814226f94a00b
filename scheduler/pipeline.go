package scheduler

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Pipeline places vnodes: filter → score → normalise → select. It implements Placer.
type Pipeline struct {
	cfg     Config
	pol     policy
	static  []Filter        // run once per snapshot
	dynamic []DynamicFilter // run per decision
	scorers []Scorer
	weights []float64 // parallel to scorers, from the policy and Config.Weights
	// Clock gives the time of a decision whose Request.Now is zero (default time.Now).
	Clock func() time.Time
}

var _ Placer = (*Pipeline)(nil)

// NewPipeline builds the pipeline cfg describes. This is the one place its stages are put in
// order.
func NewPipeline(cfg Config) (*Pipeline, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg, pol: policies[cfg.Policy], Clock: time.Now}
	// Filters, cheap checks first. The static ones look at the host alone and run when a
	// snapshot is built; an invalid host never reaches them.
	p.static = []Filter{
		ReachableFilter{}, // libvirt answered
		StateFilter{},     // active, not draining or in maintenance
		StaleFilter{},     // KPIs fresh enough to trust the rest
		HealthFilter{},    // not critical
	}
	// The dynamic ones depend on the request and run per decision (see filter), cheapest first:
	// two float compares, then a time compare for the few risky hosts, then table lookups, then
	// the interned feature set, then the job's hosts. The keys are their positions, which filter
	// follows.
	p.dynamic = []DynamicFilter{
		fCPU:          CPUFilter{},          // vCPUs fit, overcommit included
		fMemory:       MemoryFilter{},       // memory fits, overcommit included
		fForecast:     ForecastFilter{},     // no predicted breach before the job ends
		fPower:        PowerFilter{},        // host power cap
		fRackPower:    RackPowerFilter{},    // rack power cap
		fFeatures:     FeatureFilter{},      // Slurm constraint
		fAntiAffinity: AntiAffinityFilter{}, // spread hint
	}
	// Scorers, each in [0, 100], weighted by the policy; the dynamic ones (power, binpack,
	// affinity) are added to each host's static sum in this order.
	p.scorers = []Scorer{
		sLoad:     LoadScorer{},
		sPower:    PowerScorer{},
		sEnergy:   EnergyScorer{},
		sThermal:  ThermalScorer{},
		sBinPack:  BinPackScorer{},
		sPenalty:  PenaltyScorer{},
		sAffinity: AffinityScorer{},
	}
	w := cfg.weightsFor()
	for _, s := range p.scorers {
		p.weights = append(p.weights, w[s.Name()])
	}
	return p, nil
}

// Policy is the name of the pipeline's policy.
func (p *Pipeline) Policy() string { return p.cfg.Policy }

// Config is the pipeline's configuration with defaults filled in.
func (p *Pipeline) Config() Config { return p.cfg }

// Place implements Placer: it prepares a snapshot of hosts at the request's time and decides with
// explain traces (every host's verdict). For many decisions on one set of hosts, build a Snapshot
// once and call Decide.
func (p *Pipeline) Place(req Request, hosts []Host) Decision {
	now := req.Now
	if now.IsZero() {
		now = p.Clock()
	}
	s, err := p.Snapshot(hosts, now)
	if err != nil {
		return Decision{VNode: req.VNode, JobID: req.JobID, Policy: p.cfg.Policy, Seed: p.cfg.Seed, At: now, Hosts: len(hosts),
			Reason: "no placement: " + err.Error(), Verdicts: []Verdict{}}
	}
	return p.Decide(req, s, true)
}

// Query is a request prepared for one decision on one snapshot.
type Query struct {
	s        *Snapshot
	req      *Request
	cpus     float32
	mem      float32
	watts    float32 // estimated draw of the vnode
	deadline int64   // unix ns; a breach predicted before it drops a host
	cons     constraint
	featOK   []bool  // per snapshot feature set (Candidate.feat): does it match cons
	jobIdx   []int32 // snapshot indices of the job's hosts, sorted, one per vnode
	pack     bool    // binpack and affinity prefer full hosts / the job's hosts
}

// jobCount is how many of the job's vnodes run on c.
func (q *Query) jobCount(c *Candidate) int {
	j := q.jobIdx
	if len(j) == 0 || c.idx < j[0] || c.idx > j[len(j)-1] {
		return 0
	}
	i := sort.Search(len(j), func(k int) bool { return j[k] >= c.idx })
	n := 0
	for ; i < len(j) && j[i] == c.idx; i++ {
		n++
	}
	return n
}

func (p *Pipeline) watts(req *Request) float64 {
	if req.Watts > 0 {
		return req.Watts
	}
	return p.cfg.WattsPerCPU * float64(req.CPUs)
}

// prepare checks the request against the snapshot and compiles it. A request that cannot be
// placed anywhere (bad size, contradictory hints, unknown feature) gives a non-empty reason.
func (p *Pipeline) prepare(req *Request, s *Snapshot) (*Query, string) {
	switch {
	case req.Hints.Spread && req.Hints.Pack:
		return nil, "contradictory hints: spread and pack"
	case req.CPUs <= 0 || req.MemoryMiB <= 0:
		return nil, fmt.Sprintf("bad request: %d CPUs and %d MiB (both must be > 0)", req.CPUs, req.MemoryMiB)
	case req.TimeLimit < 0 || req.Watts < 0 || math.IsNaN(req.Watts) || math.IsInf(req.Watts, 0):
		return nil, fmt.Sprintf("bad request: time limit %v, watts %v (must not be negative)", req.TimeLimit, req.Watts)
	}
	cons, err := parseConstraint(req.Constraint, s.features)
	if err != nil {
		return nil, err.Error()
	}
	q := &Query{s: s, req: req, cpus: float32(req.CPUs), mem: float32(req.MemoryMiB), watts: float32(p.watts(req)),
		deadline: math.MaxInt64, cons: cons, pack: p.pol.pack || req.Hints.Pack}
	if len(cons) > 0 {
		q.featOK = make([]bool, len(s.featSets))
		for k := range s.featSets {
			q.featOK[k] = cons.match(&s.featSets[k])
		}
	}
	if req.TimeLimit > 0 {
		q.deadline = s.now.Add(req.TimeLimit).UnixNano()
	}
	for _, h := range req.JobHosts {
		if i, ok := s.byName[h]; ok {
			q.jobIdx = append(q.jobIdx, i)
		}
	}
	sort.Slice(q.jobIdx, func(a, b int) bool { return q.jobIdx[a] < q.jobIdx[b] })
	return q, ""
}

// weightsFor returns this decision's weights: the pipeline's, except that the pack hint lifts the
// affinity scorer above all the others together (2 × their sum), so a feasible host already
// running the job's vnodes always wins.
func (p *Pipeline) weightsFor(req *Request) []float64 {
	if !req.Hints.Pack {
		return p.weights
	}
	w := append([]float64(nil), p.weights...)
	others := 0.0
	for si := range p.scorers {
		if si != sAffinity {
			others += w[si]
		}
	}
	w[sAffinity] = 2*others + 1
	return w
}

// Decide places req on the snapshot's hosts. With explain set, the decision carries a verdict for
// every host (which filter dropped it, or each scorer's raw and normalised value); without, only
// the chosen host's, and the hot path neither allocates nor formats per host.
func (p *Pipeline) Decide(req Request, s *Snapshot, explain bool) Decision {
	d := Decision{VNode: req.VNode, JobID: req.JobID, Policy: p.cfg.Policy, Seed: p.cfg.Seed, At: s.now, Hosts: len(s.hosts), Verdicts: []Verdict{}}
	// 1. the request itself: contradictory hints, bad sizes, unknown features mean no host at all
	q, bad := p.prepare(&req, s)
	if bad != "" {
		d.Reason = "no placement: " + bad
		return d
	}
	weights := p.weightsFor(&req)
	pl := pass{best: -1}
	d.Weights = make([]Weight, 0, len(p.scorers))
	for si, sc := range p.scorers {
		pl.sumW += weights[si]
		d.Weights = append(d.Weights, Weight{sc.Name(), weights[si]})
	}
	if pl.sumW == 0 {
		pl.sumW = 1 // every weight off: all totals 0, ties decide
	}
	// the dynamic scorers that count, with their weights; one that gives every host the same
	// value adds to offset instead
	pl.w[sPower], pl.w[sBinPack] = weights[sPower], weights[sBinPack]
	if w := weights[sAffinity]; w > 0 {
		if v, same := (AffinityScorer{}).uniform(q); same && v >= 0 && v <= 100 {
			pl.offset += w * v
		} else {
			pl.w[sAffinity] = w
		}
	}
	// the dynamic filters that can drop a host for this request
	var filters []DynamicFilter
	for fi, f := range p.dynamic {
		if pl.on[fi] = f.Applies(q); pl.on[fi] {
			filters = append(filters, f)
		}
	}
	var totals []float64
	if explain {
		totals = make([]float64, len(s.cands))
	}
	sc := s.getScratch()
	defer s.scratch.Put(sc)

	// 2. filter: the static filters ran when the snapshot was built; the dynamic ones that apply
	// run here, cheap checks first (see NewPipeline and filter)
	in := filter(q, &pl, sc.in)

	// 3. score and normalise: the static scorers' weighted sum was made with the snapshot; each
	// dynamic scorer gives [0, 100], checked here, weighted and added (see score)
	tot := sc.total[:len(in)]
	p.score(q, &pl, in, tot, &d.Warnings)

	// 4. select: the highest total; on a tie the lowest seeded key (a seeded shuffle), or with
	// seed 0 the first name (hosts are in name order)
	p.selectBest(q, &pl, in, tot)
	if explain {
		for k, i := range in {
			totals[i] = (tot[k] + pl.offset) / pl.sumW
		}
	}
	d.Feasible = pl.feasible
	best, bestTotal := pl.best, (pl.bestSum+pl.offset)/pl.sumW

	// 3. what was dropped where, then the verdicts and the reason
	d.Dropped = map[string]int{}
	for fi, n := range s.staticDropped {
		if n > 0 {
			d.Dropped[p.static[fi].Reason()] += n
		}
	}
	invalid := len(s.hosts) - len(s.passing) - sum(s.staticDropped)
	if invalid > 0 {
		d.Dropped[ReasonInvalid] = invalid
	}
	for fi, n := range pl.dropped {
		if n > 0 {
			d.Dropped[p.dynamic[fi].Reason()] += n
		}
	}
	if len(d.Dropped) == 0 {
		d.Dropped = nil // as JSON gives it back
	}
	d.Warnings = append(d.Warnings, s.warnings...)
	if explain {
		// one backing array for every verdict's scores: two allocations, not one per host
		arena := make([]Score, 0, d.Feasible*len(p.scorers))
		d.Verdicts = make([]Verdict, 0, len(s.cands))
		for i := range s.cands {
			d.Verdicts = append(d.Verdicts, p.verdict(q, filters, weights, &s.cands[i], totals[i], &arena))
		}
	} else if best >= 0 {
		d.Verdicts = append(d.Verdicts, p.verdict(q, filters, weights, &s.cands[best], bestTotal, nil))
	}
	if best < 0 {
		d.Reason = "no hypervisor can take it: " + whyNowhere(&d)
		return d
	}
	d.Host = s.hosts[best].Name
	chosen := &d.Verdicts[0]
	if explain {
		chosen = &d.Verdicts[best] // one verdict per host, in snapshot order
	}
	d.Reason = fmt.Sprintf("best of %d feasible (score %.1f; %s)", d.Feasible, bestTotal, topScores(chosen))
	return d
}

// tieEpsilon is how close two totals must be to count as a tie.
const tieEpsilon = 1e-9

func appendWarning(ws []string, w string) []string {
	if len(ws) < 10 {
		ws = append(ws, w)
	}
	return ws
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// verdict explains one host: the filter that dropped it, or every scorer's part of its total.
// It re-runs the filters and scorers; only explain paths call it.
func (p *Pipeline) verdict(q *Query, filters []DynamicFilter, weights []float64, c *Candidate, total float64, arena *[]Score) Verdict {
	v := Verdict{Host: c.H.Name}
	if bad, ok := q.s.invalid[c.idx]; ok {
		v.Reason, v.Detail = ReasonInvalid, bad
		return v
	}
	if c.static >= 0 {
		f := p.static[c.static]
		v.Filter, v.Reason, v.Detail = f.Name(), f.Reason(), f.Explain(q, c)
		return v
	}
	for _, f := range filters {
		if !f.Feasible(q, c) {
			v.Filter, v.Reason, v.Detail = f.Name(), f.Reason(), f.Explain(q, c)
			return v
		}
	}
	v.Feasible, v.Score = true, total
	var scores []Score
	if arena != nil { // append into the arena's spare capacity
		scores = (*arena)[len(*arena):len(*arena)]
	}
	for si, sc := range p.scorers {
		raw, known := sc.Raw(q, c)
		n := sc.Normalize(q, c, raw, known)
		if !(n >= 0 && n <= 100) {
			n = 0
		}
		scores = append(scores, Score{Scorer: sc.Name(), Raw: finite(raw), Normalized: n, Weight: weights[si], Weighted: weights[si] * n})
	}
	if arena != nil && len(*arena)+len(scores) <= cap(*arena) {
		*arena = (*arena)[:len(*arena)+len(scores)]
	}
	v.Scores = scores[:len(scores):len(scores)]
	return v
}

// finite keeps JSON encodable: ±Inf and NaN become 0.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// topScores names a verdict's three strongest weighted scores, for the decision's reason.
func topScores(v *Verdict) string {
	top := [3]int{-1, -1, -1}
	for k, s := range v.Scores {
		if s.Weight == 0 {
			continue
		}
		for slot := range top { // insertion into the three best, earlier scorers first on ties
			if top[slot] < 0 || s.Weighted > v.Scores[top[slot]].Weighted {
				copy(top[slot+1:], top[slot:len(top)-1])
				top[slot] = k
				break
			}
		}
	}
	var b strings.Builder
	for slot, k := range top {
		if k < 0 {
			break
		}
		if slot > 0 {
			b.WriteString(", ")
		}
		s := v.Scores[k]
		b.WriteString(s.Scorer + " " + strconv.FormatFloat(s.Normalized, 'f', 0, 64) + "×" + strconv.FormatFloat(s.Weight, 'g', -1, 64))
	}
	return b.String()
}

// summarize says why no host fits: the count per reason, and with verdicts the first hosts' own
// reasons.
func whyNowhere(d *Decision) string {
	if d.Hosts == 0 {
		return "no hypervisors are configured"
	}
	reasons := make([]string, 0, len(d.Dropped))
	for r := range d.Dropped {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(a, b int) bool {
		if d.Dropped[reasons[a]] != d.Dropped[reasons[b]] {
			return d.Dropped[reasons[a]] > d.Dropped[reasons[b]]
		}
		return reasons[a] < reasons[b]
	})
	var b strings.Builder
	for i, r := range reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", d.Dropped[r], r)
	}
	if len(d.Verdicts) > 0 {
		b.WriteString(" (")
		for i, v := range d.Verdicts {
			if i == maxSummarized {
				fmt.Fprintf(&b, "; … %d more", len(d.Verdicts)-i)
				break
			}
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %s (%s)", v.Host, v.Reason, v.Detail)
		}
		b.WriteString(")")
	}
	return b.String()
}

// maxSummarized bounds how many hosts a no-placement reason names.
const maxSummarized = 8
