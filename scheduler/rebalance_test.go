package scheduler

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
)

// loadOnly is a pipeline scoring by load alone, so expected scores are worked out in one line:
// score = 100 × (1 − max(load1/CPUs, CPUBusy)).
func loadOnly(t *testing.T) *Pipeline {
	return mustPipeline(t, Config{Weights: map[string]float64{ScoreLoad: 1, ScorePower: 0, ScoreEnergy: 0, ScoreThermal: 0,
		ScoreBinPack: 0, ScorePenalty: 0, ScoreAffinity: 0}})
}

func loaded(name string, load float64) Host {
	h := fresh(name)
	h.Load1 = load
	return h
}

// gib is 1 GiB/s: with 1 s overhead a quiet VM of n GiB is estimated at 1 + n seconds.
const gib = 1 << 30

func vmOn(name, host string, mib int64) VM {
	return VM{VNode: name, Host: host, CPUs: 1, MemoryMiB: mib}
}

type wantMove struct{ vnode, from, to, reason string }

func movesOf(p Plan) []wantMove {
	var out []wantMove
	for _, m := range p.Moves {
		out = append(out, wantMove{m.VNode, m.From, m.To, m.Reason})
	}
	return out
}

func skipsOf(p Plan) map[string]string {
	out := map[string]string{}
	for _, s := range p.Skipped {
		out[s.VNode+"@"+s.Host] = s.Code
	}
	return out
}

func TestRebalanceByHand(t *testing.T) {
	now := t0
	base := RebalanceConfig{BandwidthBytesPerSec: gib, Overhead: time.Second}
	with := func(f func(*RebalanceConfig)) RebalanceConfig { c := base; f(&c); return c }
	critical := func(h Host) Host { h.Health = "critical"; return h }
	breach := func(h Host, in time.Duration) Host { h.BreachAt = now.Add(in); return h }
	draining := func(h Host) Host { h.State = "draining"; return h }

	for _, tc := range []struct {
		name  string
		hosts []Host
		vms   []VM
		cfg   RebalanceConfig
		moves []wantMove
		skips map[string]string
	}{{
		// hv1 is critical. Estimates: a 1 + 1024 MiB / 1 GiB/s = 2 s, b 1 + 4 = 5 s, so a goes first.
		// c asks no-migrate; d's job ends in 1 s, before its 1.5 s estimate. a moved a minute ago,
		// inside the cooldown, but a critical host ignores it. Targets by load only: hv2
		// 100 × (1 − 4/32) = 87.5 beats hv3 100 × (1 − 8/32) = 75, for both (Assume adds no load).
		name:  "critical host: shortest first, no-migrate and ending jobs stay",
		hosts: []Host{critical(loaded("hv1", 1)), loaded("hv2", 4), loaded("hv3", 8)},
		vms: []VM{{VNode: "b", Host: "hv1", CPUs: 2, MemoryMiB: 4096},
			{VNode: "a", Host: "hv1", CPUs: 1, MemoryMiB: 1024, LastMigrated: now.Add(-time.Minute)},
			{VNode: "c", Host: "hv1", CPUs: 1, MemoryMiB: 512, NoMigrate: true},
			{VNode: "d", Host: "hv1", CPUs: 1, MemoryMiB: 512, JobID: 7, JobEnd: now.Add(time.Second)}},
		cfg:   base,
		moves: []wantMove{{"a", "hv1", "hv2", "evacuation"}, {"b", "hv1", "hv2", "evacuation"}},
		skips: map[string]string{"c@hv1": SkipNoMigrate, "d@hv1": SkipJobEnds},
	}, {
		// hv2 breaches in 2 min, hv1 in 5 min: hv2 first. hv3's breach (1 h) is beyond the
		// 15 min horizon: not evacuated, and not a target either (the forecast filter drops it for
		// jobs without an end). x2 moved 1 min ago: cooldown. x3's job ends in 3 min, before
		// hv1's breach. Targets: hv4 (load 2 → 93.75) before hv5 (load 6 → 81.25).
		name: "predicted breaches: earliest first, cooldown and jobs ending before the breach stay",
		hosts: []Host{breach(loaded("hv1", 1), 5*time.Minute), breach(loaded("hv2", 1), 2*time.Minute),
			breach(loaded("hv3", 1), time.Hour), loaded("hv4", 2), loaded("hv5", 6)},
		vms: []VM{vmOn("x1", "hv1", 1024), vmOn("y1", "hv2", 1024), vmOn("z1", "hv3", 1024),
			{VNode: "x2", Host: "hv2", CPUs: 1, MemoryMiB: 512, LastMigrated: now.Add(-time.Minute)},
			{VNode: "x3", Host: "hv1", CPUs: 1, MemoryMiB: 512, JobID: 9, JobEnd: now.Add(3 * time.Minute)}},
		cfg:   base,
		moves: []wantMove{{"y1", "hv2", "hv4", "evacuation"}, {"x1", "hv1", "hv4", "evacuation"}},
		skips: map[string]string{"x2@hv2": SkipCooldown, "x3@hv1": SkipJobEnds},
	}, {
		// draining hv1 with spare hv3: the spare wins although hv2 scores higher (87.5 > 75)
		name:  "drain goes to the spare first",
		hosts: []Host{draining(loaded("hv1", 1)), loaded("hv2", 4), loaded("hv3", 8)},
		vms:   []VM{vmOn("a", "hv1", 1024)},
		cfg:   with(func(c *RebalanceConfig) { c.Spares = []string{"hv3"} }),
		moves: []wantMove{{"a", "hv1", "hv3", "drain"}},
	}, {
		// a spare that cannot take it (4 CPUs, all allocated): the best other host
		name:  "full spare: best other host",
		hosts: []Host{critical(loaded("hv1", 1)), loaded("hv2", 4), func() Host { h := loaded("hv3", 0); h.CPUs, h.AllocCPUs = 4, 4; return h }()},
		vms:   []VM{vmOn("a", "hv1", 1024)},
		cfg:   with(func(c *RebalanceConfig) { c.Spares = []string{"hv3"} }),
		moves: []wantMove{{"a", "hv1", "hv2", "evacuation"}},
	}, {
		// aggressiveness 2: hv1 at load 30/32 = 0.94 ≥ 0.9 is pressed. Without a vnode hv1 still
		// scores 100 × (1 − 0.9375) = 6.25 (load is measured), hv2 87.5: gain 81.25 > 10 × 4/3.
		// The smaller vnode moves; the per-host cap (1) stops the second.
		name:  "rebalance: the small vnode leaves the pressed host, then the cap",
		hosts: []Host{loaded("hv1", 30), loaded("hv2", 4)},
		vms:   []VM{vmOn("big", "hv1", 8192), vmOn("small", "hv1", 1024)},
		cfg:   base,
		moves: []wantMove{{"small", "hv1", "hv2", "rebalance"}},
		skips: map[string]string{"@hv1": SkipCap},
	}, {
		name:  "aggressiveness 1: only evacuations",
		hosts: []Host{loaded("hv1", 30), loaded("hv2", 4)},
		vms:   []VM{vmOn("small", "hv1", 1024)},
		cfg:   with(func(c *RebalanceConfig) { c.Aggressiveness = 1 }),
	}, {
		// hv1 29/32 → 9.375, hv2 26/32 → 18.75: gain 9.375 is not above 10 × 4/3 = 13.3 at level 2
		name:  "hysteresis at level 2: too small a gain",
		hosts: []Host{loaded("hv1", 29), loaded("hv2", 26)},
		vms:   []VM{vmOn("small", "hv1", 1024)},
		cfg:   base,
		skips: map[string]string{"small@hv1": SkipGain},
	}, {
		// the same at level 5: the margin is 10 × 1/3 = 3.3, so it moves
		name:  "hysteresis at level 5: eager",
		hosts: []Host{loaded("hv1", 29), loaded("hv2", 26)},
		vms:   []VM{vmOn("small", "hv1", 1024)},
		cfg:   with(func(c *RebalanceConfig) { c.Aggressiveness = 5 }),
		moves: []wantMove{{"small", "hv1", "hv2", "rebalance"}},
	}, {
		// a no-migrate vnode on a pressed host stays, and so does one in cooldown
		name:  "rebalance honours no-migrate and cooldown",
		hosts: []Host{loaded("hv1", 30), loaded("hv2", 4)},
		vms: []VM{{VNode: "p", Host: "hv1", CPUs: 1, MemoryMiB: 512, Hints: Hints{NoMigrate: true}},
			{VNode: "q", Host: "hv1", CPUs: 1, MemoryMiB: 1024, LastMigrated: now.Add(-time.Minute)}},
		cfg:   base,
		skips: map[string]string{"p@hv1": SkipNoMigrate, "q@hv1": SkipCooldown},
	}, {
		// level 4, nothing pressed: hv1 (1 CPU allocated, pressure 1/32) is emptied first, onto
		// hv2 (load 2 → 93.75 beats hv3's 3 → 90.6). The per-host cap (1) then holds hv2's own
		// consolidation; hv3's vnode has nowhere to go (hv1 and hv2 are being emptied).
		name: "consolidation at level 4",
		hosts: []Host{func() Host { h := loaded("hv1", 1); h.AllocCPUs = 1; return h }(),
			func() Host { h := loaded("hv2", 2); h.AllocCPUs = 2; return h }(),
			func() Host { h := loaded("hv3", 3); h.AllocCPUs = 4; return h }()},
		vms:   []VM{vmOn("v1", "hv1", 1024), vmOn("v2", "hv2", 1024), vmOn("v3", "hv3", 1024)},
		cfg:   with(func(c *RebalanceConfig) { c.Aggressiveness = 4 }),
		moves: []wantMove{{"v1", "hv1", "hv2", "consolidation"}},
		skips: map[string]string{"@hv2": SkipCap, "@hv3": SkipNoTarget},
	}, {
		name:  "vnode on an unknown host",
		hosts: []Host{loaded("hv1", 1)},
		vms:   []VM{vmOn("lost", "hv9", 512)},
		cfg:   base,
		skips: map[string]string{"lost@hv9": SkipUnknown},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := loadOnly(t).Rebalance(tc.hosts, tc.vms, tc.cfg, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := movesOf(plan); !reflect.DeepEqual(got, tc.moves) {
				t.Errorf("moves = %v, want %v\nplan: %+v", got, tc.moves, plan)
			}
			if tc.skips == nil {
				tc.skips = map[string]string{}
			}
			if got := skipsOf(plan); !reflect.DeepEqual(got, tc.skips) {
				t.Errorf("skipped = %v, want %v\nplan: %+v", got, tc.skips, plan.Skipped)
			}
			for i, m := range plan.Moves {
				if m.Priority != i+1 || m.Why == "" || m.EstDuration <= 0 {
					t.Errorf("move %d = %+v: want priority %d, a why and an estimate", i, m, i+1)
				}
			}
		})
	}
}

func TestEstimate(t *testing.T) {
	cfg := RebalanceConfig{BandwidthBytesPerSec: gib, Overhead: time.Second}
	for _, tc := range []struct {
		vm   VM
		want time.Duration
	}{
		{VM{MemoryMiB: 1024}, 2 * time.Second},                                            // 1 + 1 GiB / 1 GiB/s
		{VM{MemoryMiB: 1024, DirtyBytesPerSec: gib / 2}, 3 * time.Second},                 // 1 + 1 GiB / 0.5 GiB/s
		{VM{MemoryMiB: 1024, DirtyBytesPerSec: gib}, 3 * time.Second},                     // post-copy: 1 + 2 × 1 GiB / 1 GiB/s
		{VM{MemoryMiB: 4096, DirtyBytesPerSec: 2 * gib}, 9 * time.Second},                 // post-copy: 1 + 8
		{VM{MemoryMiB: 512, DirtyBytesPerSec: gib / 4}, time.Duration(1666666666)},        // 1 + 0.5 / 0.75 s
		{VM{MemoryMiB: 0}, time.Second},                                                   // overhead alone
		{VM{MemoryMiB: 2048, DirtyBytesPerSec: -5}, 3 * time.Second},                      // a negative rate counts as 0
		{VM{MemoryMiB: 1024, DirtyBytesPerSec: gib - 1}, 1<<30*time.Second + time.Second}, // about to diverge
	} {
		if got := cfg.Estimate(tc.vm); got != tc.want {
			t.Errorf("Estimate(%+v) = %v, want %v", tc.vm, got, tc.want)
		}
	}
}

func TestRebalanceRefusesBadConfig(t *testing.T) {
	p := loadOnly(t)
	for _, tc := range []struct {
		cfg  RebalanceConfig
		want string
	}{
		{RebalanceConfig{Aggressiveness: 7}, "aggressiveness 7 is not 1 to 5"},
		{RebalanceConfig{Hysteresis: -1}, "hysteresis -1"},
		{RebalanceConfig{MaxMovesPerHost: -2}, "caps 2 per cycle and -2 per host"},
		{RebalanceConfig{BandwidthBytesPerSec: -1}, "bandwidth -1 bytes/s"},
	} {
		if _, err := p.Rebalance(nil, nil, tc.cfg, t0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// Check: a vnode no longer on its source, a target now critical or full, and a no-migrate hint
// added since make a move stale; a move that still holds gives "".
func TestCheck(t *testing.T) {
	p := loadOnly(t)
	hosts := []Host{loaded("hv1", 1), loaded("hv2", 1), func() Host { h := loaded("hv3", 1); h.Health = "critical"; return h }(),
		func() Host { h := loaded("hv4", 1); h.CPUs, h.AllocCPUs = 2, 2; return h }()}
	vms := []VM{vmOn("a", "hv1", 512), vmOn("b", "hv2", 512), vmOn("c", "hv1", 512), vmOn("d", "hv1", 512),
		{VNode: "e", Host: "hv1", CPUs: 1, MemoryMiB: 512, NoMigrate: true}}
	moves := []Move{{VNode: "a", From: "hv1", To: "hv2"}, {VNode: "b", From: "hv1", To: "hv2"},
		{VNode: "c", From: "hv1", To: "hv3"}, {VNode: "d", From: "hv1", To: "hv4"}, {VNode: "e", From: "hv1", To: "hv2"},
		{VNode: "gone", From: "hv1", To: "hv2"}, {VNode: "a", From: "hv1", To: "hv9"}}
	got, err := p.Check(hosts, vms, moves, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "b now runs on hv2, not hv1", "hv3 can no longer take c: unhealthy", "hv4 can no longer take d: no-cpu",
		"e's job now asks drover:no-migrate", "gone is no longer running", "target hv9 is no longer a known hypervisor"}
	for i := range want {
		if (want[i] == "") != (got[i] == "") || !strings.Contains(got[i], want[i]) {
			t.Errorf("move %d (%+v): %q, want %q", i, moves[i], got[i], want[i])
		}
	}
}

// randomVMs puts n vnodes on random hosts (some on unknown ones), with random sizes, hints, job
// ends and last moves drawn from few values.
func randomVMs(rng *rand.Rand, hosts []Host, n int) []VM {
	vms := make([]VM, n)
	for i := range vms {
		host := "hv-gone"
		if len(hosts) > 0 && rng.Intn(20) > 0 {
			host = hosts[rng.Intn(len(hosts))].Name
		}
		vm := VM{VNode: fmt.Sprintf("vn%02d", i), Host: host, JobID: int64(1 + rng.Intn(4)), CPUs: 1 + rng.Intn(4),
			MemoryMiB: int64(512 * (1 + rng.Intn(8))), DirtyBytesPerSec: float64(rng.Intn(3)) * gib / 2,
			NoMigrate: rng.Intn(6) == 0}
		if rng.Intn(3) == 0 {
			vm.JobEnd = t0.Add(time.Duration(rng.Intn(120)) * time.Second)
		}
		if rng.Intn(3) == 0 {
			vm.LastMigrated = t0.Add(-time.Duration(rng.Intn(20)) * time.Minute)
		}
		if rng.Intn(5) == 0 {
			vm.Hints.Spread = true
		}
		vms[i] = vm
	}
	return vms
}

// Properties over random clusters: a no-migrate vnode never moves; every target is a host the
// filters accept (reachable, active, not critical, fresh KPIs, not itself evacuated) with room
// for what the plan sends it; rebalancing and consolidation stay within the caps; each vnode
// moves at most once and from where it runs; and the plan is the same whatever the input order.
func TestRebalanceProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	reasons := map[string]int{}
	defer func() {
		// the random clusters must exercise every kind of move, or the properties prove little
		for _, r := range []string{MoveEvacuation, MoveDrain, MoveRebalance, MoveConsolidation} {
			if reasons[r] == 0 {
				t.Errorf("no %s move in any random plan (moves: %v)", r, reasons)
			}
		}
	}()
	for iter := 0; iter < 400; iter++ {
		hosts := randomHosts(rng, 2+rng.Intn(8))
		for i := range hosts { // within capacity to start with
			hosts[i].AllocCPUs = rng.Intn(hosts[i].CPUs/2 + 1)
			hosts[i].AllocMemoryMiB = int64(hosts[i].AllocCPUs) * 1024
			if rng.Intn(6) == 0 {
				hosts[i].BreachAt = t0.Add(time.Duration(rng.Intn(30)) * time.Minute)
			}
		}
		if rng.Intn(4) == 0 { // a calm cluster, where consolidation may run
			for i := range hosts {
				h := &hosts[i]
				h.Health, h.State, h.Reachable, h.BreachAt, h.KPIAt = "ok", "active", true, time.Time{}, t0
				h.Load1, h.TempC, h.PowerWatts = float64(rng.Intn(2)), 40, 0
			}
		}
		vms := randomVMs(rng, hosts, rng.Intn(14))
		cfg := RebalanceConfig{Aggressiveness: 1 + rng.Intn(5), MaxMovesPerCycle: 1 + rng.Intn(3), MaxMovesPerHost: 1 + rng.Intn(2),
			Hysteresis: float64(rng.Intn(20))}
		if rng.Intn(3) == 0 {
			cfg.Spares = []string{hosts[rng.Intn(len(hosts))].Name}
		}
		p := mustPipeline(t, Config{Policy: []string{"balanced", "pack", "energy", "thermal"}[rng.Intn(4)]})
		plan, err := p.Rebalance(hosts, vms, cfg, t0)
		if err != nil {
			t.Fatal(err)
		}
		ctx := fmt.Sprintf("iteration %d, cfg %+v", iter, cfg)

		byHost := map[string]Host{}
		for _, h := range hosts {
			byHost[h.Name] = h
		}
		byVM := map[string]VM{}
		for _, vm := range vms {
			byVM[vm.VNode] = vm
		}
		sources := map[string]bool{}
		for _, s := range evacuationSources(hosts, t0, DefaultHorizon) {
			sources[s.host.Name] = true
		}
		seen := map[string]bool{}
		optional, perHost := 0, map[string]int{}
		cpuIn, memIn := map[string]int{}, map[string]int64{}
		for _, m := range plan.Moves {
			vm := byVM[m.VNode]
			h := byHost[m.To]
			switch {
			case vm.NoMigrate:
				t.Fatalf("%s: moved no-migrate %s", ctx, m.VNode)
			case seen[m.VNode]:
				t.Fatalf("%s: %s moved twice", ctx, m.VNode)
			case m.From != vm.Host || m.To == m.From:
				t.Fatalf("%s: move %+v of a vnode on %s", ctx, m, vm.Host)
			case !h.Reachable || (h.State != "" && h.State != "active") || h.Health == "critical" || t0.Sub(h.KPIAt) > DefaultStaleAfter:
				t.Fatalf("%s: move %+v targets %+v, which the filters drop", ctx, m, h)
			case sources[m.To]:
				t.Fatalf("%s: move %+v targets a host being evacuated", ctx, m)
			case (m.Reason == MoveEvacuation || m.Reason == MoveDrain) != sources[m.From]:
				t.Fatalf("%s: move %+v: reason does not match its source (evacuated: %v)", ctx, m, sources[m.From])
			}
			seen[m.VNode] = true
			reasons[m.Reason]++
			cpuIn[m.To] += vm.CPUs
			memIn[m.To] += vm.MemoryMiB
			cpuIn[m.From] -= vm.CPUs
			memIn[m.From] -= vm.MemoryMiB
			if m.Reason == MoveRebalance || m.Reason == MoveConsolidation {
				optional++
				perHost[m.From]++
				perHost[m.To]++
			}
		}
		for name, c := range cpuIn {
			h := byHost[name]
			if c > 0 && (h.AllocCPUs+c > h.CPUs || h.AllocMemoryMiB+memIn[name] > h.MemoryMiB) {
				t.Fatalf("%s: %s gets %d CPUs %d MiB beyond its %d/%d allocated of %d/%d", ctx, name, c, memIn[name],
					h.AllocCPUs, h.AllocMemoryMiB, h.CPUs, h.MemoryMiB)
			}
		}
		if optional > cfg.MaxMovesPerCycle {
			t.Fatalf("%s: %d optional moves, cap %d", ctx, optional, cfg.MaxMovesPerCycle)
		}
		for name, n := range perHost {
			if n > cfg.MaxMovesPerHost {
				t.Fatalf("%s: %d optional moves touch %s, cap %d", ctx, n, name, cfg.MaxMovesPerHost)
			}
		}
		if cfg.Aggressiveness == 1 && optional > 0 {
			t.Fatalf("%s: aggressiveness 1 planned %d optional moves", ctx, optional)
		}
		// deterministic, whatever the input order
		sh, sv := append([]Host(nil), hosts...), append([]VM(nil), vms...)
		rng.Shuffle(len(sh), func(i, j int) { sh[i], sh[j] = sh[j], sh[i] })
		rng.Shuffle(len(sv), func(i, j int) { sv[i], sv[j] = sv[j], sv[i] })
		again, err := p.Rebalance(sh, sv, cfg, t0)
		if err != nil || !reflect.DeepEqual(plan, again) {
			t.Fatalf("%s: not deterministic:\n%+v\n%+v", ctx, plan, again)
		}
	}
}

func TestPressureAndUse(t *testing.T) {
	for _, tc := range []struct {
		h         Host
		pressure  float64
		use       float64
		explained string
	}{
		{Host{CPUs: 32, Load1: 8}, 0.25, 0.25, "load 8/32"},
		{Host{CPUs: 32, Load1: 8, CPUBusy: 0.5}, 0.5, 0.5, "busy 0.5 beats load 0.25"},
		{Host{CPUs: 32, TempC: 79, TempWarnC: 80}, 0.95, 0, "(79 − (80 − 20)) / 20"},
		{Host{CPUs: 32, TempC: 50, TempWarnC: 80}, 0, 0, "30 °C below warning: cool (negative term)"},
		{Host{CPUs: 32, PowerWatts: 450, PowerCapWatts: 500}, 0.9, 0, "450 W of 500"},
		{Host{CPUs: 32, AllocCPUs: 16, MemoryMiB: 1024, AllocMemoryMiB: 768}, 0, 0.75, "memory 768/1024 beats CPUs 16/32"},
		{Host{}, 0, 0, "nothing known"},
	} {
		if p, u := Pressure(&tc.h), Use(&tc.h); !near(p, tc.pressure) || !near(u, tc.use) {
			t.Errorf("%s: pressure %v use %v, want %v and %v", tc.explained, p, u, tc.pressure, tc.use)
		}
	}
}

// BenchmarkRebalance plans on synthetic clusters with four vnodes per host and one host critical:
// the planner's share of the time from a health event to the first migration.
func BenchmarkRebalance(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			syn := NewSynthetic(n, 1, t0)
			hosts := append([]Host(nil), syn.Hosts...)
			hosts[0].Health = "critical"
			var vms []VM
			for i, h := range hosts {
				for k := 0; k < 4; k++ {
					vms = append(vms, VM{VNode: fmt.Sprintf("vn%d-%d", i, k), Host: h.Name, CPUs: 1, MemoryMiB: 1024})
				}
			}
			p, err := NewPipeline(Config{})
			if err != nil {
				b.Fatal(err)
			}
			cfg := RebalanceConfig{Aggressiveness: 3}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.Rebalance(hosts, vms, cfg, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
