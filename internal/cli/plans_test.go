package cli

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/drover-hpc/drover/scheduler"
)

// The plan and drain verbs on a schema of their own: listing, rejecting, bad ids and unknown
// hypervisors named with what exists, drain and undrain, and --wait giving up with a hint when
// no server evacuates.
func TestPlanAndDrainCommands(t *testing.T) {
	cfg, st := migrateEnv(t)
	ctx := context.Background()
	drover := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, append([]string{"--config", cfg}, args...)...)
	}

	if code, out, errs := drover("plans"); code != 0 || !strings.Contains(out, "no pending plans") {
		t.Errorf("plans with none: %d %q %q", code, out, errs)
	}
	id, err := st.InsertPlan(ctx, "evacuation", "vn1 hv1→hv2 (evacuation)",
		[]scheduler.Move{{VNode: "vn1", From: "hv1", To: "hv2", Reason: "evacuation", Priority: 1, Why: "hv1 is critical"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ids := strconv.FormatInt(id, 10)
	code, out, errs := drover("plans")
	if code != 0 || !strings.Contains(out, "pending (proposed)") || !strings.Contains(out, "vn1") || !strings.Contains(out, "hv1 is critical") {
		t.Errorf("plans: %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = drover("plans", "--json")
	var ps []planOut
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 1 || ps[0].ID != id || len(ps[0].Moves) != 1 || ps[0].Moves[0].To != "hv2" {
		t.Errorf("plans --json: %d %q", code, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"approve", "abc"}, `"abc" is not a plan id`},
		{[]string{"approve", "999999"}, "plan 999999: not found (plans: newest [" + ids + "]"},
		{[]string{"reject", "0"}, `"0" is not a plan id`},
		{[]string{"drain", "hv9"}, `hypervisor "hv9": not found (known: [hv1 hv2])`},
		{[]string{"undrain", "hv9"}, `hypervisor "hv9": not found (known: [hv1 hv2])`},
		{[]string{"drain"}, "accepts 1 arg(s), received 0"},
	} {
		if code, out, errs := drover(tc.args...); code == 0 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("drover %v: exit %d, stdout %q, stderr %q; want a failure saying %q", tc.args, code, out, errs, tc.want)
		}
	}

	if code, out, errs := drover("reject", ids, "--reason", "not now"); code != 0 || !strings.Contains(out, "plan "+ids+" rejected") {
		t.Errorf("reject: %d %q %q", code, out, errs)
	}
	if code, _, errs := drover("reject", ids); code != 1 || !strings.Contains(errs, "it is rejected by ") || !strings.Contains(errs, "(not now)") {
		t.Errorf("second reject: %d %q, want a refusal saying it is rejected, and why", code, errs)
	}
	if code, out, _ := drover("plans", "--all"); code != 0 || !strings.Contains(out, "rejected by ") || !strings.Contains(out, "not now") {
		t.Errorf("plans --all: %d\n%s", code, out)
	}

	if code, out, errs := drover("drain", "hv2"); code != 0 || !strings.Contains(out, "hv2: active → draining") {
		t.Errorf("drain: %d %q %q", code, out, errs)
	}
	// no server leads in this schema: nobody finishes the drain, --wait gives up with a hint
	if code, _, errs := drover("drain", "hv2", "--wait", "--timeout", "1500ms"); code != 1 || !strings.Contains(errs, "is a drover server leading?") ||
		!strings.Contains(errs, "hv2: draining, 0 vnodes left") {
		t.Errorf("drain --wait without a server: %d %q", code, errs)
	}
	if code, out, errs := drover("undrain", "hv2"); code != 0 || !strings.Contains(out, "hv2: draining → active") {
		t.Errorf("undrain: %d %q %q", code, out, errs)
	}
}
