package scheduler

import (
	"fmt"
	"math"
	"sort"
)

// Positions of the dynamic filters in Pipeline.dynamic: the order filter runs them in.
const (
	fCPU = iota
	fMemory
	fForecast
	fPower
	fRackPower
	fFeatures
	fAntiAffinity
	numDynamic
)

// Positions of the scorers in Pipeline.scorers. Power, binpack and affinity are the dynamic ones,
// added to each host's static sum in this order.
const (
	sLoad = iota
	sPower
	sEnergy
	sThermal
	sBinPack
	sPenalty
	sAffinity
	numScorers
)

// pass is one decision's hot path: what Decide sets up from the request, and what the passes
// over the hosts found.
type pass struct {
	// in
	on     [numDynamic]bool    // the dynamic filters that apply to the request
	w      [numScorers]float64 // weights of the dynamic scorers scored per host; 0 = not scored
	offset float64             // Σ weight × value of the scorers that give every host one value
	sumW   float64             // Σ weights (> 0)
	// out
	dropped  [numDynamic]int // hosts each dynamic filter dropped
	best     int32           // snapshot index of the chosen host, -1 when none is feasible
	bestSum  float64         // its weighted sum, offset not included
	feasible int
}

// filter is Decide's stage 2: it writes to in, in name order, the hosts that passed the static
// filters and pass every dynamic filter that applies, and counts in pl.dropped, per filter, the
// hosts it dropped (each host is counted by the first filter it fails, in Pipeline.dynamic's
// order).
//
// The filters nearly every request needs (cpu, memory, power) run fused in one pass without a
// branch on their outcome: each gives 0 or 1, the products say how far a host got, every host is
// written to in and its slot kept only if it passed. The forecast filter, which only the few
// risky hosts can fail, then corrects that pass for them; the filters that seldom apply (rack
// power, features, anti-affinity) each sweep what is left. Filters are called on their concrete
// types so that the compiler inlines each (check with go build -gcflags=-m): the loops make no
// calls and allocate nothing.
func filter(q *Query, pl *pass, in []int32) []int32 {
	// the cpu and memory filters apply to every request (their Applies is true); the power
	// filter's verdict is forced to 1 when it does not apply
	offPower := b2i(!pl.on[fPower])
	cands, passing := q.s.cands, q.s.passing
	in = in[:len(passing)]
	n, passCPU, passMem := 0, 0, 0
	for _, i := range passing {
		c := &cands[i]
		a := b2i(CPUFilter{}.Feasible(q, c))
		b := a & b2i(MemoryFilter{}.Feasible(q, c))
		d := b & (b2i(PowerFilter{}.Feasible(q, c)) | offPower)
		passCPU, passMem = passCPU+a, passMem+b
		in[n] = i
		n += d
	}
	in = in[:n]
	pl.dropped[fCPU], pl.dropped[fMemory], pl.dropped[fPower] = len(passing)-passCPU, passCPU-passMem, passMem-n
	if pl.on[fForecast] {
		in = forecast(q, pl, in)
	}
	if pl.on[fRackPower] {
		in = keep(q, in, &pl.dropped[fRackPower], func(c *Candidate) bool { return RackPowerFilter{}.Feasible(q, c) })
	}
	if pl.on[fFeatures] {
		in = keep(q, in, &pl.dropped[fFeatures], func(c *Candidate) bool { return FeatureFilter{}.Feasible(q, c) })
	}
	if pl.on[fAntiAffinity] { // the job's few hosts, sorted: removed, not searched for
		n := len(in)
		in = removeSorted(in, q.jobIdx)
		pl.dropped[fAntiAffinity] = n - len(in)
	}
	return in
}

// forecast runs the forecast filter, which comes between memory and power, after the fused pass
// over those: a risky host that passes cpu and memory but not the forecast is the forecast's,
// whether the power filter then kept it (it leaves in) or dropped it (the count moves from power
// to forecast).
func forecast(q *Query, pl *pass, in []int32) []int32 {
	var drop []int32
	for _, i := range q.s.risky {
		c := &q.s.cands[i]
		if !(CPUFilter{}).Feasible(q, c) || !(MemoryFilter{}).Feasible(q, c) || (ForecastFilter{}).Feasible(q, c) {
			continue
		}
		pl.dropped[fForecast]++
		if pl.on[fPower] && !(PowerFilter{}).Feasible(q, c) {
			pl.dropped[fPower]--
		} else {
			drop = append(drop, i)
		}
	}
	return removeSorted(in, drop)
}

// keep keeps, in place and in order, the hosts of in that pass feasible, and counts the others
// in dropped. Both are small enough for the compiler to inline into the caller, so the loop makes
// no calls.
func keep(q *Query, in []int32, dropped *int, feasible func(*Candidate) bool) []int32 {
	cands, n := q.s.cands, 0
	for _, i := range in {
		in[n] = i
		n += b2i(feasible(&cands[i]))
	}
	*dropped = len(in) - n
	return in[:n]
}

// removeSorted removes from in (sorted, no repeats) the indices in drop (sorted, repeats
// allowed), in place: O(len(drop) × log len(in)) to find them and one pass to close the gaps.
func removeSorted(in, drop []int32) []int32 {
	if len(drop) == 0 {
		return in
	}
	w, r := 0, 0 // write and read positions
	for _, x := range drop {
		k := r + sort.Search(len(in)-r, func(j int) bool { return in[r+j] >= x })
		if k == len(in) || in[k] != x {
			continue
		}
		w += copy(in[w:], in[r:k])
		r = k + 1
	}
	w += copy(in[w:], in[r:])
	return in[:w]
}

// b2i is 1 for true, 0 for false (compiled without a branch).
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// score is Decide's stage 3: tot[k] is the total of the feasible host in[k], its static sum
// plus each dynamic scorer's value, checked in [0, 100] and weighted, added in Pipeline.scorers'
// order (so the sums are bit for bit those of adding scorer by scorer).
//
// The loop calls nothing (the scorers inline; a value out of range counts as 0 and is only
// flagged, outOfRange then says which) and keeps little state, so the compiler keeps it in
// registers. Every host gets the affinity value of a host without the job's vnodes; the job's
// few hosts are then found in in and their totals made again with their own.
func (p *Pipeline) score(q *Query, pl *pass, in []int32, tot []float64, warnings *[]string) {
	cands := q.s.cands
	tot = tot[:len(in)]
	wPower, wBinPack := pl.w[sPower], pl.w[sBinPack]
	aff := pl.w[sAffinity] * AffinityScorer{}.Normalize(q, nil, 0, true) // n = 0
	bad := false
	for k, i := range in {
		c := &cands[i]
		t := c.staticScore
		if wPower > 0 {
			v := PowerScorer{}.Score(q, c)
			if !(v >= 0 && v <= 100) {
				v, bad = 0, true
			}
			t += wPower * v
		}
		if wBinPack > 0 {
			raw, known := BinPackScorer{}.Raw(q, c) // Score itself is over the inlining budget
			v := BinPackScorer{}.Normalize(q, c, raw, known)
			if !(v >= 0 && v <= 100) {
				v, bad = 0, true
			}
			t += wBinPack * v
		}
		if aff > 0 {
			t += aff
		}
		tot[k] = t
	}
	if pl.w[sAffinity] > 0 {
		bad = p.affinity(q, pl, in, tot) || bad
	}
	if bad {
		p.outOfRange(q, pl, in, warnings)
	}
}

// affinity makes again the totals of the job's hosts in in, with the affinity scorer's value for
// their count of the job's vnodes; it reports whether a value was outside [0, 100].
func (p *Pipeline) affinity(q *Query, pl *pass, in []int32, tot []float64) (bad bool) {
	for j := 0; j < len(q.jobIdx); {
		i := q.jobIdx[j]
		n, next := countAt(q.jobIdx, j, i)
		j = next
		k := sort.Search(len(in), func(k int) bool { return in[k] >= i })
		if k == len(in) || in[k] != i {
			continue // dropped
		}
		c := &q.s.cands[i]
		t := c.staticScore
		for _, si := range [...]int{sPower, sBinPack, sAffinity} {
			w := pl.w[si]
			if w <= 0 {
				continue
			}
			var v float64
			switch si {
			case sPower:
				v = PowerScorer{}.Score(q, c)
			case sBinPack:
				v = BinPackScorer{}.Score(q, c)
			default:
				v = AffinityScorer{}.Normalize(q, c, float64(n), true) // Raw is jobCount
			}
			if !(v >= 0 && v <= 100) {
				v, bad = 0, true
			}
			t += w * v
		}
		tot[k] = t
	}
	return bad
}

// selectBest is Decide's stage 4: the feasible host with the highest total, a tie (within
// tieEpsilon) going to the lowest seeded key (a seeded shuffle), or with seed 0 to the first host
// (name order).
func (p *Pipeline) selectBest(q *Query, pl *pass, in []int32, tot []float64) {
	hashes := q.s.hashes
	tot = tot[:len(in)]
	seed, eps := uint64(p.cfg.Seed), tieEpsilon*pl.sumW
	best, bestSum, bestKey := int32(-1), 0.0, uint64(0)
	// (comparing the weighted sums: dividing by Σ weights, which is > 0, keeps the order)
	for k, i := range in {
		t := tot[k]
		switch {
		case best < 0 || t > bestSum+eps:
			best, bestSum = i, t
			if seed != 0 {
				bestKey = splitmix64(seed ^ hashes[i])
			}
		case t >= bestSum-eps && seed != 0:
			if key := splitmix64(seed ^ hashes[i]); key < bestKey {
				best, bestSum, bestKey = i, t, key
			}
		}
	}
	pl.best, pl.bestSum, pl.feasible = best, bestSum, len(in)
}

// outOfRange says, for the warnings, which dynamic scorer gave which host a value outside
// [0, 100] (a bug in the scorer; score counted it as 0).
func (p *Pipeline) outOfRange(q *Query, pl *pass, in []int32, warnings *[]string) {
	for si, sc := range p.scorers {
		ds, ok := sc.(DynamicScorer)
		if !ok || pl.w[si] <= 0 {
			continue
		}
		for _, i := range in {
			c := &q.s.cands[i]
			if v := ds.Score(q, c); !(v >= 0 && v <= 100) {
				*warnings = appendWarning(*warnings, fmt.Sprintf("scorer %s gave %v for %s, outside [0, 100]: counted as 0", sc.Name(), v, c.H.Name))
			}
		}
	}
}

// countAt is how many times i occurs in the sorted list, whose entries before k are all below i,
// and the position past them.
func countAt(list []int32, k int, i int32) (int, int) {
	for k < len(list) && list[k] < i {
		k++
	}
	n := 0
	for k < len(list) && list[k] == i {
		k, n = k+1, n+1
	}
	return n, k
}

// nextAt is list[k], or beyond every index when k is past the end.
func nextAt(list []int32, k int) int32 {
	if k < len(list) {
		return list[k]
	}
	return math.MaxInt32
}
