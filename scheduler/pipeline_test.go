package scheduler

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fresh is a healthy, empty, reachable host with fresh KPIs and nothing else set.
func fresh(name string) Host {
	return Host{Name: name, Reachable: true, State: "active", Health: "ok", KPIAt: t0.Add(-10 * time.Second),
		CPUs: 32, MemoryMiB: 131072}
}

func mustPipeline(t *testing.T, cfg Config) *Pipeline {
	t.Helper()
	p, err := NewPipeline(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func verdictOf(t *testing.T, d Decision, host string) Verdict {
	t.Helper()
	for _, v := range d.Verdicts {
		if v.Host == host {
			return v
		}
	}
	t.Fatalf("no verdict for %s in %+v", host, d)
	return Verdict{}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// TestBalancedByHand works a two-host decision out in full.
func TestBalancedByHand(t *testing.T) {
	hv1 := fresh("hv1")
	hv1.AllocCPUs, hv1.AllocMemoryMiB = 16, 65536
	hv1.Load1, hv1.PredictedLoad, hv1.CPUBusy = 16, 8, 0.4
	hv1.PowerWatts = 300
	hv1.TempC, hv1.TempWarnC, hv1.TempCritC = 60, 80, 95
	hv2 := fresh("hv2")
	hv2.AllocCPUs, hv2.AllocMemoryMiB = 8, 16384
	hv2.Load1, hv2.PredictedLoad, hv2.CPUBusy = 4, 8, 0.1
	hv2.PowerWatts = 200
	hv2.TempC, hv2.TempWarnC, hv2.TempCritC = 78, 80, 95
	hv2.RecentFailures = 1 // time unknown: counts in full
	req := Request{VNode: "vn1", CPUs: 8, MemoryMiB: 16384, Now: t0}

	// balanced: load 3, power 1, energy 1, thermal 2, binpack 1 (spread), penalty 1, affinity 1; Σ 10
	//           hv1                                     hv2
	// load      max(16/32, 8/32, .4) = .5 → 50          max(4/32, 8/32, .1) = .25 → 75
	// power     no cap → 100                            no cap → 100
	// energy    300/16 = 18.75 W/core = lo → 100        200/8 = 25 = hi → 0
	// thermal   80−60 = 20 → 50+50×1 = 100              80−78 = 2 → 50+50×2/20 = 55
	// binpack   max(24/32, 81920/131072) = .75 → 25     max(16/32, 32768/131072) = .5 → 50
	// penalty   0 → 100                                 2×1 = 2 → 100/3 = 33.33
	// affinity  n = 0 → 100                             n = 0 → 100
	// total     (150+100+100+200+25+100+100)/10 = 77.5  (225+100+0+110+50+33.33+100)/10 = 61.83
	cases := []struct {
		policy     string
		want       string
		hv1, hv2   float64
		binpackHv1 float64
	}{
		{"balanced", "hv1", 77.5, 618.3333333333334 / 10, 25},
		// thermal: load 1, power 1, energy 0, thermal 4, binpack 1, penalty 1, affinity 1; Σ 9
		// hv1 (50+100+0+400+25+100+100)/9 = 86.11; hv2 (75+100+0+220+50+33.33+100)/9 = 64.26
		{"thermal", "hv1", 775.0 / 9, 578.3333333333334 / 9, 25},
		// pack: load 1, power 1, energy 1, thermal 1, binpack 4 (pack), penalty 1, affinity 2 (pack: n=0 → 0); Σ 11
		// hv1 (50+100+100+100+4×75+100+0)/11 = 68.18; hv2 (75+100+0+55+4×50+33.33+0)/11 = 42.12
		{"pack", "hv1", 750.0 / 11, 463.3333333333333 / 11, 75},
	}
	for _, tc := range cases {
		t.Run(tc.policy, func(t *testing.T) {
			d := mustPipeline(t, Config{Policy: tc.policy}).Place(req, []Host{hv2, hv1})
			if d.Host != tc.want {
				t.Fatalf("host %q, want %q: %s", d.Host, tc.want, d.Table())
			}
			if v := verdictOf(t, d, "hv1"); !near(v.Score, tc.hv1) {
				t.Errorf("hv1 total %v, want %v\n%s", v.Score, tc.hv1, d.Table())
			}
			if v := verdictOf(t, d, "hv2"); !near(v.Score, tc.hv2) {
				t.Errorf("hv2 total %v, want %v\n%s", v.Score, tc.hv2, d.Table())
			}
			for _, s := range verdictOf(t, d, "hv1").Scores {
				if s.Scorer == ScoreBinPack && !near(s.Normalized, tc.binpackHv1) {
					t.Errorf("hv1 binpack %v, want %v", s.Normalized, tc.binpackHv1)
				}
			}
			if d.Feasible != 2 || len(d.Verdicts) != 2 || d.Verdicts[0].Host != "hv1" {
				t.Errorf("feasible %d, verdicts %+v (want both, in name order)", d.Feasible, d.Verdicts)
			}
		})
	}
}

// TestScorers checks each scorer's raw value and normalisation against its doc formula.
func TestScorers(t *testing.T) {
	p := mustPipeline(t, Config{})
	h := fresh("hv1")
	h.Load1, h.PredictedLoad, h.CPUBusy = 8, 16, 0.3
	h.AllocCPUs, h.AllocMemoryMiB = 16, 16384
	h.PowerWatts, h.PowerCapWatts = 300, 500
	h.TempC, h.TempWarnC, h.TempCritC = 88, 80, 95
	h.RecentFailures, h.LastFailureAt = 1, t0.Add(-30*time.Minute) // decay .5
	h.RecentMigrations = 2                                         // time unknown: decay 1
	other := fresh("hv2")
	other.PowerWatts, other.AllocCPUs = 400, 40 // 10 W/core
	other.CPUs = 64
	s, err := p.Snapshot([]Host{h, other}, t0)
	if err != nil {
		t.Fatal(err)
	}
	q, bad := p.prepare(&Request{CPUs: 8, MemoryMiB: 16384, JobHosts: []string{"hv1", "hv1"}}, s)
	if bad != "" {
		t.Fatal(bad)
	}
	c := &s.cands[0]
	for _, tc := range []struct {
		sc        Scorer
		pack      bool
		raw, norm float64
	}{
		{LoadScorer{}, false, 0.5, 50},              // max(8/32, 16/32, .3) = .5 → 100×(1−.5)
		{PowerScorer{}, false, 0.24, 24},            // (500 − 300 − 10 W × 8)/500 = .24
		{EnergyScorer{}, false, 300.0 / 16, 0},      // 18.75 W/core is the range's top (other: 10) → 0
		{ThermalScorer{}, false, -8, 50 * 7.0 / 15}, // past warning: 50×(95−88)/(95−80)
		{BinPackScorer{}, false, 0.75, 25},          // max((16+8)/32, 32768/131072) = .75; spread 100×.25
		{BinPackScorer{}, true, 0.75, 75},           // pack 100×.75
		{PenaltyScorer{}, false, 3, 25},             // 2×1×.5 + 2×1 = 3 → 100/4
		{AffinityScorer{}, false, 2, 100.0 / 3},     // two of the job's vnodes: spread 100/(1+2)
		{AffinityScorer{}, true, 2, 100},            // pack: any → 100
	} {
		q.pack = tc.pack
		raw, known := tc.sc.Raw(q, c)
		n := tc.sc.Normalize(q, c, raw, known)
		if !near(raw, tc.raw) || !near(n, tc.norm) {
			t.Errorf("%s (pack %v): raw %v → %v, want %v → %v", tc.sc.Name(), tc.pack, raw, n, tc.raw, tc.norm)
		}
	}
	// thermal's other branches: below warning, at critical, no bounds
	for _, tc := range []struct{ temp, warn, crit, want float64 }{
		{70, 80, 95, 75},  // 10 below warning: 50 + 50×10/20
		{40, 80, 95, 100}, // 40 below: capped at full marks
		{95, 80, 95, 0},   // at critical
		{70, 0, 0, 50},    // no bounds: neutral
		{0, 80, 95, 50},   // no reading: neutral
	} {
		hh := fresh("x")
		hh.TempC, hh.TempWarnC, hh.TempCritC = tc.temp, tc.warn, tc.crit
		cc := &Candidate{H: &hh}
		raw, known := ThermalScorer{}.Raw(q, cc)
		if n := (ThermalScorer{}).Normalize(q, cc, raw, known); !near(n, tc.want) {
			t.Errorf("thermal at %v °C (W %v, C %v) = %v, want %v", tc.temp, tc.warn, tc.crit, n, tc.want)
		}
	}
}

// TestFilters drops one host per filter and checks the reason code, filter name and detail.
func TestFilters(t *testing.T) {
	req := Request{VNode: "vn1", JobID: 7, CPUs: 8, MemoryMiB: 16384, TimeLimit: 2 * time.Hour, Now: t0,
		Constraint: "ib&avx512|gpu", JobHosts: []string{"hv-job"}, Hints: Hints{Spread: true}}
	good := fresh("hv-ok")
	good.Features = []string{"gpu", "ib", "avx512"}
	good.Rack = "r1"
	good.PowerWatts = 100
	for _, tc := range []struct {
		name, filter, reason, detail string
		mod                          func(h *Host)
	}{
		{"unreachable", "reachable", ReasonUnreachable, "libvirt", func(h *Host) { h.Reachable = false }},
		{"draining", "state", ReasonNotActive, "draining", func(h *Host) { h.State = "draining" }},
		{"maintenance", "state", ReasonNotActive, "maintenance", func(h *Host) { h.State = "maintenance" }},
		{"no kpis", "stale-kpis", ReasonStaleKPIs, "no KPIs", func(h *Host) { h.KPIAt = time.Time{} }},
		{"old kpis", "stale-kpis", ReasonStaleKPIs, "5m0s old", func(h *Host) { h.KPIAt = t0.Add(-5 * time.Minute) }},
		{"critical", "health", ReasonUnhealthy, "critical", func(h *Host) { h.Health = "critical" }},
		// 32 CPUs × 1, 28 taken: 4 free < 8
		{"cpu", "cpu", ReasonNoCPU, "needs 8 vCPUs, 4 of 32 free", func(h *Host) { h.AllocCPUs = 28 }},
		// 131072 MiB, 122880 taken: 8192 free < 16384
		{"memory", "memory", ReasonNoMemory, "needs 16384 MiB, 8192 of 131072 MiB free", func(h *Host) { h.AllocMemoryMiB = 122880 }},
		{"breach", "forecast", ReasonBreachSoon, "breach predicted in 1h0m0s", func(h *Host) { h.BreachAt = t0.Add(time.Hour) }},
		// 450 W + 8 × 10 W = 530 W > 500 W
		{"power", "power", ReasonPowerCap, "450 W now + 80 W for the vnode > cap 500 W", func(h *Host) { h.PowerWatts, h.PowerCapWatts = 450, 500 }},
		// rack r2 (cap 1000 W) holds this host at 950 W: 950 + 80 > 1000
		{"rack", "rack-power", ReasonRackPowerCap, "rack r2: 950 W now", func(h *Host) { h.Rack, h.PowerWatts = "r2", 950 }},
		{"features", "features", ReasonFeatures, `host has ib`, func(h *Host) { h.Features = []string{"ib"} }},
		{"spread", "anti-affinity", ReasonAntiAffinity, "runs 1 of job 7's vnodes", func(h *Host) { h.Name = "hv-job" }},
		{"bad state", "", ReasonInvalid, `unknown state "sleepy"`, func(h *Host) { h.State = "sleepy" }},
		{"negative", "", ReasonInvalid, "negative size", func(h *Host) { h.CPUs = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := good
			bad.Name = "hv-bad"
			tc.mod(&bad)
			p := mustPipeline(t, Config{Racks: []Rack{{"r1", 10000}, {"r2", 1000}}})
			d := p.Place(req, []Host{bad, good})
			if d.Host != "hv-ok" {
				t.Fatalf("placed on %q, want hv-ok\n%s", d.Host, d.Table())
			}
			v := verdictOf(t, d, bad.Name)
			if v.Feasible || v.Filter != tc.filter || v.Reason != tc.reason || !strings.Contains(v.Detail, tc.detail) {
				t.Fatalf("verdict %+v, want filter %q reason %q detail containing %q", v, tc.filter, tc.reason, tc.detail)
			}
			if d.Dropped[tc.reason] != 1 {
				t.Fatalf("dropped %v, want one %s", d.Dropped, tc.reason)
			}
		})
	}
}

// TestOvercommit: 32 CPUs × 1.5 = 48 vCPUs; 40 taken leaves 8, enough for 8 but not 9.
func TestOvercommit(t *testing.T) {
	h := fresh("hv1")
	h.AllocCPUs = 40
	p := mustPipeline(t, Config{CPUOvercommit: 1.5})
	if d := p.Place(Request{CPUs: 8, MemoryMiB: 1024, Now: t0}, []Host{h}); d.Host != "hv1" {
		t.Fatalf("8 vCPUs did not fit in 48 − 40: %s", d.Reason)
	}
	if d := p.Place(Request{CPUs: 9, MemoryMiB: 1024, Now: t0}, []Host{h}); d.Host != "" || d.Dropped[ReasonNoCPU] != 1 {
		t.Fatalf("9 vCPUs fit in 48 − 40: %+v", d)
	}
	h.CPUOvercommit = 2 // the host's own ratio wins: 64 − 40 = 24 free
	if d := p.Place(Request{CPUs: 24, MemoryMiB: 1024, Now: t0}, []Host{h}); d.Host != "hv1" {
		t.Fatalf("host overcommit ignored: %s", d.Reason)
	}
}

// TestNoMigrateDropsWarning: a no-migrate job stays off hosts in warning.
func TestNoMigrateDropsWarning(t *testing.T) {
	warn, ok := fresh("hv1"), fresh("hv2")
	warn.Health = "warning"
	ok.Load1 = 31 // much busier, still the only choice
	req := Request{CPUs: 1, MemoryMiB: 1024, Now: t0, Hints: Hints{NoMigrate: true}}
	p := mustPipeline(t, Config{})
	if d := p.Place(req, []Host{warn, ok}); d.Host != "hv2" || verdictOf(t, d, "hv1").Reason != ReasonBreachSoon {
		t.Fatalf("no-migrate: %s", d.Table())
	}
	req.Hints.NoMigrate = false
	if d := p.Place(req, []Host{warn, ok}); d.Host != "hv1" {
		t.Fatalf("without the hint the idle warning host should win: %s", d.Table())
	}
}

// TestBreachWithinTimeLimit: a breach in 3 h drops the host for a 4 h job, not for a 2 h one; a
// job without a limit avoids any predicted breach.
func TestBreachWithinTimeLimit(t *testing.T) {
	h := fresh("hv1")
	h.BreachAt = t0.Add(3 * time.Hour)
	p := mustPipeline(t, Config{})
	for _, tc := range []struct {
		limit time.Duration
		want  string
	}{{2 * time.Hour, "hv1"}, {4 * time.Hour, ""}, {0, ""}} {
		if d := p.Place(Request{CPUs: 1, MemoryMiB: 1, TimeLimit: tc.limit, Now: t0}, []Host{h}); d.Host != tc.want {
			t.Errorf("limit %v: host %q, want %q (%s)", tc.limit, d.Host, tc.want, d.Reason)
		}
	}
}

// TestHints: spread drops the job's host; pack makes it win though it scores worse on everything.
func TestHints(t *testing.T) {
	job, idle := fresh("hv1"), fresh("hv2")
	job.AllocCPUs, job.Load1 = 24, 24 // busy
	req := Request{JobID: 1, CPUs: 4, MemoryMiB: 1024, JobHosts: []string{"hv1"}, Now: t0}
	p := mustPipeline(t, Config{})
	for _, tc := range []struct {
		hints Hints
		want  string
	}{
		{Hints{}, "hv2"},             // balanced spreads softly, and hv2 is idle anyway
		{Hints{Spread: true}, "hv2"}, // hard
		{Hints{Pack: true}, "hv1"},   // affinity weight 2×Σ others + 1 beats everything else
	} {
		req.Hints = tc.hints
		d := p.Place(req, []Host{job, idle})
		if d.Host != tc.want {
			t.Errorf("%+v: host %q, want %q\n%s", tc.hints, d.Host, tc.want, d.Table())
		}
	}
	// spread with the job's host as the only one: nowhere, and the reason says why
	req.Hints = Hints{Spread: true}
	d := p.Place(req, []Host{job})
	if d.Host != "" || !strings.Contains(d.Reason, "1 anti-affinity") || !strings.Contains(d.Reason, "hv1: anti-affinity") {
		t.Fatalf("spread onto the job's only host: %q", d.Reason)
	}
}

// TestBadInput: requests and configs that cannot work say what is wrong.
func TestBadInput(t *testing.T) {
	h := fresh("hv1")
	h.Features = []string{"ib", "avx512"}
	p := mustPipeline(t, Config{})
	for _, tc := range []struct {
		name string
		req  Request
		want string
	}{
		{"contradictory hints", Request{CPUs: 1, MemoryMiB: 1, Hints: Hints{Spread: true, Pack: true}}, "contradictory hints: spread and pack"},
		{"unknown feature", Request{CPUs: 1, MemoryMiB: 1, Constraint: "ib&gpux"}, `unknown feature "gpux" (no host has it; known: avx512, ib)`},
		{"parentheses", Request{CPUs: 1, MemoryMiB: 1, Constraint: "(ib|gpu)"}, "not supported"},
		{"empty term", Request{CPUs: 1, MemoryMiB: 1, Constraint: "ib||avx512"}, `empty term ""`},
		{"no cpus", Request{CPUs: 0, MemoryMiB: 1}, "0 CPUs"},
		{"too big", Request{CPUs: 64, MemoryMiB: 1}, "hv1: no-cpu (needs 64 vCPUs, 32 of 32 free"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Now = t0
			d := p.Place(tc.req, []Host{h})
			if d.Host != "" || !strings.Contains(d.Reason, tc.want) {
				t.Fatalf("host %q reason %q, want nowhere and %q", d.Host, d.Reason, tc.want)
			}
		})
	}
	t.Run("no fresh kpis", func(t *testing.T) {
		a, b := fresh("hv1"), fresh("hv2")
		a.KPIAt, b.KPIAt = time.Time{}, t0.Add(-time.Hour)
		d := p.Place(Request{CPUs: 1, MemoryMiB: 1, Now: t0}, []Host{a, b})
		if d.Host != "" || d.Dropped[ReasonStaleKPIs] != 2 || !strings.Contains(d.Reason, "2 stale-kpis") {
			t.Fatalf("stale hosts used: %+v", d)
		}
	})
	t.Run("no hosts", func(t *testing.T) {
		if d := p.Place(Request{CPUs: 1, MemoryMiB: 1, Now: t0}, nil); d.Host != "" || !strings.Contains(d.Reason, "no hypervisors") {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("repeated name", func(t *testing.T) {
		d := p.Place(Request{CPUs: 1, MemoryMiB: 1, Now: t0}, []Host{h, h})
		if d.Host != "hv1" || d.Dropped[ReasonInvalid] != 1 {
			t.Fatalf("%+v", d)
		}
	})
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Policy: "fastest"}, `unknown placement policy "fastest" (want one of balanced, energy, pack, thermal)`},
		{Config{Weights: map[string]float64{"luck": 1}}, `weight for unknown scorer "luck"`},
		{Config{Weights: map[string]float64{"load": -1}}, `weight of scorer "load" is -1`},
		{Config{CPUOvercommit: -2}, "cpu overcommit is -2"},
		{Config{Racks: []Rack{{"r1", 1}, {"r1", 2}}}, `rack table row 2: empty or repeated rack name "r1"`},
	} {
		if _, err := NewPipeline(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestTies: equal hosts go to the first name with seed 0, and to a seed-dependent host otherwise.
func TestTies(t *testing.T) {
	hosts := []Host{fresh("hv3"), fresh("hv1"), fresh("hv2"), fresh("hv4")}
	req := Request{CPUs: 1, MemoryMiB: 1, Now: t0}
	if d := mustPipeline(t, Config{}).Place(req, hosts); d.Host != "hv1" || d.Seed != 0 {
		t.Fatalf("seed 0: %q", d.Host)
	}
	seen := map[string]bool{}
	for seed := int64(1); seed <= 20; seed++ {
		p := mustPipeline(t, Config{Seed: seed})
		d := p.Place(req, hosts)
		if d.Seed != seed {
			t.Fatalf("decision seed %d, want %d", d.Seed, seed)
		}
		if again := p.Place(req, []Host{hosts[2], hosts[0], hosts[3], hosts[1]}); again.Host != d.Host {
			t.Fatalf("seed %d: %q then %q for the same hosts in another order", seed, d.Host, again.Host)
		}
		seen[d.Host] = true
	}
	if len(seen) < 3 {
		t.Fatalf("20 seeds chose only %v: not a shuffle", seen)
	}
}

// TestAssume fills a host decision by decision until nothing fits.
func TestAssume(t *testing.T) {
	h := fresh("hv1") // 32 CPUs
	p := mustPipeline(t, Config{})
	s, err := p.Snapshot([]Host{h}, t0)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{CPUs: 8, MemoryMiB: 1024}
	for i := 0; i < 4; i++ {
		d := p.Decide(req, s, false)
		if d.Host != "hv1" {
			t.Fatalf("decision %d: %s", i, d.Reason)
		}
		if err := s.Assume(d.Host, req); err != nil {
			t.Fatal(err)
		}
	}
	if d := p.Decide(req, s, false); d.Host != "" || d.Dropped[ReasonNoCPU] != 1 {
		t.Fatalf("a fifth 8-CPU vnode fit in 32 CPUs: %+v", d)
	}
	if err := s.Assume("hv9", req); err == nil || !strings.Contains(err.Error(), "hv9") {
		t.Fatalf("assume on an unknown host: %v", err)
	}
}

// TestExplainRoundTrip: the decision survives JSON (the hooks store it as jsonb) and renders.
func TestExplainRoundTrip(t *testing.T) {
	busy, idle, down := fresh("hv1"), fresh("hv2"), fresh("hv3")
	busy.Load1 = 24
	down.State = "maintenance"
	d := mustPipeline(t, Config{Seed: 42}).Place(Request{VNode: "vn1", JobID: 9, CPUs: 2, MemoryMiB: 2048, Now: t0}, []Host{busy, idle, down})
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back Decision
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, back) {
		t.Fatalf("round trip changed the decision:\n%+v\n%+v", d, back)
	}
	table := back.Table()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 5 || !strings.Contains(lines[1], "LOAD×3") || !strings.HasPrefix(lines[2], "hv2") ||
		!strings.Contains(lines[2], "chosen") || !strings.Contains(lines[4], "maintenance") {
		t.Fatalf("table:\n%s", table)
	}
	if why := back.Why("hv3"); !strings.Contains(why, "dropped by the state filter (not-active): hypervisor is maintenance") {
		t.Fatalf("why hv3: %q", why)
	}
	if why := back.Why("hv1"); !strings.Contains(why, "feasible but scored") || !strings.Contains(why, "load 25.0") {
		t.Fatalf("why hv1: %q", why)
	}
}

// TestNoPerHostAllocations: without explain traces a decision allocates the same at 100 and
// 5,000 hosts (per-decision bookkeeping only).
func TestNoPerHostAllocations(t *testing.T) {
	req := Request{VNode: "vn", CPUs: 2, MemoryMiB: 4096, Constraint: "ib", TimeLimit: time.Hour,
		JobHosts: []string{"hv000001", "hv000002"}, Now: t0}
	allocs := map[int]float64{}
	for _, n := range []int{100, 5000} {
		syn := NewSynthetic(n, 1, t0)
		p := mustPipeline(t, Config{Racks: syn.Racks, Seed: 1})
		s, err := p.Snapshot(syn.Hosts, t0)
		if err != nil {
			t.Fatal(err)
		}
		p.Decide(req, s, false) // fill the scratch pool
		allocs[n] = testing.AllocsPerRun(50, func() {
			if d := p.Decide(req, s, false); d.Host == "" {
				t.Fatal(d.Reason)
			}
		})
	}
	if allocs[5000] > allocs[100]+2 {
		t.Fatalf("allocations grow with hosts: %v", allocs)
	}
}
