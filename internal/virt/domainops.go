package virt

import (
	"context"

	"libvirt.org/go/libvirt"
)

// DomainStatus is a domain's state with what qualifies it: libvirt's reason for the state (a
// migration paused it, it runs in post-copy) and the job under way on it. Reconciling a migration
// whose owner died reads it on both sides.
type DomainStatus struct {
	State      State
	Active     bool // a QEMU process exists
	Persistent bool // defined; false for a transient domain
	// PostCopy: the state reason says the domain is (or was) in post-copy, paused or running,
	// including a post-copy that failed.
	PostCopy bool
	// Migrating: paused by a migration, at switch-over (source) or while receiving (destination).
	Migrating bool
	// Job: a libvirt job (a migration) is active on the domain. JobDataTotal and
	// JobDataProcessed are its progress in bytes when libvirt reports them, else 0.
	Job              bool
	JobDataTotal     uint64
	JobDataProcessed uint64
}

// DomainStatus reads the state, state reason and job of the domain called name in one round
// trip. A missing domain gives an error matching ErrNoDomain.
func (c *Conn) DomainStatus(ctx context.Context, name string) (DomainStatus, error) {
	var s DomainStatus
	err := c.withDomain(ctx, "inspect domain "+quote(name), name, func(dom *libvirt.Domain) error {
		var out DomainStatus
		st, reason, err := dom.GetState()
		if err != nil {
			return err
		}
		out.State = stateOf(st)
		out.PostCopy, out.Migrating = stateReason(st, reason)
		if out.Active, err = dom.IsActive(); err != nil {
			return err
		}
		if out.Persistent, err = dom.IsPersistent(); err != nil {
			return err
		}
		if out.Active {
			// The job info, not the control info: during a migration the monitor is mostly idle
			// between QEMU queries, so control info says "no job" nearly every time it is asked.
			ji, err := dom.GetJobInfo()
			if err != nil {
				ci, cerr := dom.GetControlInfo(0)
				if cerr != nil {
					return err
				}
				out.Job = ci.State == libvirt.DOMAIN_CONTROL_JOB
			} else if ji.Type != libvirt.DOMAIN_JOB_NONE {
				out.Job = true
				out.JobDataTotal, out.JobDataProcessed = ji.DataTotal, ji.DataProcessed
			}
		}
		s = out
		return nil
	})
	if err != nil {
		return DomainStatus{}, err // s may still be written by an abandoned call
	}
	return s, nil
}

// stateReason decodes libvirt's reason for state st: whether it means post-copy, and whether a
// migration paused the domain.
func stateReason(st libvirt.DomainState, reason int) (postCopy, migrating bool) {
	switch st {
	case libvirt.DOMAIN_PAUSED:
		r := libvirt.DomainPausedReason(reason)
		postCopy = r == libvirt.DOMAIN_PAUSED_POSTCOPY || r == libvirt.DOMAIN_PAUSED_POSTCOPY_FAILED
		migrating = r == libvirt.DOMAIN_PAUSED_STARTING_UP || r == libvirt.DOMAIN_PAUSED_MIGRATION
	case libvirt.DOMAIN_RUNNING:
		r := libvirt.DomainRunningReason(reason)
		postCopy = r == libvirt.DOMAIN_RUNNING_POSTCOPY || r == libvirt.DOMAIN_RUNNING_POSTCOPY_FAILED
	}
	return postCopy, migrating
}

// AbortJob cancels the job (e.g. a migration) running on the domain called name. It fails with
// ErrWrongState when there is none (with QEMU; other drivers may report it differently).
func (c *Conn) AbortJob(ctx context.Context, name string) error {
	return c.withDomain(ctx, "abort job of domain "+quote(name), name, func(dom *libvirt.Domain) error {
		return dom.AbortJob()
	})
}

// Resume lets the paused domain called name run again.
func (c *Conn) Resume(ctx context.Context, name string) error {
	return c.withDomain(ctx, "resume domain "+quote(name), name, func(dom *libvirt.Domain) error {
		return dom.Resume()
	})
}
