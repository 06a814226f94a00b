package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/drover-hpc/drover/internal/virt"
)

// domainView is what one hypervisor holds of a vnode's domain, as reconciliation sees it.
type domainView struct {
	Err        error // the hypervisor could not be asked; every other field is then unknown
	Exists     bool  // defined or active
	Active     bool  // a QEMU process exists
	Persistent bool
	State      virt.State
	PostCopy   bool   // libvirt's state reason says the domain is (or was) in post-copy
	Migrating  bool   // paused by a migration: at switch-over (source) or while receiving (destination)
	Job        bool   // a libvirt job (a migration) is active on the domain
	JobDesc    string // what the job is doing, for the finding
	JobSent    uint64 // bytes the job has sent so far (0 when unknown)
}

// String is the view for findings: "running", "paused (by migration), job active", "absent"…
func (v domainView) String() string {
	switch {
	case v.Err != nil:
		return "unreachable: " + v.Err.Error()
	case !v.Exists:
		return "absent"
	case !v.Active:
		return "defined, shut off"
	}
	var b strings.Builder
	b.WriteString(v.State.String())
	var notes []string
	if v.PostCopy {
		notes = append(notes, "post-copy")
	}
	if v.Migrating {
		notes = append(notes, "by migration")
	}
	if !v.Persistent {
		notes = append(notes, "transient")
	}
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, ", ") + ")")
	}
	if v.Job {
		b.WriteString(", job active")
		if v.JobDesc != "" {
			b.WriteString(": " + v.JobDesc)
		}
	}
	return b.String()
}

// hostOps is the little of libvirt reconciliation needs on one hypervisor. libvirtHost implements
// it; the decision-table tests use a fake.
type hostOps interface {
	// Inspect reads the domain called name; a hypervisor that cannot be asked gives a view with Err.
	Inspect(ctx context.Context, name string) domainView
	AbortJob(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
	Destroy(ctx context.Context, name string) error
	Undefine(ctx context.Context, name string) error
	Start(ctx context.Context, name string) error
	Close() error
}

// libvirtHost reaches one hypervisor through the pool's connection. A call that finds the
// hypervisor unreachable reports the connection broken, so the next reconciliation connects again.
type libvirtHost struct {
	hv     string
	conn   *virt.Conn
	broken func(err error)
}

var _ hostOps = (*libvirtHost)(nil)

// openHost gets the pool's connection to hv for reconciliation; Close leaves it open.
func (e *Executor) openHost(ctx context.Context, hv string) (hostOps, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	c, err := e.conns.Conn(ctx, hv)
	if err != nil {
		return nil, err
	}
	return &libvirtHost{hv: hv, conn: c, broken: func(err error) { e.broken(hv, c, err) }}, nil
}

// check reports err's connection broken when it means so, and returns err.
func (h *libvirtHost) check(err error) error {
	if err != nil && h.broken != nil {
		h.broken(err)
	}
	return err
}

func (h *libvirtHost) Inspect(ctx context.Context, name string) domainView {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	s, err := h.conn.DomainStatus(ctx, name)
	if errors.Is(err, virt.ErrNoDomain) {
		return domainView{}
	}
	if err != nil {
		return domainView{Err: h.check(err)}
	}
	v := domainView{Exists: true, Active: s.Active, Persistent: s.Persistent, State: s.State,
		PostCopy: s.PostCopy, Migrating: s.Migrating, Job: s.Job}
	v.JobSent = s.JobDataProcessed
	if s.Job && s.JobDataTotal > 0 {
		v.JobDesc = fmt.Sprintf("%.1f of %.1f MiB sent", float64(s.JobDataProcessed)/(1<<20), float64(s.JobDataTotal)/(1<<20))
	}
	return v
}

func (h *libvirtHost) AbortJob(ctx context.Context, name string) error {
	return h.check(h.conn.AbortJob(ctx, name))
}

func (h *libvirtHost) Resume(ctx context.Context, name string) error {
	return h.check(h.conn.Resume(ctx, name))
}

func (h *libvirtHost) Destroy(ctx context.Context, name string) error {
	return h.check(h.conn.Destroy(ctx, name))
}

func (h *libvirtHost) Undefine(ctx context.Context, name string) error {
	return h.check(h.conn.Undefine(ctx, name))
}

func (h *libvirtHost) Start(ctx context.Context, name string) error {
	return h.check(h.conn.Start(ctx, name))
}

// Close does nothing: the connection is the pool's.
func (h *libvirtHost) Close() error { return nil }
