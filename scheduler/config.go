package scheduler

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Config is the placement pipeline's configuration. Zero fields take the defaults below.
type Config struct {
	Policy        string             // balanced (default), pack, energy, thermal
	Weights       map[string]float64 // per scorer name, overriding the policy's table; 0 turns a scorer off
	CPUOvercommit float64            // vCPUs allowed per host CPU (default 1)
	MemOvercommit float64            // memory allowed per MiB of host memory (default 1)
	StaleAfter    time.Duration      // KPIs older than this drop a host (default 2m)
	FailureWindow time.Duration      // how long a failure or migration weighs on a host (default 1h)
	WattsPerCPU   float64            // estimated draw per vCPU of a new vnode (default 10 W)
	Racks         []Rack             // rack power caps
	Seed          int64              // tie-break seed, recorded in each Decision; 0 = ties by host name
}

// Rack is a row of the rack table.
type Rack struct {
	Name     string
	CapWatts float64 // 0 = no cap
}

// Defaults for zero Config fields.
const (
	DefaultPolicy        = "balanced"
	DefaultStaleAfter    = 2 * time.Minute
	DefaultFailureWindow = time.Hour
	DefaultWattsPerCPU   = 10.0
)

// Scorer names, the keys of Config.Weights and of the policy tables.
const (
	ScoreLoad     = "load"
	ScorePower    = "power"
	ScoreEnergy   = "energy"
	ScoreThermal  = "thermal"
	ScoreBinPack  = "binpack"
	ScorePenalty  = "penalty"
	ScoreAffinity = "affinity"
)

// policy is a named weight table plus the direction of the bin-packing and affinity scorers.
type policy struct {
	pack    bool // binpack and affinity prefer full hosts / the job's hosts
	weights map[string]float64
}

// Policies are the named weight tables:
//
//	          load power energy thermal binpack penalty affinity  packs?
//	balanced     3     1      1       2       1       1        1  spread
//	pack         1     1      1       1       4       1        2  pack
//	energy       1     2      4       1       2       1        1  pack
//	thermal      1     1      0       4       1       1        1  spread
var policies = map[string]policy{
	"balanced": {false, map[string]float64{ScoreLoad: 3, ScorePower: 1, ScoreEnergy: 1, ScoreThermal: 2, ScoreBinPack: 1, ScorePenalty: 1, ScoreAffinity: 1}},
	"pack":     {true, map[string]float64{ScoreLoad: 1, ScorePower: 1, ScoreEnergy: 1, ScoreThermal: 1, ScoreBinPack: 4, ScorePenalty: 1, ScoreAffinity: 2}},
	"energy":   {true, map[string]float64{ScoreLoad: 1, ScorePower: 2, ScoreEnergy: 4, ScoreThermal: 1, ScoreBinPack: 2, ScorePenalty: 1, ScoreAffinity: 1}},
	"thermal":  {false, map[string]float64{ScoreLoad: 1, ScorePower: 1, ScoreEnergy: 0, ScoreThermal: 4, ScoreBinPack: 1, ScorePenalty: 1, ScoreAffinity: 1}},
}

// PolicyNames lists the named policies.
func PolicyNames() []string {
	names := make([]string, 0, len(policies))
	for n := range policies {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// withDefaults checks cfg and fills in the defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Policy == "" {
		cfg.Policy = DefaultPolicy
	}
	if _, ok := policies[cfg.Policy]; !ok {
		return cfg, fmt.Errorf("unknown placement policy %q (want one of %s)", cfg.Policy, strings.Join(PolicyNames(), ", "))
	}
	for name, w := range cfg.Weights {
		if _, ok := policies[DefaultPolicy].weights[name]; !ok {
			return cfg, fmt.Errorf("weight for unknown scorer %q (scorers: %s)", name, strings.Join(scorerNames(), ", "))
		}
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return cfg, fmt.Errorf("weight of scorer %q is %v: want a finite number ≥ 0", name, w)
		}
	}
	for _, f := range []struct {
		name string
		v    *float64
		def  float64
	}{{"cpu overcommit", &cfg.CPUOvercommit, 1}, {"memory overcommit", &cfg.MemOvercommit, 1}, {"watts per cpu", &cfg.WattsPerCPU, DefaultWattsPerCPU}} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 || math.IsNaN(*f.v) || math.IsInf(*f.v, 0) {
			return cfg, fmt.Errorf("%s is %v: want a finite number > 0", f.name, *f.v)
		}
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = DefaultStaleAfter
	}
	if cfg.FailureWindow == 0 {
		cfg.FailureWindow = DefaultFailureWindow
	}
	if cfg.StaleAfter < 0 || cfg.FailureWindow < 0 {
		return cfg, fmt.Errorf("stale-after %v and failure window %v must not be negative", cfg.StaleAfter, cfg.FailureWindow)
	}
	seen := map[string]bool{}
	for i, r := range cfg.Racks {
		if r.Name == "" || seen[r.Name] {
			return cfg, fmt.Errorf("rack table row %d: empty or repeated rack name %q", i+1, r.Name)
		}
		if r.CapWatts < 0 || math.IsNaN(r.CapWatts) || math.IsInf(r.CapWatts, 0) {
			return cfg, fmt.Errorf("rack %q: power cap %v W: want a finite number ≥ 0", r.Name, r.CapWatts)
		}
		seen[r.Name] = true
	}
	return cfg, nil
}

// weightsFor is the policy's table with cfg's overrides applied.
func (cfg Config) weightsFor() map[string]float64 {
	w := map[string]float64{}
	for k, v := range policies[cfg.Policy].weights {
		w[k] = v
	}
	for k, v := range cfg.Weights {
		w[k] = v
	}
	return w
}

func scorerNames() []string {
	names := make([]string, 0, len(policies[DefaultPolicy].weights))
	for n := range policies[DefaultPolicy].weights {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
