package migrate

import (
	"fmt"

	"github.com/drover-hpc/drover/internal/virt"
)

// side is one end of a journaled migration.
type side int

const (
	nowhere side = iota
	source
	destination
)

func (s side) String() string {
	return [...]string{nowhere: "nowhere", source: "source", destination: "destination"}[s]
}

// opKind is one libvirt action reconciliation may take.
type opKind string

const (
	opResume   opKind = "resume"
	opDestroy  opKind = "destroy"
	opUndefine opKind = "undefine"
	opStart    opKind = "start"
)

// step is one action on one side.
type step struct {
	on side
	op opKind
}

// decision is what reconciliation does with one unfinished migration.
type decision struct {
	keep     side  // where the vnode runs afterwards; nowhere when it is lost or left to an operator
	outcome  Phase // the final phase to journal; "" leaves the row unfinished for an operator
	steps    []step
	why      string // the line of the table that applied
	operator bool   // someone must look: the guest is not settled, or it lost its memory
	hint     string // what that someone should do
}

// kind is a domain view reduced to what the decision table distinguishes.
type kind int

const (
	kUnreachable kind = iota // the hypervisor did not answer
	kAbsent                  // no domain of that name
	kDefined                 // defined but shut off: no memory state
	kRunning                 // executing (running or blocked)
	kPaused                  // active and paused: QEMU holds the guest's memory
	kBroken                  // active but crashed, shutting down, suspended or in no known state
)

func classify(v domainView) kind {
	switch {
	case v.Err != nil:
		return kUnreachable
	case !v.Exists:
		return kAbsent
	case !v.Active:
		return kDefined
	case v.State == virt.StateRunning || v.State == virt.StateBlocked:
		return kRunning
	case v.State == virt.StatePaused:
		return kPaused
	}
	return kBroken
}

// afterHandover reports whether the journal says libvirt had completed the migration: the
// executor journals switching_over only once libvirt returned success, when the guest was resumed
// on the destination and the source copy removed.
func afterHandover(p Phase) bool { return p == PhaseSwitchingOver || p == PhaseVerifying }

// decide is reconciliation's decision table: from the phase the journal was left in and what each
// hypervisor holds once libvirt's jobs have settled (see settle), what to do so that exactly one
// copy of the guest runs. "drop X" means destroy X's copy if it is active and undefine it if it is
// persistent. Rows are tried top to bottom; the first that matches applies.
//
//	source               destination          action                                 journal
//	-------------------  -------------------  -------------------------------------  -----------
//	unreachable          any                  nothing: a copy there cannot be ruled  left, operator
//	any                  unreachable            out
//	post-copy on either side                  nothing: memory is split between them  left, operator
//	running              running              nothing: two copies execute            left, operator
//	running              absent/defined/      drop destination                       rolled_back
//	                     paused/broken
//	absent/defined/      running              drop source (QEMU resumes the          done
//	paused/broken                               destination only after handover)
//	paused               absent/defined/      drop destination, resume source (the   rolled_back
//	                     paused/broken          source keeps the complete state until
//	                                            the destination has run)
//	absent/defined/      paused               drop source, resume destination (the   done
//	broken                                      only copy with memory)
//	broken               absent/defined       nothing: look at the crashed copy      left, operator
//	absent/defined       broken                 first
//	defined              absent/defined       start where the latest definition is:  failed, operator
//	absent               defined                the destination after handover       (memory lost)
//	                                            (switching_over, verifying), else the
//	                                            source; undefine the other
//	absent               absent               nothing left to start                  failed, operator
//
// While a libvirt job is still active on the source, or on a destination that is not being
// destroyed, every row turns into "left, operator" (see guardJobs).
func decide(phase Phase, src, dst domainView) decision {
	s, d := classify(src), classify(dst)
	var dec decision
	switch {
	case s == kUnreachable || d == kUnreachable:
		dec = decision{why: "a hypervisor did not answer: a copy there cannot be ruled out", operator: true,
			hint: "bring libvirtd back (drover check), then run drover reconcile again"}
	case src.PostCopy || dst.PostCopy:
		dec = decision{why: "a post-copy migration was interrupted: the guest's memory is split between source and destination",
			operator: true, hint: "recover it with virsh migrate --postcopy --postcopy-resume, or destroy both copies and restart the vnode"}
	case s == kRunning && d == kRunning:
		dec = decision{why: "the guest executes on both hypervisors", operator: true,
			hint: "find the copy its job uses (console log, slurmd), destroy the other with virsh destroy, then run drover reconcile"}
	case s == kRunning:
		dec = decision{keep: source, outcome: PhaseRolledBack, steps: drop(destination, dst),
			why: "the guest runs on the source only: the migration did not take effect"}
	case d == kRunning:
		dec = decision{keep: destination, outcome: PhaseDone, steps: drop(source, src),
			why: "the guest runs on the destination: libvirt completed the handover"}
	case s == kPaused:
		dec = decision{keep: source, outcome: PhaseRolledBack, steps: append(drop(destination, dst), step{source, opResume}),
			why: "the guest is paused on the source and runs nowhere: the source holds its complete state"}
	case d == kPaused:
		dec = decision{keep: destination, outcome: PhaseDone, steps: append(drop(source, src), step{destination, opResume}),
			why: "the only copy with memory is paused on the destination"}
	case s == kBroken || d == kBroken:
		dec = decision{why: "the guest's only active copy is crashed or stuck", operator: true,
			hint: "look at it (virsh domstate --reason, the console log), destroy it, then run drover reconcile"}
	case s == kDefined || d == kDefined:
		keep, other, otherView := source, destination, dst
		if (afterHandover(phase) && d == kDefined) || s != kDefined {
			keep, other, otherView = destination, source, src
		}
		dec = decision{keep: keep, outcome: PhaseFailed, steps: []step{{keep, opStart}}, operator: true,
			why:  "the guest runs nowhere and its memory is gone: started from the " + keep.String() + "'s definition",
			hint: "the guest rebooted: requeue the job that ran on it"}
		if classify(otherView) == kDefined {
			dec.steps = append(dec.steps, step{other, opUndefine})
		}
	default:
		dec = decision{outcome: PhaseFailed, operator: true, why: "the guest exists on neither hypervisor: it is lost",
			hint: "restart the vnode (Slurm resumes it for a job) and requeue the job that ran on it"}
	}
	return guardJobs(dec, src, dst)
}

// drop removes a side's copy: destroy it if active, undefine it if persistent.
func drop(s side, v domainView) []step {
	var out []step
	if v.Err == nil && v.Exists && v.Active {
		out = append(out, step{s, opDestroy})
	}
	if v.Err == nil && v.Exists && v.Persistent {
		out = append(out, step{s, opUndefine})
	}
	return out
}

// guardJobs leaves a decision to an operator while a libvirt job is still active: on the source
// the migration may yet complete, and acting on a domain whose outgoing migration is being aborted
// can crash libvirtd 9.0. The one exception is an incoming migration on the destination that the
// decision destroys once the source has no job left: that is how libvirt itself cancels one.
func guardJobs(dec decision, src, dst domainView) decision {
	host := ""
	switch {
	case src.Job:
		host = "the source"
	case dst.Job && (dec.keep == destination || !hasStep(dec.steps, step{destination, opDestroy})):
		host = "the destination"
	default:
		return dec
	}
	return decision{operator: true,
		why:  fmt.Sprintf("%s, but a libvirt job is still active on %s", dec.why, host),
		hint: fmt.Sprintf("wait for the job on %s to end (virsh domjobinfo), or abort it (virsh domjobabort), then run drover reconcile", host)}
}

func hasStep(steps []step, want step) bool {
	for _, s := range steps {
		if s == want {
			return true
		}
	}
	return false
}
