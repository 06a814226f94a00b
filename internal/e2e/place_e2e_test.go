//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/slurm"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/scheduler"
)

// TestPlacementAvoidsHotHypervisor: hv1's BMC reports a hot CPU (88 °C, past the 80 °C warning
// bound, short of the 90 °C critical one) and a high power draw (850 W). A job submitted to the
// migratable partition makes Slurm resume a vnode; the resume hook asks drover server, whose
// view comes from the agents' readings of both BMCs, and the VM must start on hv2. `drover
// explain JOB` must show both hypervisors, hv2 chosen and hv1 scored lower on heat and power.
func TestPlacementAvoidsHotHypervisor(t *testing.T) {
	e := setup(t)
	// every vnode powered down first: the job's vnode must be placed now, not found running
	e.powerDownAll(testenv.Config(t).Vnodes.Nodes)
	testenv.LockBMC(t, "hv1")
	testenv.LockBMC(t, "hv2")
	t.Cleanup(func() {
		testenv.Script(t, "sensor", "hv1", "cpu", "45")
		testenv.Script(t, "sensor", "hv1", "power", "300")
	})
	testenv.Script(t, "sensor", "hv2", "cpu", "45")
	testenv.Script(t, "sensor", "hv2", "power", "300")
	testenv.Script(t, "sensor", "hv1", "cpu", "88")
	testenv.Script(t, "sensor", "hv1", "power", "850")
	hot := time.Now()

	// the agents read BMCs every second and the server refreshes on each health event
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var t1, t2 *float64
		err := e.pool.QueryRow(ctx, `SELECT max(k.temp_max_celsius) FILTER (WHERE h.name = 'hv1'),
		                                    max(k.temp_max_celsius) FILTER (WHERE h.name = 'hv2')
		                             FROM host_kpi_now k JOIN hypervisors h ON h.id = k.hypervisor_id
		                             WHERE k.ts > now() - interval '10 seconds'`).Scan(&t1, &t2)
		if err == nil && t1 != nil && t2 != nil && *t1 >= 88 && *t2 < 80 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agents' readings did not show hv1 hot and hv2 cool within 30 s (hv1 %v, hv2 %v, %v): is `scripts/testbed status` all up?", deref(t1), deref(t2), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	seen := time.Since(hot)

	id := e.submit("drover-e2e-place", 1, "#!/bin/sh\nhostname\n")
	start := time.Now()
	j := e.waitState(id, 4*time.Minute, func(j slurm.Job) bool { return j.State.Finished() || j.State == slurm.JobRunning }, "running")
	vnode := j.Nodes
	t.Cleanup(func() { e.powerDownAll(vnode) })
	// Slurm says RUNNING (configuring) as soon as it asks for the node; the VM comes a moment later
	var hv string
	for end := time.Now().Add(2 * time.Minute); hv == "" && time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if v, err := e.st.GetVnode(ctx, vnode); err == nil && v.State != "absent" && v.State != "failed" {
			hv = v.Hypervisor
		}
	}
	resumed := time.Since(start)
	if hv != "hv2" {
		t.Errorf("vnode %s of job %d runs on %q, want hv2 (hv1 is hot)", vnode, id, hv)
	}
	j, _ = e.jobCompletes(id, 4*time.Minute, 0, 0)

	out, err := exec.Command(e.bin, "explain", "--json", "--limit", "1", vnode).CombinedOutput()
	if err != nil {
		t.Fatalf("drover explain %s: %v\n%s", vnode, err, out)
	}
	var docs []scheduler.Decision
	if err := json.Unmarshal(out, &docs); err != nil || len(docs) != 1 {
		t.Fatalf("drover explain --json: %v\n%s", err, out)
	}
	d := docs[0]
	v1, v2 := verdictOf(d, "hv1"), verdictOf(d, "hv2")
	if d.Host != "hv2" || v1 == nil || v2 == nil {
		t.Fatalf("decision chose %q with verdicts %+v", d.Host, d.Verdicts)
	}
	if v1.Feasible && v1.Score >= v2.Score {
		t.Errorf("hv1 scored %.1f, hv2 %.1f: the hot host must score lower", v1.Score, v2.Score)
	}
	if v1.Feasible && scoreOf(v1, scheduler.ScoreThermal) >= scoreOf(v2, scheduler.ScoreThermal) {
		t.Errorf("thermal: hv1 %.1f, hv2 %.1f; want hv1 lower", scoreOf(v1, scheduler.ScoreThermal), scoreOf(v2, scheduler.ScoreThermal))
	}
	table, err := exec.Command(e.bin, "explain", "--limit", "1", vnode).CombinedOutput()
	if err != nil || !strings.Contains(string(table), "hv1") || !strings.Contains(string(table), "hv2") {
		t.Errorf("drover explain %s: %v\n%s", vnode, err, table)
	}
	t.Logf("drover explain %s:\n%s", vnode, table)
	writeResult(t, "e2e-place", map[string]any{
		"test": "placement-avoids-hot-hypervisor", "job": id, "vnode": vnode, "hypervisor": d.Host,
		"hv1_score": v1.Score, "hv2_score": v2.Score, "hv1_verdict": v1.Reason,
		"hot_reading_seen_s": seen.Seconds(), "submit_to_vm_started_s": resumed.Seconds(),
	})
}

func verdictOf(d scheduler.Decision, host string) *scheduler.Verdict {
	for i := range d.Verdicts {
		if d.Verdicts[i].Host == host {
			return &d.Verdicts[i]
		}
	}
	return nil
}

func scoreOf(v *scheduler.Verdict, scorer string) float64 {
	for _, s := range v.Scores {
		if s.Scorer == scorer {
			return s.Normalized
		}
	}
	return -1
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
