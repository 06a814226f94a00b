package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/virt"
)

// Views the decision table distinguishes, as libvirt would report them.
var (
	vAbsent      = domainView{}
	vDefined     = domainView{Exists: true, Persistent: true, State: virt.StateShutOff}
	vRunning     = domainView{Exists: true, Active: true, State: virt.StateRunning}
	vRunningP    = domainView{Exists: true, Active: true, Persistent: true, State: virt.StateRunning}
	vPaused      = domainView{Exists: true, Active: true, State: virt.StatePaused, Migrating: true}
	vPausedP     = domainView{Exists: true, Active: true, Persistent: true, State: virt.StatePaused}
	vCrashed     = domainView{Exists: true, Active: true, State: virt.StateCrashed}
	vPostCopy    = domainView{Exists: true, Active: true, State: virt.StatePaused, PostCopy: true}
	vUnreachable = domainView{Err: errors.New("connect: connection refused")}
)

func withJob(v domainView) domainView { v.Job = true; return v }

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name     string
		phase    Phase
		src, dst domainView
		keep     side
		outcome  Phase // "" left for an operator
		steps    string
		operator bool
	}{
		// killed before or during the copy: libvirt tore the incoming domain down, the source runs on
		{"copy interrupted, destination gone", PhaseTransferring, vRunning, vAbsent, source, PhaseRolledBack, "", false},
		// the incoming domain still exists (paused, its job over): destroyed; transient, so nothing to undefine
		{"incoming leftover", PhasePreparing, vRunning, vPaused, source, PhaseRolledBack, "destroy destination", false},
		// a persistent leftover is undefined as well
		{"persistent leftover", PhaseTransferring, vRunningP, vPausedP, source, PhaseRolledBack,
			"destroy destination, undefine destination", false},
		{"defined leftover", PhasePlanned, vRunningP, vDefined, source, PhaseRolledBack, "undefine destination", false},
		// the incoming migration still has its job, the source none: destroying it is how libvirt cancels it
		{"incoming with a job", PhaseTransferring, vRunning, withJob(vPaused), source, PhaseRolledBack, "destroy destination", false},
		// the source still migrates after the abort: the migration may yet complete, nothing is touched
		{"source job still active", PhaseTransferring, withJob(vRunning), vPaused, nowhere, "", "", true},
		// killed after libvirt returned: the guest is on the destination
		{"handed over", PhaseVerifying, vAbsent, vRunningP, destination, PhaseDone, "", false},
		// the source definition outlived the handover (killed between Finish and Confirm)
		{"source definition left", PhaseSwitchingOver, vDefined, vRunningP, destination, PhaseDone, "undefine source", false},
		// killed between Finish (destination resumed) and Confirm (source removed): source still paused
		{"between finish and confirm", PhaseTransferring, vPausedP, vRunningP, destination, PhaseDone,
			"destroy source, undefine source", false},
		// killed between Perform and Finish: the destination was torn down, the source paused at switch-over
		{"paused at switch-over", PhaseTransferring, vPaused, vAbsent, source, PhaseRolledBack, "resume source", false},
		// both paused: the destination never ran, so the source holds the complete state
		{"both paused", PhaseSwitchingOver, vPausedP, vPaused, source, PhaseRolledBack,
			"destroy destination, resume source", false},
		{"only the destination has memory", PhaseVerifying, vDefined, vPausedP, destination, PhaseDone,
			"undefine source, resume destination", false},
		{"crashed on the destination", PhaseVerifying, vAbsent, vCrashed, nowhere, "", "", true},
		{"crashed leftover beside a running source", PhaseTransferring, vRunning, vCrashed, source, PhaseRolledBack,
			"destroy destination", false},
		// nothing runs: start from the definition that owns the latest state, the journal says which
		{"shut off on both, before handover", PhaseTransferring, vDefined, vDefined, source, PhaseFailed,
			"start source, undefine destination", true},
		{"shut off on both, after handover", PhaseVerifying, vDefined, vDefined, destination, PhaseFailed,
			"start destination, undefine source", true},
		{"shut off on the source only", PhaseVerifying, vDefined, vAbsent, source, PhaseFailed, "start source", true},
		{"lost", PhaseTransferring, vAbsent, vAbsent, nowhere, PhaseFailed, "", true},
		{"two copies run", PhaseTransferring, vRunning, vRunning, nowhere, "", "", true},
		{"post-copy interrupted", PhaseTransferring, vPostCopy, vRunning, nowhere, "", "", true},
		{"destination unreachable", PhaseTransferring, vRunning, vUnreachable, nowhere, "", "", true},
		{"source unreachable", PhaseVerifying, vUnreachable, vRunning, nowhere, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(tc.phase, tc.src, tc.dst)
			var steps []string
			for _, s := range d.steps {
				steps = append(steps, string(s.op)+" "+s.on.String())
			}
			if d.keep != tc.keep || d.outcome != tc.outcome || strings.Join(steps, ", ") != tc.steps || d.operator != tc.operator {
				t.Errorf("decide = keep %s, outcome %q, steps %q, operator %v (%s)\nwant keep %s, outcome %q, steps %q, operator %v",
					d.keep, d.outcome, steps, d.operator, d.why, tc.keep, tc.outcome, tc.steps, tc.operator)
			}
			if d.why == "" || d.operator && d.hint == "" {
				t.Errorf("decision %+v lacks its reason or an operator's hint", d)
			}
		})
	}
}

// fakeHost is one hypervisor holding at most one domain, changed the way libvirt would.
type fakeHost struct {
	v        domainView
	jobLooks int  // the job ends by itself after this many inspections (while v.Job)
	stuckJob bool // aborting the job does not end it
	failOp   opKind
	ops      []string
}

func (h *fakeHost) Inspect(context.Context, string) domainView {
	if h.v.Job && !h.stuckJob {
		if h.jobLooks--; h.jobLooks < 0 {
			h.v.Job = false
		}
	}
	return h.v
}

func (h *fakeHost) do(op opKind, fn func() error) error {
	h.ops = append(h.ops, string(op))
	if h.v.Err != nil {
		return h.v.Err
	}
	if op == h.failOp {
		return fmt.Errorf("fake %s failed", op)
	}
	if !h.v.Exists {
		return fmt.Errorf("fake: %w", virt.ErrNoDomain)
	}
	return fn()
}

func (h *fakeHost) AbortJob(context.Context, string) error {
	return h.do("abort", func() error {
		if !h.stuckJob {
			h.v.Job = false
		}
		return nil
	})
}

func (h *fakeHost) Resume(context.Context, string) error {
	return h.do(opResume, func() error {
		if h.v.State != virt.StatePaused {
			return fmt.Errorf("fake: resume a %s domain: %w", h.v.State, virt.ErrWrongState)
		}
		h.v.State, h.v.Migrating = virt.StateRunning, false
		return nil
	})
}

func (h *fakeHost) Destroy(context.Context, string) error {
	return h.do(opDestroy, func() error {
		if !h.v.Active {
			return fmt.Errorf("fake: %w", virt.ErrWrongState)
		}
		h.v.Active, h.v.State, h.v.Job = false, virt.StateShutOff, false
		if !h.v.Persistent {
			h.v = domainView{}
		}
		return nil
	})
}

func (h *fakeHost) Undefine(context.Context, string) error {
	return h.do(opUndefine, func() error {
		h.v.Persistent = false
		if !h.v.Active {
			h.v = domainView{}
		}
		return nil
	})
}

func (h *fakeHost) Start(context.Context, string) error {
	return h.do(opStart, func() error {
		if h.v.Active {
			return fmt.Errorf("fake: %w", virt.ErrWrongState)
		}
		h.v.Active, h.v.State = true, virt.StateRunning
		return nil
	})
}

func (h *fakeHost) Close() error { return nil }

func fakeExecutor(t *testing.T) *Executor {
	e := New(config.Migration{}, nil, nil, zerolog.New(zerolog.NewTestWriter(t)))
	e.jobWait, e.abortWait, e.settlePoll = 30*time.Millisecond, 30*time.Millisecond, time.Millisecond
	return e
}

func resolveFakes(t *testing.T, e *Executor, phase Phase, src, dst *fakeHost) (Finding, decision) {
	f := Finding{VNode: "vn1", From: "hv1", To: "hv2", Phase: phase}
	s := &sides{vnode: "vn1", src: src, dst: dst}
	return f, e.resolve(context.Background(), s, &f)
}

// Every pair of views the table knows, in every phase: resolving leaves exactly one running copy
// where the finding says (or, left to an operator, touches nothing), and resolving again finds
// nothing more to do.
func TestResolveSettlesEveryCase(t *testing.T) {
	e := fakeExecutor(t)
	views := map[string]domainView{"absent": vAbsent, "defined": vDefined, "running": vRunning, "running-persistent": vRunningP,
		"paused": vPaused, "paused-persistent": vPausedP, "crashed": vCrashed, "post-copy": vPostCopy, "unreachable": vUnreachable,
		"incoming-job": withJob(vPaused)}
	phases := []Phase{PhasePlanned, PhasePreparing, PhaseTransferring, PhaseSwitchingOver, PhaseVerifying}
	for _, phase := range phases {
		for sn, sv := range views {
			for dn, dv := range views {
				name := fmt.Sprintf("%s/%s/%s", phase, sn, dn)
				src, dst := &fakeHost{v: sv}, &fakeHost{v: dv}
				f, dec := resolveFakes(t, e, phase, src, dst)
				running := 0
				for _, h := range []*fakeHost{src, dst} {
					if h.v.Err == nil && classify(h.v) == kRunning {
						running++
					}
				}
				switch {
				case f.Outcome != "" && f.RunsOn != "":
					kept := map[string]*fakeHost{"hv1": src, "hv2": dst}[f.RunsOn]
					if running != 1 || classify(kept.v) != kRunning {
						t.Errorf("%s: runs on %s per the finding, but source %s, destination %s", name, f.RunsOn, src.v, dst.v)
					}
				case f.Outcome != "": // lost
					if running != 0 || !f.NeedsOperator {
						t.Errorf("%s: lost per the finding, but source %s, destination %s", name, src.v, dst.v)
					}
				default: // left to an operator: untouched
					if !f.NeedsOperator || len(src.ops)+len(dst.ops) > 0 && !strings.Contains(name, "job") {
						t.Errorf("%s: left unfinished, operator %v, but acted: %v %v", name, f.NeedsOperator, src.ops, dst.ops)
					}
				}
				if f.Outcome != "" {
					if again := decide(phase, src.v, dst.v); len(again.steps) > 0 && again.outcome != PhaseFailed {
						t.Errorf("%s: after resolving (%+v), the table still wants %+v", name, dec, again.steps)
					}
				}
			}
		}
	}
}

// A migration job still running in libvirtd after its owner died is waited for, or aborted.
func TestResolveWaitsForJobs(t *testing.T) {
	e := fakeExecutor(t)
	// the source notices the destination is gone and ends its job by itself
	src, dst := &fakeHost{v: withJob(vRunning), jobLooks: 2}, &fakeHost{v: vAbsent}
	f, _ := resolveFakes(t, e, PhaseTransferring, src, dst)
	if f.Outcome != PhaseRolledBack || f.RunsOn != "hv1" || len(src.ops) != 0 {
		t.Errorf("job that ends alone: %+v, source ops %v", f, src.ops)
	}
	// a job that outlives jobWait is aborted
	src, dst = &fakeHost{v: withJob(vRunning), jobLooks: 1 << 30}, &fakeHost{v: withJob(vPaused), jobLooks: 1 << 30}
	f, _ = resolveFakes(t, e, PhaseTransferring, src, dst)
	if f.Outcome != PhaseRolledBack || fmt.Sprint(src.ops) != "[abort]" || fmt.Sprint(dst.ops) != "[abort destroy]" ||
		!strings.Contains(strings.Join(f.Did, "; "), "aborted the libvirt job on hv1") {
		t.Errorf("aborted job: %+v, source ops %v, destination ops %v", f, src.ops, dst.ops)
	}
	// a job that survives its abort: nothing else is touched
	src, dst = &fakeHost{v: withJob(vRunning), stuckJob: true}, &fakeHost{v: vPaused}
	f, _ = resolveFakes(t, e, PhaseTransferring, src, dst)
	if f.Outcome != "" || !f.NeedsOperator || fmt.Sprint(src.ops) != "[abort]" || len(dst.ops) != 0 ||
		!strings.Contains(f.Hint, "virsh domjobabort") {
		t.Errorf("stuck job: %+v, source ops %v, destination ops %v", f, src.ops, dst.ops)
	}
}

// An action that fails leaves the migration to an operator, saying what failed.
func TestResolveActionFails(t *testing.T) {
	e := fakeExecutor(t)
	src, dst := &fakeHost{v: vPaused, failOp: opResume}, &fakeHost{v: vAbsent}
	f, _ := resolveFakes(t, e, PhaseTransferring, src, dst)
	if f.Outcome != "" || !f.NeedsOperator || f.RunsOn != "" || !strings.Contains(strings.Join(f.Did, ";"), "resume on hv1 failed: fake resume failed") ||
		!strings.Contains(f.Note, "not running") {
		t.Errorf("failed resume: %+v", f)
	}
}

func TestCheckLimits(t *testing.T) {
	row := func(id int64, vn, src, dst string) store.Unfinished {
		return store.Unfinished{Migration: store.Migration{ID: id, VNode: vn, Src: src, Dst: dst, Phase: "transferring"}, Owner: "n1:42"}
	}
	m12 := row(12, "vn3", "hv2", "hv3")
	m13 := row(13, "vn4", "hv4", "hv5")
	for _, tc := range []struct {
		name     string
		active   []store.Unfinished
		src, dst string
		cfg      config.Migration
		want     string // "" admitted
	}{
		{"nothing under way", nil, "hv1", "hv2", config.Migration{}, ""},
		// hv2 is the source of migration 12: incoming and outgoing count alike, default 1 per host
		{"destination busy", []store.Unfinished{m12}, "hv1", "hv2", config.Migration{},
			"migration limit reached: migration.max_per_hypervisor is 1 and hv2 already takes part in 1: " +
				"migration 12 of vn3 (hv2 → hv3, transferring, owner n1:42)"},
		{"source busy", []store.Unfinished{m12}, "hv3", "hv1", config.Migration{}, "hv3 already takes part in 1"},
		{"room on the host", []store.Unfinished{m12}, "hv1", "hv2", config.Migration{MaxPerHypervisor: 2}, ""},
		// two elsewhere: the default cluster-wide limit of 2 is reached
		{"cluster full", []store.Unfinished{m12, m13}, "hv1", "hv6", config.Migration{},
			"migration.max_concurrent is 2 and 2 are under way: migration 12 of vn3 (hv2 → hv3, transferring, owner n1:42), migration 13"},
		{"cluster has room", []store.Unfinished{m12, m13}, "hv1", "hv6", config.Migration{MaxConcurrent: 3}, ""},
	} {
		err := checkLimits(tc.active, tc.src, tc.dst, tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrLimit)):
			t.Errorf("%s: err = %v, want ErrLimit with %q", tc.name, err, tc.want)
		}
	}
}
