package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/testenv"
	"github.com/drover-hpc/drover/scheduler"
)

// explain prints a stored decision's per-host table: hv1 dropped as unhealthy, hv2 chosen.
func TestExplainPrintsEveryHost(t *testing.T) {
	cfg, st := migrateEnv(t)
	ctx := context.Background()
	if err := st.SyncHypervisors(ctx, testenv.Config(t).Hypervisors); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pipe, err := scheduler.NewPipeline(scheduler.Config{})
	if err != nil {
		t.Fatal(err)
	}
	hosts := []scheduler.Host{
		{Name: "hv1", Reachable: true, CPUs: 8, MemoryMiB: 8192, KPIAt: now, Health: "critical", TempC: 93},
		{Name: "hv2", Reachable: true, CPUs: 8, MemoryMiB: 8192, KPIAt: now, Health: "ok", TempC: 50},
	}
	d := pipe.Place(scheduler.Request{VNode: "vn1", JobID: 42, CPUs: 1, MemoryMiB: 512, Now: now}, hosts)
	if d.Host != "hv2" {
		t.Fatalf("decision %+v: want hv2", d)
	}
	job := int64(42)
	if _, err := st.InsertPlacement(ctx, store.Placement{VNode: "vn1", JobID: &job, Hypervisor: d.Host, Outcome: "placed",
		Policy: d.Policy, Reason: d.Reason, Explain: d}); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"vn1", "42"} {
		code, out, errs := run(t, "--config", cfg, "explain", arg)
		if code != 0 {
			t.Fatalf("explain %s: exit %d: %s", arg, code, errs)
		}
		for _, want := range []string{"vnode vn1, job 42 → hv2", "hv1", scheduler.ReasonUnhealthy, "hv2"} {
			if !strings.Contains(out, want) {
				t.Errorf("explain %s: no %q in\n%s", arg, want, out)
			}
		}
	}
	code, out, _ := run(t, "--config", cfg, "explain", "--json", "vn1")
	var docs []scheduler.Decision
	if code != 0 || json.Unmarshal([]byte(out), &docs) != nil || len(docs) != 1 || len(docs[0].Verdicts) != 2 {
		t.Errorf("explain --json: exit %d, %q", code, out)
	}
	if code, _, errs := run(t, "--config", cfg, "explain", "vn9"); code != 1 || !strings.Contains(errs, "no placement decision recorded for vn9") {
		t.Errorf("unknown vnode: exit %d, %q", code, errs)
	}
	if code, _, errs := run(t, "--config", cfg, "explain", "vn1'; DROP TABLE placements;--"); code == 0 || !strings.Contains(errs, "neither a job id nor a vnode name") {
		t.Errorf("bad name: exit %d, %q", code, errs)
	}
}
