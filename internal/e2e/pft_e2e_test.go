//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/migrate"
)

// Issue #6's proactive fault-tolerance tests on the testbed (make e2e-pft). TestPFT runs them as
// subtests, in this order, and writes all their figures as one JSON object (e2e-pft.json):
//
//	parallel/noise            (b) hv2's CPU at 80 ± 3 °C for 5 minutes: no migration
//	parallel/migrate-vs-virsh (d) drover migrate against bare virsh migrate --live, same run
//	evacuation                (a) hv1 warms by 0.5 °C/s; drover server moves the job's VM before 90 °C
//	evacuation/server-crash   (c) kill -9 of drover server in every journal phase of its migrations
//	                              of the same VM; then the job must complete with every tick
//
// noise and migrate-vs-virsh run side by side: noise's VM is a vnode that stays on hv2,
// migrate-vs-virsh's a test guest recorded in a schema of its own, which drover server never sees.
// Tests of the control loop place their job's vnode by making the other hypervisor's BMC read hot
// while Slurm resumes it, never by migrating it there: a moved vnode sits out control.cooldown.

// Knobs, for trying things by hand; the defaults are what issue #6 asks for.
const (
	pftRoundsEnv      = "DROVER_PFT_ROUNDS"       // migrate-vs-virsh rounds of 8 migrations (default 3)
	pftDirtyRateEnv   = "DROVER_PFT_DIRTY_RATE"   // MiB/s the 128 MiB working set is rewritten at (default 128)
	pftNoiseEnv       = "DROVER_PFT_NOISE"        // how long the noise lasts (default 5m)
	pftSeedEnv        = "DROVER_PFT_SEED"         // the noise's seed (default: the clock; logged)
	pftCrashTrialsEnv = "DROVER_PFT_CRASH_TRIALS" // server kill -9 trials (default 20)
)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive whole number", name, s)
	}
	return n
}

func TestPFT(t *testing.T) {
	testenv.Config(t) // skips without a testbed
	r := &report{res: map[string]any{"test": "pft"}}
	t.Cleanup(func() { writeResult(t, "e2e-pft", r.res) })
	// noise's VM stays on hv2 and only migrate-vs-virsh's private guest moves meanwhile
	t.Run("parallel", func(t *testing.T) {
		t.Run("noise", func(t *testing.T) {
			t.Parallel()
			testNoise(t, r)
		})
		t.Run("migrate-vs-virsh", func(t *testing.T) {
			t.Parallel()
			testMigrateVsVirsh(t, r)
		})
	})
	// evacuation runs server-crash as its subtest, on the same job's VM once it has left hv1
	t.Run("evacuation", func(t *testing.T) { testEvacuation(t, r) })
}

// pftMigration is one migration of the migrate-vs-virsh guest.
type pftMigration struct {
	Tool       string  `json:"tool"` // drover (the default quick verification), drover-watch (the testbed's 2 s watch) or virsh
	From       string  `json:"from"`
	To         string  `json:"to"`
	WallS      float64 `json:"wall_s"`
	QemuMS     float64 `json:"qemu_ms"`     // QEMU's migration time
	DowntimeMS float64 `json:"downtime_ms"` // the guest's pause, from libvirt's completed-job stats
	MiB        float64 `json:"mib"`         // data sent
	// drover only, from its journal's phase entries: the libvirt call (preparing → switching
	// over: destination QEMU started, memory copied, switched over), verification on the
	// destination (verifying → done), and the rest of the wall time (process start, locating the
	// guest, journal writes, exit)
	LibvirtS float64 `json:"libvirt_s,omitempty"`
	VerifyS  float64 `json:"verify_s,omitempty"`
	OtherS   float64 `json:"other_s,omitempty"`
}

// testMigrateVsVirsh is (d): one 1 GiB guest rewriting 128 MiB, migrated between hv1 and hv2 by
// drover and by bare virsh, alternating, in the same run. drover is run with its default
// verification (migration.verify_for 0, the quick check: running on the destination, vCPUs
// advancing) and with the testbed's 2 s watch (which also waits for console lines), so the cost
// of a longer watch shows apart from the rest.
func testMigrateVsVirsh(t *testing.T, r *report) {
	rounds := envInt(t, pftRoundsEnv, 3) // 6 migrations per tool: medians that a noisy machine moves less
	rate := envInt(t, pftDirtyRateEnv, 128)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*4*time.Minute+2*time.Minute)
	defer cancel()
	cfg := testenv.Config(t)
	bin := droverBin(t)
	g := bootGuest(t, ctx, "pftd", "hv1", 1024, "dirty_mb=128 dirty_rate="+strconv.Itoa(rate))
	g.heartbeats(t, 3, 2*time.Minute)
	maxDowntime := cfg.Migration.MaxDowntime
	t.Logf("guest %s: 1024 MiB, rewriting 128 MiB at %d MiB/s; max downtime %v, bandwidth %d MiB/s (0: none), auto-converge %v, verify_for %v",
		g.name, rate, maxDowntime, cfg.Migration.BandwidthMiBs, cfg.Migration.AutoConverge, cfg.Migration.VerifyFor)

	// check: the guest runs on the destination only and goes on writing heartbeats. Its kernel
	// crashing after a migration — seen twice in about 250 migrations on this testbed, once after
	// drover's and once after bare virsh's, its QEMU running the guest under TCG — is a fault of the
	// hypervisor, not of the tool: once per run it is reported (in the figures too) and the
	// measurement goes on with a fresh guest; a second crash fails the test.
	var crashes []map[string]any
	check := func(pm pftMigration) {
		g.runsOn(t, ctx, pm.To)
		problem, crashed := g.alive(t, pm)
		switch {
		case problem == "":
			return
		case !crashed || len(crashes) > 0:
			t.Fatal(problem)
		}
		crashes = append(crashes, map[string]any{"tool": pm.Tool, "from": pm.From, "to": pm.To, "downtime_ms": pm.DowntimeMS})
		t.Logf("GUEST KERNEL CRASH after a migration (tolerated once per run; the measurement goes on with a fresh guest): %s", problem)
		if err := g.conn(t, ctx, pm.To).Destroy(ctx, g.name); err != nil {
			t.Fatalf("destroy the crashed guest: %v", err)
		}
		g = bootGuest(t, ctx, "pftd", pm.To, 1024, "dirty_mb=128 dirty_rate="+strconv.Itoa(rate))
		g.heartbeats(t, 3, 2*time.Minute)
	}
	var all []pftMigration
	walls := map[string][]float64{}
	downs := map[string][]float64{}
	var calls []float64 // drover's libvirt call, both verification settings
	drover := func(tool, from, to string, env ...string) {
		wall, m := g.droverMigrate(t, ctx, bin, to, env...)
		pm := pftMigration{Tool: tool, From: from, To: to, WallS: wall.Seconds()}
		if m.TotalMS != nil {
			pm.QemuMS = *m.TotalMS
		}
		if m.DowntimeMS != nil {
			pm.DowntimeMS = *m.DowntimeMS
		}
		if m.BytesSent != nil {
			pm.MiB = float64(*m.BytesSent) / (1 << 20)
		}
		evs, err := g.st.MigrationEvents(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		at := map[string]time.Time{}
		for _, ev := range evs {
			at[ev.Phase] = ev.At
		}
		if at["preparing"].IsZero() || at["switching_over"].IsZero() || at["verifying"].IsZero() || at["done"].IsZero() {
			t.Fatalf("migration %d: journal entries %+v, want preparing, switching_over, verifying and done", m.ID, evs)
		}
		pm.LibvirtS = at["switching_over"].Sub(at["preparing"]).Seconds()
		pm.VerifyS = at["done"].Sub(at["verifying"]).Seconds()
		pm.OtherS = pm.WallS - pm.LibvirtS - pm.VerifyS
		calls = append(calls, pm.LibvirtS)
		all = append(all, pm)
		walls[tool] = append(walls[tool], pm.WallS)
		downs[tool] = append(downs[tool], pm.DowntimeMS)
		t.Logf("%-20s %s→%s: wall %.2fs (libvirt call %.2fs, verification %.2fs, the rest %.2fs), qemu %.0f ms, downtime %.0f ms, %.0f MiB",
			tool, from, to, pm.WallS, pm.LibvirtS, pm.VerifyS, pm.OtherS, pm.QemuMS, pm.DowntimeMS, pm.MiB)
		check(pm)
	}
	virsh := func(from, to string) {
		wall, ji := g.virshMigrate(t, ctx, from, to, maxDowntime)
		pm := pftMigration{Tool: "virsh", From: from, To: to, WallS: wall.Seconds(), QemuMS: ji.ElapsedMS, DowntimeMS: ji.DowntimeMS, MiB: ji.MiBProcessed}
		all = append(all, pm)
		walls["virsh"] = append(walls["virsh"], pm.WallS)
		downs["virsh"] = append(downs["virsh"], pm.DowntimeMS)
		t.Logf("%-20s %s→%s: wall %.2fs, qemu %.0f ms, downtime %.0f ms, %.0f MiB", "virsh", from, to, pm.WallS, pm.QemuMS, pm.DowntimeMS, pm.MiB)
		check(pm)
	}
	// the figures, also of the migrations before a failure
	defer func() {
		if len(all) == 0 {
			return
		}
		mv, md, ms := median(walls["virsh"]), median(walls["drover"]), median(walls["drover-watch"])
		res := map[string]any{
			"guest_mib": 1024, "dirty_mib": 128, "dirty_rate_mibs": rate, "max_downtime_ms": maxDowntime.Milliseconds(),
			"rounds": rounds, "migrations": all, "guest_crashes": crashes,
			"virsh_wall_median_s": round(mv, 3), "drover_wall_median_s": round(md, 3), "drover_watch_wall_median_s": round(ms, 3),
			"ratio_drover_to_virsh":              round(md/mv, 3),
			"ratio_drover_watch_to_virsh":        round(ms/mv, 3),
			"drover_libvirt_call_median_s":       round(median(calls), 3),
			"ratio_drover_libvirt_call_to_virsh": round(median(calls)/mv, 3),
			"downtime_median_ms": map[string]float64{
				"drover": median(downs["drover"]), "drover_watch": median(downs["drover-watch"]), "virsh": median(downs["virsh"]),
			},
			// the 2007 baseline (Nagarajan et al.: 13 s per GB of guest memory) against drover's median
			"ratio_drover_to_2007_per_gib": round(md/13, 3),
			"goal_ratio_met":               md/mv <= 1.05,
			"goal_downtime_met":            median(downs["drover"]) <= 50,
		}
		t.Logf("wall medians: virsh %.2fs, drover %.2fs (%.2f×), drover with the 2 s watch %.2fs (%.2f×); goal ≤ 1.05×", mv, md, md/mv, ms, ms/mv)
		t.Logf("drover's libvirt call alone: median %.2fs (%.2f× virsh's whole run)", median(calls), median(calls)/mv)
		t.Logf("downtime medians: drover %.0f ms, virsh %.0f ms; goal ≤ 50 ms", median(downs["drover"]), median(downs["virsh"]))
		res["complete"] = !t.Failed()
		r.set("migrate_vs_virsh", res)
	}()
	// every other migration comes back, and each tool moves the guest both ways equally often:
	// one direction must not favour one tool
	quick := "DROVER_MIGRATION_VERIFY_FOR=0s" // the product's default; the testbed's configuration watches 2 s
	for i := 0; i < rounds; i++ {
		drover("drover", "hv1", "hv2", quick)
		virsh("hv2", "hv1")
		virsh("hv1", "hv2")
		drover("drover-watch", "hv2", "hv1")
		drover("drover-watch", "hv1", "hv2")
		virsh("hv2", "hv1")
		virsh("hv1", "hv2")
		drover("drover", "hv2", "hv1", quick)
	}
}

// droverBin is the repository's bin/drover (make build).
func droverBin(t *testing.T) string {
	t.Helper()
	bin := testenv.RepoRoot() + "/bin/drover"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (make build)", bin, err)
	}
	return bin
}

// testNoise is (b): a job's VM on hv2 while hv2's CPU reads 80 °C (the warning bound) plus
// uniform noise of ±3 °C, a new whole-degree reading every second for five minutes. drover must
// not move the VM: no journal row for it in that time.
func testNoise(t *testing.T, r *report) {
	noise := 5 * time.Minute
	if s := os.Getenv(pftNoiseEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 10*time.Second {
			t.Fatalf("%s=%q: want a duration of at least 10s", pftNoiseEnv, s)
		}
		noise = d
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(pftSeedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want a whole number", pftSeedEnv, s)
		}
		seed = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), noise+12*time.Minute)
	defer cancel()
	e := setup(t)
	testenv.LockBMC(t, "hv2")
	t.Cleanup(func() { testenv.Script(t, "sensor", "hv2", "cpu", "45") })
	vn := e.coolVnode(ctx)
	ticks := int(noise.Seconds()) + 20
	id := e.hotUntilPlaced(t, ctx, vn, "hv2", "drover-e2e-pft-noise", ticks, time.Duration(ticks)*time.Second+5*time.Minute)
	t.Logf("job %d ticks on %s (hv2); hv2's CPU at 80 ± 3 °C for %v (seed %d, %s=%d repeats it)", id, vn, noise, seed, pftSeedEnv, seed)

	rng := rand.New(rand.NewPCG(seed, 0))
	var start time.Time
	if err := e.pool.QueryRow(ctx, `SELECT now()`).Scan(&start); err != nil {
		t.Fatal(err)
	}
	readings, above := 0, 0
	lo, hi := 1000, -1000
	next := time.Now()
	for end := next.Add(noise); next.Before(end); next = next.Add(time.Second) {
		time.Sleep(time.Until(next))
		c := int(math.Round(80 + rng.Float64()*6 - 3)) // whole degrees, 77..83
		testenv.Script(t, "sensor", "hv2", "cpu", strconv.Itoa(c))
		readings++
		if c >= 80 {
			above++
		}
		lo, hi = min(lo, c), max(hi, c)
		if readings%60 == 0 {
			t.Logf("noise: %d readings, %s in state %s", readings, "hv2", e.hostHealth(ctx, "hv2"))
		}
	}
	testenv.Script(t, "sensor", "hv2", "cpu", "45")

	var moves int
	var states, predictions int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM migrations WHERE vnode = $1 AND created_at >= $2`, vn, start).Scan(&moves); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE e.kind = 'state'), count(*) FILTER (WHERE e.kind = 'prediction')
	                                FROM health_events e JOIN hypervisors h ON h.id = e.hypervisor_id
	                                WHERE h.name = 'hv2' AND e.ts >= $1 AND e.ts < $1 + $2::interval`, start, noise.String()).Scan(&states, &predictions); err != nil {
		t.Fatal(err)
	}
	if moves != 0 {
		t.Errorf("%d migrations of %s journaled during the noise, want none", moves, vn)
	}
	if hv := e.where(vn); hv != "hv2" {
		t.Errorf("%s is recorded on %s after the noise, want hv2", vn, hv)
	}
	if states == 0 {
		t.Errorf("no state events for hv2 during the noise: did the agent read 80 ± 3 °C at all?")
	}
	_, gap := e.jobCompletes(id, time.Duration(ticks)*time.Second, 1, ticks)
	t.Logf("noise %v: %d readings %d..%d °C (%d at or above 80), %d state events, %d prediction events for hv2, %d migrations of %s; job %d: %d ticks, largest gap %v",
		noise, readings, lo, hi, above, states, predictions, moves, vn, id, len(e.ticks.of(id, 0)), gap.Round(time.Millisecond))
	r.set("noise", map[string]any{
		"seconds": noise.Seconds(), "seed": strconv.FormatUint(seed, 10), // a string: JSON numbers lose the low digits "readings": readings, "min_c": lo, "max_c": hi, "readings_at_or_above_warning": above,
		"state_events": states, "prediction_events": predictions, "migrations": moves, "vnode": vn, "job": id,
		"ticks": len(e.ticks.of(id, 0)), "max_tick_gap_s": gap.Seconds(),
	})
}

// testEvacuation is (a): a job's VM on hv1, whose CPU warms by 0.5 °C/s (a whole degree every
// 2 s) from 45 °C toward the 90 °C critical bound. drover server must evacuate the VM (journal
// reason evacuation) before the reading reaches 90 °C, and the job must complete with every tick.
// The ramp stops when the VM has left hv1, or fails the test at 100 °C.
func testEvacuation(t *testing.T, r *report) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	e := setup(t)
	testenv.LockBMC(t, "hv1")
	t.Cleanup(func() { testenv.Script(t, "sensor", "hv1", "cpu", "45") })
	// only this test's VM on hv1: another vnode there would be evacuated too, and first when its
	// migration is estimated shorter (an idle vnode may even be powered down by Slurm mid-move)
	e.powerDownAll(testenv.Config(t).Vnodes.Nodes)
	vn := e.coolVnode(ctx)
	// the job outlasts a ramp to 100 °C (110 s) and most of server-crash's trials (about 8 s each),
	// which move the same VM: its ticks are checked when both are over
	ticks := 110 + 8*envInt(t, pftCrashTrialsEnv, 20)
	id := e.hotUntilPlaced(t, ctx, vn, "hv1", "drover-e2e-pft-evac", ticks, 10*time.Minute)
	e.waitTemp(t, ctx, "hv2", 30*time.Second, func(c float64) bool { return c < 80 }, "below 80 °C")
	e.waitTemp(t, ctx, "hv1", 30*time.Second, func(c float64) bool { return c < 50 }, "below 50 °C")
	e.waitHealthy(t, ctx, "hv1") // no breach predicted before the ramp
	t.Logf("job %d ticks on %s (hv1); ramping hv1's CPU from 45 °C by 1 °C every 2 s", id, vn)

	const from, crit = 45, 90
	type step struct {
		c  int
		at time.Time
	}
	var steps []step
	var rampStart time.Time
	if err := e.pool.QueryRow(ctx, `SELECT now()`).Scan(&rampStart); err != nil {
		t.Fatal(err)
	}
	// the first journal row of vn since the ramp began, and the first that finished the move
	var first, moved store.Migration
	poll := func() {
		ms, err := e.st.MigrationsOfVnode(ctx, vn)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.CreatedAt.Before(rampStart) {
				continue
			}
			if first.ID == 0 || m.ID < first.ID {
				first = m
			}
			if m.Phase == "done" && m.Src == "hv1" && (moved.ID == 0 || m.ID < moved.ID) {
				moved = m
			}
		}
	}
	next := time.Now()
	for c := from; moved.ID == 0; c++ {
		if c > 100 {
			t.Fatalf("hv1 reached 100 °C and %s is still there (first journal row since the ramp: %+v); see .testbed/log/drover-server.log", vn, first)
		}
		testenv.Script(t, "sensor", "hv1", "cpu", strconv.Itoa(c))
		steps = append(steps, step{c, time.Now()})
		if c == crit {
			t.Logf("hv1 reads %d °C (critical)", c)
		}
		for next = next.Add(2 * time.Second); time.Now().Before(next) && moved.ID == 0; time.Sleep(100 * time.Millisecond) {
			poll()
		}
	}
	last := steps[len(steps)-1]
	testenv.Script(t, "sensor", "hv1", "cpu", "45")
	t.Logf("ramp stopped at %d °C, %v after it began: %s left hv1 (migration %d)", last.c, last.at.Sub(steps[0].at).Round(time.Second), vn, moved.ID)

	// the reading when drover decided, and when the ramp wrote (or would have written) 90 °C
	readingAt := func(at time.Time) int {
		c := 0
		for _, s := range steps {
			if !s.at.After(at) {
				c = s.c
			}
		}
		return c
	}
	crossing := steps[0].at.Add(time.Duration(crit-from) * 2 * time.Second)
	for _, s := range steps {
		if s.c == crit {
			crossing = s.at
		}
	}
	if first.Reason != "evacuation" || first.Src != "hv1" || first.ID != moved.ID {
		t.Errorf("first move of %s since the ramp: migration %d, reason %q, %s→%s, %s; want the evacuation from hv1 that moved it (migration %d)",
			vn, first.ID, first.Reason, first.Src, first.Dst, first.Phase, moved.ID)
	}
	params := e.params(ctx, moved.ID)
	decided := moved.CreatedAt
	if s, ok := params["decided_at"].(string); ok {
		if d, err := time.Parse(time.RFC3339Nano, s); err == nil {
			decided = d
		}
	}
	if c := readingAt(decided); c >= crit || !decided.Before(crossing) {
		t.Errorf("drover decided to move %s at %s with hv1 at %d °C; want before the reading reached %d °C (%s)",
			vn, decided.Format("15:04:05.000"), c, crit, crossing.Format("15:04:05.000"))
	}
	if hv := e.where(vn); hv != "hv2" {
		t.Errorf("%s recorded on %s after the evacuation, want hv2", vn, hv)
	}

	res := map[string]any{"vnode": vn, "job": id, "migration": moved.ID, "reason": moved.Reason,
		"ramp_c_per_s": 0.5, "reading_at_decision_c": readingAt(decided), "ramp_stopped_at_c": last.c}
	started := decided
	if moved.StartedAt != nil {
		started = *moved.StartedAt
	}
	res["actual_lead_s"] = crossing.Sub(started).Seconds() // the ramp's own clock: 90 °C − migration start
	if moved.FirstByte != nil {
		res["decision_to_first_byte_s"] = moved.FirstByte.Sub(decided).Seconds()
		// the 2007 baseline (Nagarajan et al., proactive FT with Xen): 40 s from the
		// decision to the start of the migration
		res["ratio_decision_to_first_byte_to_2007"] = round(moved.FirstByte.Sub(decided).Seconds()/40, 4)
	}
	if moved.DowntimeMS != nil {
		res["downtime_ms"] = *moved.DowntimeMS
	}
	if moved.TotalMS != nil {
		res["qemu_ms"] = *moved.TotalMS
	}
	if moved.FinishedAt != nil {
		res["decision_to_done_s"] = moved.FinishedAt.Sub(decided).Seconds()
	}
	// the triggering health event (recorded by the control loop) and the prediction behind it
	if evID, ok := params["trigger_event_id"].(float64); ok {
		var kind string
		var ts time.Time
		var value *float64
		var breach *time.Time
		err := e.pool.QueryRow(ctx, `SELECT kind, ts, value, predicted_breach_at FROM health_events WHERE id = $1`, int64(evID)).Scan(&kind, &ts, &value, &breach)
		if err != nil {
			t.Fatal(err)
		}
		res["trigger_kind"] = kind
		if moved.FirstByte != nil {
			res["trigger_event_to_first_byte_s"] = moved.FirstByte.Sub(ts).Seconds()
			// the newest reading the ramp had written when the agent raised the event: from it to
			// the first byte includes the BMC's and the agent's 1 s polls
			written := time.Time{}
			for _, s := range steps {
				if !s.at.After(ts) {
					written = s.at
				}
			}
			if !written.IsZero() {
				res["reading_written_to_first_byte_s"] = moved.FirstByte.Sub(written).Seconds()
			}
			if value != nil {
				res["trigger_value_c"] = *value
			}
		}
		if breach != nil {
			res["predicted_breach_in_s"] = breach.Sub(ts).Seconds()
			res["prediction_lead_s"] = breach.Sub(started).Seconds() // predicted breach − migration start
			res["prediction_error_s"] = breach.Sub(crossing).Seconds()
		}
	} else {
		t.Errorf("migration %d has no trigger_event_id in its params (%v): the control loop records the health event that triggered an evacuation", moved.ID, params)
	}
	if v, ok := params["trigger_to_first_byte_ms"].(float64); ok {
		res["trigger_to_first_byte_ms_by_server"] = v
	}

	b, _ := json.Marshal(res)
	t.Logf("evacuation figures: %s", b)
	r.set("evacuation", res)

	t.Run("server-crash", func(t *testing.T) {
		ce := *e // the same job and listener, failing this subtest
		ce.t = t
		testServerCrash(t, &ce, r, vn, id)
	})

	j, gap := e.jobCompletes(id, time.Duration(ticks)*time.Second, 1, ticks)
	t.Logf("job %d: %d of %d ticks, in order, largest gap %v, through the evacuation and the server's crashes", id, len(e.ticks.of(id, 0)), ticks, gap.Round(time.Millisecond))
	r.set("evacuation_job", map[string]any{"job": id, "ticks": len(e.ticks.of(id, 0)), "want_ticks": ticks,
		"max_tick_gap_s": gap.Seconds(), "completed": j.State == slurm.JobCompleted && j.ExitCode == 0})
}

// params is a journal row's params.
func (e *env) params(ctx context.Context, id int64) map[string]any {
	e.t.Helper()
	var p map[string]any
	if err := e.pool.QueryRow(ctx, `SELECT params FROM migrations WHERE id = $1`, id).Scan(&p); err != nil {
		e.t.Fatalf("params of migration %d: %v", id, err)
	}
	return p
}

// crashTrial is one kill -9 of drover server during a migration it runs.
type crashTrial struct {
	Aimed       string  `json:"aimed"`     // the journal phase the kill was aimed at
	KilledIn    string  `json:"killed_in"` // the row's phase when the server died
	Outcome     string  `json:"outcome"`   // the row's final phase after the restart
	From        string  `json:"from"`
	To          string  `json:"to"`
	RunsOn      string  `json:"runs_on"`      // where the VM ran when the row was settled
	RestartS    float64 `json:"restart_s"`    // scripts/testbed up drover: until the server leads again
	ReconciledS float64 `json:"reconciled_s"` // restart → the row finished
	EvacuatedS  float64 `json:"evacuated_s"`  // restart → the VM off the critical host, nothing unfinished
}

// testServerCrash is (c): the evacuation test's job's VM is evacuated by drover server from a
// hypervisor whose CPU reads 95 °C (critical), back and forth between hv1 and hv2, and the server is killed with
// SIGKILL when the migration's journal row reaches preparing, transferring, switching_over and
// verifying in turn, then restarted (scripts/testbed up drover). Every time the VM must exist
// exactly once and run, and the journal row must be finished within 10 s of the restart.
//
// switching_over lasts a few milliseconds (the journal writes after libvirt's switch-over), too
// short to see by polling: for that trial the test holds a SHARE lock on migration_events once
// the row is transferring, so the server's write of the switching_over event waits, with the
// row's phase already switching_over; the server is killed while it waits.
func testServerCrash(t *testing.T, e *env, r *report, vn string, id int) {
	trials := envInt(t, pftCrashTrialsEnv, 20)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(trials)*2*time.Minute+5*time.Minute)
	defer cancel()
	cfg := testenv.Config(t)
	conns := migrate.NewPool(cfg.Hypervisors, cfg.Libvirt.ConnectTimeout)
	t.Cleanup(func() { _ = conns.Close() })
	testenv.LockBMC(t, "hv2") // the evacuation test holds hv1's
	t.Cleanup(func() {
		testenv.Script(t, "sensor", "hv1", "cpu", "45")
		testenv.Script(t, "sensor", "hv2", "cpu", "45")
		if !alive(serverPID(t)) {
			restartServer(t)
		}
	})
	at := e.where(vn)
	t.Logf("job %d ticks on %s (%s); %d trials", id, vn, at, trials)

	phases := []string{"preparing", "transferring", "switching_over", "verifying"}
	var figures []crashTrial
	defer func() {
		var worst float64
		for i, f := range figures {
			t.Logf("trial %2d: aimed at %-14s killed in %-14s → %-11s runs on %s; restart %.1fs, row finished %.1fs and VM off the critical host %.1fs after it",
				i+1, f.Aimed, f.KilledIn, f.Outcome, f.RunsOn, f.RestartS, f.ReconciledS, f.EvacuatedS)
			worst = max(worst, f.ReconciledS)
		}
		hit := map[string]int{}
		for _, f := range figures {
			if f.KilledIn == f.Aimed {
				hit[f.Aimed]++
			}
		}
		n, gap, err := e.ticks.contiguous(id, 0)
		if err != nil {
			t.Error(err)
		}
		t.Logf("%d trials, slowest reconciliation %.1fs after the restart (goal 10 s); job %d: %d ticks in order, largest gap %v",
			len(figures), worst, id, n, gap.Round(time.Millisecond))
		r.set("server_crash", map[string]any{"trials": figures, "count": len(figures), "killed_in_aimed_phase": hit,
			"max_reconciled_s": worst, "vnode": vn, "job": id, "ticks": n, "max_tick_gap_s": gap.Seconds()})
	}()

	for i := 0; i < trials; i++ {
		f := crashTrial{Aimed: phases[i%len(phases)], From: at, To: other(at)}
		e.crashTrial(t, ctx, conns, vn, &f)
		figures = append(figures, f)
		at = f.To
	}
}

// crashTrial runs one trial: f.From critical, kill the server when the evacuation's row is in
// f.Aimed, restart, check.
func (e *env) crashTrial(t *testing.T, ctx context.Context, conns *migrate.Pool, vn string, f *crashTrial) {
	t.Helper()
	cfg := testenv.Config(t)
	e.waitHealthy(t, ctx, f.To)
	if c := domainsOf(t, ctx, conns, cfg.Hypervisors, vn); len(c) != 1 || !c[f.From].Running() {
		t.Fatalf("before the trial: %s has copies %+v, want one running on %s", vn, c, f.From)
	}
	poll, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer poll.Release()
	var since time.Time
	if err := poll.QueryRow(ctx, `SELECT now()`).Scan(&since); err != nil {
		t.Fatal(err)
	}
	testenv.Script(t, "sensor", f.From, "cpu", "95")

	// wait for the server's row and the aimed phase
	order := map[string]int{"planned": 0, "preparing": 1, "transferring": 2, "switching_over": 3, "verifying": 4,
		"done": 5, "failed": 5, "rolled_back": 5}
	var id int64
	var phase string
	var lock pgx.Tx // the SHARE lock on migration_events, for switching_over
	release := func() {
		if lock != nil {
			_ = lock.Rollback(context.WithoutCancel(ctx))
			lock = nil
		}
	}
	defer release()
	deadline := time.Now().Add(time.Minute)
	for {
		err := poll.QueryRow(ctx, `SELECT id, phase FROM migrations WHERE vnode = $1 AND created_at >= $2 ORDER BY id DESC LIMIT 1`,
			vn, since).Scan(&id, &phase)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if id != 0 && order[phase] >= order[f.Aimed] {
			break
		}
		if f.Aimed == "switching_over" && phase == "transferring" && lock == nil {
			var n int
			if err := poll.QueryRow(ctx, `SELECT count(*) FROM migration_events WHERE migration_id = $1 AND phase = 'transferring'`, id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				conn, err := e.pool.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				tx, err := conn.Begin(ctx)
				if err == nil {
					_, err = tx.Exec(ctx, `LOCK TABLE migration_events IN SHARE MODE`)
				}
				if err != nil {
					conn.Release()
					t.Fatalf("lock migration_events: %v", err)
				}
				lock = tx
				defer conn.Release()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trial aimed at %s: no migration of %s off %s reached it within a minute (row %d in %q); see .testbed/log/drover-server.log",
				f.Aimed, vn, f.From, id, phase)
		}
		time.Sleep(3 * time.Millisecond)
	}
	pid := serverPID(t)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 drover server (pid %d): %v", pid, err)
	}
	for end := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("drover server (pid %d) still alive 10 s after SIGKILL", pid)
		}
	}
	if err := poll.QueryRow(ctx, `SELECT phase FROM migrations WHERE id = $1`, id).Scan(&f.KilledIn); err != nil {
		t.Fatal(err)
	}
	release()

	restart := time.Now()
	restartServer(t)
	f.RestartS = time.Since(restart).Seconds()
	var m store.Migration
	for end := restart.Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if m, err = e.st.GetMigration(ctx, id); err != nil {
			t.Fatal(err)
		}
		if m.FinishedAt != nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("migration %d still %s a minute after the restart", id, m.Phase)
		}
	}
	f.ReconciledS = time.Since(restart).Seconds()
	f.Outcome = m.Phase
	copies := domainsOf(t, ctx, conns, cfg.Hypervisors, vn)
	for hv, d := range copies {
		if d.Running() {
			f.RunsOn = hv
		}
	}
	// exactly one running copy, where the journal says; the only other copy allowed is the
	// paused incoming one of a newer migration the restarted server has already begun (a VM
	// left on the critical host is evacuated again at once)
	want := map[string]string{"done": f.To, "rolled_back": f.From}[m.Phase]
	running := 0
	for hv, d := range copies {
		switch {
		case d.Running():
			running++
		case e.incoming(ctx, vn, id, hv):
		default:
			running = -100 // a stray copy
		}
	}
	if running != 1 || want == "" || !copies[want].Running() {
		t.Fatalf("aimed at %s, killed in %s: migration %d %s (%s), copies of %s %+v; want exactly one, running where the journal says",
			f.Aimed, f.KilledIn, id, m.Phase, m.Error, vn, copies)
	}
	if f.ReconciledS > 10 {
		t.Errorf("aimed at %s, killed in %s: migration %d finished %.1fs after the restart, want within 10 s", f.Aimed, f.KilledIn, id, f.ReconciledS)
	}
	// a guest left on the critical host is evacuated again by the restarted server
	for end := restart.Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		c := domainsOf(t, ctx, conns, cfg.Hypervisors, vn)
		if uid, _ := e.unfinished(ctx, vn); uid == 0 && len(c) == 1 && c[f.To].Running() {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%s not evacuated from the critical %s within 2 minutes of the restart (copies %+v)", vn, f.From, c)
		}
	}
	f.EvacuatedS = time.Since(restart).Seconds()
	testenv.Script(t, "sensor", f.From, "cpu", "45")
	if hv := e.where(vn); hv != f.To {
		t.Errorf("%s recorded on %s, runs on %s", vn, hv, f.To)
	}
}

// incoming reports whether a migration of vnode newer than id, to hv, is under way.
func (e *env) incoming(ctx context.Context, vnode string, id int64, hv string) bool {
	var n int
	err := e.pool.QueryRow(ctx, `SELECT count(*) FROM migrations m JOIN hypervisors d ON d.id = m.dst_hypervisor_id
	                             WHERE m.vnode = $1 AND m.id > $2 AND d.name = $3 AND m.phase NOT IN ('done', 'failed', 'rolled_back')`,
		vnode, id, hv).Scan(&n)
	return err == nil && n > 0
}

// staleReported remembers the tests that already reported a stale prediction.
var staleReported sync.Map

// waitHealthy waits until drover records hv as ok with no predicted breach, so that it can take
// an evacuated VM and is no evacuation source itself; the caller holds hv's BMC. A prediction
// whose time has passed stays in host_health until hv's next health event (nothing withdraws
// it when the temperature falls again), and the control loop takes it for a breach due now:
// the test reports that once and clears it with a short excursion to 81 °C (warning and back,
// two state events).
func (e *env) waitHealthy(t *testing.T, ctx context.Context, hv string) {
	t.Helper()
	read := func() (string, *time.Time, bool) {
		var state string
		var breach *time.Time
		var past bool
		err := e.pool.QueryRow(ctx, `SELECT hh.state, hh.predicted_breach_at, coalesce(hh.predicted_breach_at <= now(), false)
		                             FROM host_health hh JOIN hypervisors h ON h.id = hh.hypervisor_id WHERE h.name = $1`, hv).Scan(&state, &breach, &past)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		return state, breach, past
	}
	bumps := 0
	for end := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		state, breach, past := read()
		if state == "ok" && breach == nil {
			return
		}
		if state == "ok" && past && bumps < 3 {
			if _, dup := staleReported.LoadOrStore(t.Name(), true); !dup {
				// host_health keeps a passed prediction until the sensor's next event; the fleet view
				// ignores it (internal/fleet), so this is a note, not a failure
				t.Logf("%s reads ok and host_health still holds a breach predicted for %s, now past (the server ignores it); clearing it with a reading of 81 °C",
					hv, breach.Format("15:04:05"))
			}
			bumps++
			testenv.Script(t, "sensor", hv, "cpu", "81")
			for until := time.Now().Add(10 * time.Second); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
				if s, _, _ := read(); s == "warning" {
					break
				}
			}
			testenv.Script(t, "sensor", hv, "cpu", "45")
			continue
		}
		if time.Now().After(end) {
			t.Fatalf("%s not healthy within a minute (state %q, predicted breach %v)", hv, state, breach)
		}
	}
}
