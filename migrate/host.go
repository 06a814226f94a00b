package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"libvirt.org/go/libvirt"

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

// libvirtHost reaches one hypervisor through the pool's connection (destroy, undefine, start) and
// a connection of its own for what internal/virt does not offer yet: job state, state reasons,
// aborting a job and resuming a paused domain. (Those belong in internal/virt; they live here until
// it has them.)
type libvirtHost struct {
	hv   string
	conn *virt.Conn
	lv   *libvirt.Connect
}

var _ hostOps = (*libvirtHost)(nil)

// openHost connects to hv for reconciliation; Close releases the extra connection.
func (e *Executor) openHost(ctx context.Context, hv string) (hostOps, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	c, err := e.conns.Conn(ctx, hv)
	if err != nil {
		return nil, err
	}
	uri := ""
	for _, h := range e.conns.Hypervisors() {
		if h.Name == hv {
			uri = h.URI
		}
	}
	if uri == "" {
		uri = c.URI()
	}
	type result struct {
		lv  *libvirt.Connect
		err error
	}
	done := make(chan result, 1)
	go func() {
		lv, err := libvirt.NewConnect(uri)
		done <- result{lv, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("%s: connect to %s: %w", hv, uri, r.err)
		}
		return &libvirtHost{hv: hv, conn: c, lv: r.lv}, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.lv != nil {
				_, _ = r.lv.Close()
			}
		}()
		return nil, fmt.Errorf("%s: connect to %s: %w", hv, uri, ctx.Err())
	}
}

// call runs fn on the domain called name through the extra connection, giving up when ctx ends
// (fn then finishes on its own and frees the handle).
func (h *libvirtHost) call(ctx context.Context, op, name string, fn func(*libvirt.Domain) error) error {
	done := make(chan error, 1)
	go func() {
		dom, err := h.lv.LookupDomainByName(name)
		if err != nil {
			done <- err
			return
		}
		defer dom.Free()
		done <- fn(dom)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		return nil
	}
	var lerr libvirt.Error
	if errors.As(err, &lerr) {
		if lerr.Code == libvirt.ERR_NO_DOMAIN {
			return fmt.Errorf("%s: %s %q: %w", h.hv, op, name, virt.ErrNoDomain)
		}
		return fmt.Errorf("%s: %s %q: %s", h.hv, op, name, lerr.Message)
	}
	return fmt.Errorf("%s: %s %q: %w", h.hv, op, name, err)
}

func (h *libvirtHost) Inspect(ctx context.Context, name string) domainView {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	var v domainView
	err := h.call(ctx, "inspect domain", name, func(dom *libvirt.Domain) error {
		st, reason, err := dom.GetState()
		if err != nil {
			return err
		}
		var out domainView
		out.Exists = true
		out.State = stateOf(st)
		switch {
		case st == libvirt.DOMAIN_PAUSED:
			r := libvirt.DomainPausedReason(reason)
			out.PostCopy = r == libvirt.DOMAIN_PAUSED_POSTCOPY || r == libvirt.DOMAIN_PAUSED_POSTCOPY_FAILED
			out.Migrating = r == libvirt.DOMAIN_PAUSED_STARTING_UP || r == libvirt.DOMAIN_PAUSED_MIGRATION
		case st == libvirt.DOMAIN_RUNNING:
			r := libvirt.DomainRunningReason(reason)
			out.PostCopy = r == libvirt.DOMAIN_RUNNING_POSTCOPY || r == libvirt.DOMAIN_RUNNING_POSTCOPY_FAILED
		}
		if out.Active, err = dom.IsActive(); err != nil {
			return err
		}
		if out.Persistent, err = dom.IsPersistent(); err != nil {
			return err
		}
		if out.Active {
			ci, err := dom.GetControlInfo(0)
			if err != nil {
				return err
			}
			out.Job = ci.State == libvirt.DOMAIN_CONTROL_JOB
			if out.Job {
				if ji, err := dom.GetJobInfo(); err == nil && ji.DataTotal > 0 {
					out.JobDesc = fmt.Sprintf("%.1f of %.1f MiB sent", float64(ji.DataProcessed)/(1<<20), float64(ji.DataTotal)/(1<<20))
				}
			}
		}
		v = out
		return nil
	})
	if errors.Is(err, virt.ErrNoDomain) {
		return domainView{}
	}
	if err != nil {
		return domainView{Err: err}
	}
	return v
}

func (h *libvirtHost) AbortJob(ctx context.Context, name string) error {
	return h.call(ctx, "abort job of", name, func(dom *libvirt.Domain) error { return dom.AbortJob() })
}

func (h *libvirtHost) Resume(ctx context.Context, name string) error {
	return h.call(ctx, "resume", name, func(dom *libvirt.Domain) error { return dom.Resume() })
}

func (h *libvirtHost) Destroy(ctx context.Context, name string) error {
	return h.conn.Destroy(ctx, name)
}

func (h *libvirtHost) Undefine(ctx context.Context, name string) error {
	return h.conn.Undefine(ctx, name)
}

func (h *libvirtHost) Start(ctx context.Context, name string) error { return h.conn.Start(ctx, name) }

// Close closes the extra connection; the pool's stays open.
func (h *libvirtHost) Close() error {
	_, err := h.lv.Close()
	return err
}

// stateOf converts libvirt's state (internal/virt has the same, unexported).
func stateOf(s libvirt.DomainState) virt.State {
	switch s {
	case libvirt.DOMAIN_RUNNING:
		return virt.StateRunning
	case libvirt.DOMAIN_BLOCKED:
		return virt.StateBlocked
	case libvirt.DOMAIN_PAUSED:
		return virt.StatePaused
	case libvirt.DOMAIN_SHUTDOWN:
		return virt.StateShuttingDown
	case libvirt.DOMAIN_SHUTOFF:
		return virt.StateShutOff
	case libvirt.DOMAIN_CRASHED:
		return virt.StateCrashed
	case libvirt.DOMAIN_PMSUSPENDED:
		return virt.StateSuspended
	}
	return virt.StateUnknown
}
