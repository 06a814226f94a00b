package scheduler

import (
	"fmt"
	"math/rand"
	"time"
)

// Synthetic is a generated cluster for benchmarks and property tests: the same n, seed and time
// always give the same hosts and requests.
type Synthetic struct {
	Hosts []Host
	Racks []Rack
	rng   *rand.Rand
	now   time.Time
}

// syntheticFeatures are the features hosts draw from.
var syntheticFeatures = []string{"ib", "avx512", "nvme", "gpu", "a100", "h100", "bigmem"}

// hostsPerRack is how many hypervisors share a rack (and its power cap).
const hostsPerRack = 40

// NewSynthetic generates n hypervisors at time now from seed: sizes of 32, 64 or 128 CPUs with
// 4 GiB per CPU, 0–90 % allocated, a few features each, loads, power and temperatures, and the
// rarer troubles a real cluster has (about 1 % each: draining, maintenance, stale KPIs, critical
// health, a predicted breach; 0.5 % unreachable; a few recent failures).
func NewSynthetic(n int, seed int64, now time.Time) *Synthetic {
	rng := rand.New(rand.NewSource(seed))
	s := &Synthetic{rng: rng, now: now}
	for r := 0; r*hostsPerRack < n; r++ {
		s.Racks = append(s.Racks, Rack{Name: fmt.Sprintf("r%04d", r), CapWatts: hostsPerRack * 520})
	}
	sizes := []int{32, 64, 128}
	s.Hosts = make([]Host, n)
	for i := range s.Hosts {
		cpus := sizes[rng.Intn(len(sizes))]
		alloc := rng.Intn(cpus * 9 / 10)
		h := Host{
			Name: fmt.Sprintf("hv%06d", i), Rack: fmt.Sprintf("r%04d", i/hostsPerRack), State: "active", Reachable: true,
			CPUs: cpus, MemoryMiB: int64(cpus) * 4096, AllocCPUs: alloc, AllocMemoryMiB: int64(alloc) * 3 * 1024,
			VNodes: alloc / 8, FreeMemoryMiB: -1,
			KPIAt: now.Add(-time.Duration(rng.Intn(60)) * time.Second),
			Load1: float64(alloc) * (0.6 + 0.5*rng.Float64()), CPUBusy: float64(alloc) / float64(cpus) * rng.Float64(),
			PowerWatts: 120 + 3*float64(alloc) + 40*rng.Float64(), PowerCapWatts: 150 + 3.5*float64(cpus),
			TempC: 35 + 40*rng.Float64(), TempWarnC: 80, TempCritC: 95, Health: "ok",
		}
		h.PredictedLoad = h.Load1 * (0.8 + 0.4*rng.Float64())
		for _, f := range syntheticFeatures {
			if rng.Intn(3) == 0 {
				h.Features = append(h.Features, f)
			}
		}
		switch x := rng.Intn(200); {
		case x == 0:
			h.Reachable = false
		case x < 3:
			h.State = "draining"
		case x < 5:
			h.State = "maintenance"
		case x < 7:
			h.KPIAt = now.Add(-time.Hour)
		case x < 9:
			h.Health = "critical"
		case x < 11:
			h.BreachAt = now.Add(time.Duration(1+rng.Intn(48)) * time.Hour)
		case x < 21:
			h.Health = "warning"
		case x < 25:
			h.RecentFailures, h.LastFailureAt = 1+rng.Intn(3), now.Add(-time.Duration(rng.Intn(3600))*time.Second)
		case x < 35:
			h.RecentMigrations, h.LastMigrationAt = 1+rng.Intn(5), now.Add(-time.Duration(rng.Intn(3600))*time.Second)
		}
		s.Hosts[i] = h
	}
	return s
}

// Request draws the next request: 1–16 vCPUs with 2–4 GiB each, a time limit of 1–24 h, now and
// then a feature constraint, other vnodes of the job already placed, or a spread, pack or
// no-migrate hint (never spread and pack together).
func (s *Synthetic) Request(i int) Request {
	rng := s.rng
	cpus := []int{1, 2, 4, 8, 16}[rng.Intn(5)]
	r := Request{VNode: fmt.Sprintf("vn%d", i), JobID: int64(1000 + i/4), CPUs: cpus,
		MemoryMiB: int64(cpus) * int64(2048+1024*rng.Intn(3)), TimeLimit: time.Duration(1+rng.Intn(24)) * time.Hour, Now: s.now}
	switch rng.Intn(8) {
	case 0:
		r.Constraint = "ib"
	case 1:
		r.Constraint = "ib&avx512"
	case 2:
		r.Constraint = "a100|h100"
	}
	for k := rng.Intn(4); k > 0 && len(s.Hosts) > 0; k-- {
		r.JobHosts = append(r.JobHosts, s.Hosts[rng.Intn(len(s.Hosts))].Name)
	}
	switch rng.Intn(10) {
	case 0:
		r.Hints.Spread = true
	case 1:
		r.Hints.Pack = true
	case 2:
		r.Hints.NoMigrate = true
	}
	return r
}
