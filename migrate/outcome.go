package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drover-hpc/drover/internal/config"
	"github.com/drover-hpc/drover/internal/store"
	"github.com/drover-hpc/drover/internal/virt"
)

// presence is what one hypervisor holds of the vnode's domain after a failed transfer.
type presence int

const (
	unknown presence = iota // the hypervisor could not be asked
	absent                  // no such domain, or only its inactive definition
	running                 // running or blocked: the guest executes
	stuck                   // active but not executing: paused, crashed, shutting down
)

func (p presence) String() string {
	return [...]string{unknown: "unknown", absent: "absent", running: "running", stuck: "not executing"}[p]
}

// result of a failed transfer, decided from where the guest is afterwards.
type failure int

const (
	lost        failure = iota // neither side is known to run the guest alone
	rolledBack                 // the guest runs on the source only: nothing happened
	movedAnyway                // the guest runs on the destination only: libvirt's error came after switch-over
)

// outcome classifies a failed transfer. Only a guest seen running on exactly one side and absent
// from the other counts: anything else (both sides, a paused copy, an unreachable host) is lost
// until someone looks.
func outcome(src, dst presence) failure {
	switch {
	case src == running && dst == absent:
		return rolledBack
	case dst == running && src == absent:
		return movedAnyway
	}
	return lost
}

// look reads where the domain is on s's hypervisor now.
func (r *run) look(ctx context.Context, s sighting) presence {
	if s.conn == nil {
		return unknown
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	d, err := s.conn.Lookup(ctx, r.req.VNode)
	switch {
	case errors.Is(err, virt.ErrNoDomain):
		return absent
	case err != nil:
		r.e.broken(s.hv, s.conn, err)
		return unknown
	case !d.Active:
		return absent
	case d.Running():
		return running
	}
	return stuck
}

// whereNow is the first of sightings' hypervisors on which the domain is still active, or "".
func (r *run) whereNow(ctx context.Context, sightings ...sighting) string {
	for _, s := range sightings {
		if p := r.look(ctx, s); p == running || p == stuck {
			return s.hv
		}
	}
	return ""
}

// checkUnfinished fails with store.ErrMigrationActive when the vnode has an unfinished migration.
func (r *run) checkUnfinished(ctx context.Context) error {
	m, owner, err := r.e.st.UnfinishedMigration(ctx, r.req.VNode)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return &Error{
		Err: fmt.Errorf("%w: migration %d from %s to %s is %s (owner %s, since %s)", store.ErrMigrationActive,
			m.ID, m.Src, m.Dst, m.Phase, owner, m.CreatedAt.Local().Format(time.DateTime)),
		Hint: fmt.Sprintf("wait for migration %d to finish; if its owner %s was killed, drover reconcile settles it "+
			"(it looks for %s on %s and %s)", m.ID, owner, r.req.VNode, m.Src, m.Dst),
	}
}

// reconcileRow makes the vnodes row say what libvirt says: running on the source.
func (r *run) reconcileRow(ctx context.Context, row store.Vnode) error {
	if row.Hypervisor == r.src.hv && row.State != "absent" && row.State != "failed" {
		return nil
	}
	was := row.State + " on " + orNone(row.Hypervisor)
	r.res.Corrected = was
	reason := fmt.Sprintf("found running on %s (the database said %s)", r.src.hv, was)
	r.e.log.Warn().Str("vnode", r.req.VNode).Str("database", was).Str("libvirt", r.src.hv).
		Msg("vnode row disagreed with libvirt: corrected")
	if err := r.e.st.SetVnodeState(ctx, r.req.VNode, "running", reason, &r.src.hv); err != nil {
		return err
	}
	return r.e.st.VnodeEvent(ctx, r.req.VNode, "reconciled", r.src.hv,
		map[string]any{"database": was, "libvirt": r.src.hv, "by": "migrate"})
}

// vanished records a vnode whose row says it lives while every hypervisor answered that it has
// no such domain: the row becomes failed with the reason, so its CPUs and memory stop counting
// against a host in placement, and err gets a hint saying so. A vnode that is absent, failed or
// stopping is left alone, and so is any when a hypervisor could not be asked.
func (r *run) vanished(ctx context.Context, row store.Vnode, seen []sighting) {
	if row.State != "booting" && row.State != "running" && row.State != "migrating" {
		return
	}
	asked := make([]string, 0, len(seen))
	for _, s := range seen {
		if s.err != nil || s.dom != nil {
			return
		}
		asked = append(asked, s.hv)
	}
	was := row.State + " on " + orNone(row.Hypervisor)
	reason := fmt.Sprintf("its VM is on none of %s (the database said %s)", strings.Join(asked, ", "), was)
	ok, err := r.e.st.VnodeVanished(ctx, r.req.VNode, row.State, row.Hypervisor, reason, map[string]any{"database": was, "asked": asked, "by": "migrate"})
	if err != nil {
		r.e.log.Error().Str("vnode", r.req.VNode).Err(err).Msg("could not record the vanished VM")
		return
	}
	if !ok {
		return // the row changed meanwhile: whoever changed it knows better
	}
	r.e.log.Warn().Str("vnode", r.req.VNode).Str("database", was).Strs("asked", asked).
		Msg("vnode's VM is gone from every hypervisor: recorded as failed")
	r.res.Corrected = was
}

func orNone(s string) string {
	if s == "" {
		return "no hypervisor"
	}
	return s
}

// migrationURI is where the destination receives memory; "" lets libvirt choose.
func (e *Executor) migrationURI(name string) string {
	for _, h := range e.conns.Hypervisors() {
		if h.Name == name {
			return h.MigrationURI
		}
	}
	return ""
}

func known(hvs []config.Hypervisor, name string) bool {
	for _, h := range hvs {
		if h.Name == name {
			return true
		}
	}
	return false
}

// broken tells the pool about a connection that stopped answering.
func (e *Executor) broken(name string, c *virt.Conn, err error) {
	if errors.Is(err, virt.ErrUnreachable) {
		e.conns.Broken(name, c)
	}
}

// hint says what to do next after err.
func hint(err error, r *run) string {
	src, dst, vn := orNone(r.res.From), r.req.To, r.req.VNode
	switch {
	case errors.Is(err, ErrBadRequest):
		return "correct the request and try again"
	case errors.Is(err, ErrUnknownVnode):
		return "drover migrates the vnodes it booted; check the name against the vnodes table"
	case errors.Is(err, ErrUnknownHypervisor):
		return "choose one of the configured hypervisors: " + names(r.e.conns.Hypervisors())
	case errors.Is(err, ErrSameHypervisor):
		return "nothing to do: " + vn + " is already there; choose another destination"
	case errors.Is(err, ErrNotRunning) && r.res.Corrected != "":
		return "its VM is gone: drover now records " + vn + " as failed (it said " + r.res.Corrected + "); Slurm boots it afresh when it resumes the node"
	case errors.Is(err, ErrNotRunning):
		return "nothing to migrate: start the vnode first (Slurm resumes it for a job), or resume a paused domain"
	case errors.Is(err, ErrUnreachable):
		return "check that libvirtd runs on " + dst + " and answers (drover check), then try again"
	case errors.Is(err, ErrRunsTwice):
		return "look at every hypervisor (virsh list --all) and destroy the stale copy before migrating"
	case errors.Is(err, ErrLimit):
		return "wait for those migrations to finish, or raise the limit in the configuration; " +
			"a migration whose owner died is settled by drover reconcile"
	case errors.Is(err, ErrBusy):
		return "wait until the vnode has stopped or is running again"
	case errors.Is(err, ErrGuestDied):
		return "the guest is lost and its job with it: restart " + vn + " and requeue the job; " +
			"see the console log and libvirtd's log on " + dst
	case errors.Is(err, errGuestLost):
		return "the guest is lost and its job with it: restart " + vn + " and requeue the job; " +
			"see the console log and libvirtd's log on " + src + " for why its QEMU ended"
	case r.phase == PhaseRolledBack && errors.Is(err, errNothingSent):
		uri := r.e.migrationURI(dst)
		if uri == "" {
			uri = "unset: libvirt uses " + dst + "'s hostname"
		}
		return vn + " still runs on " + src + "; nothing was copied: check " + dst + "'s migration_uri (" + uri + "): " +
			dst + " must be able to listen there and " + src + " to reach it; libvirtd's logs on both say more"
	case r.phase == PhaseRolledBack && errors.Is(err, ErrAborted):
		return vn + " still runs on " + src + "; try again later, with more bandwidth, a larger --max-downtime, " +
			"or a longer migration.timeout"
	case r.phase == PhaseRolledBack:
		return vn + " still runs on " + src + "; see libvirtd's logs on " + src + " and " + dst + " before retrying"
	case r.phase == PhaseFailed:
		return "check where " + vn + " is (virsh list --all on " + src + " and " + dst + "); it is marked failed"
	case r.id == 0:
		return "nothing was changed; fix the cause and try again"
	}
	return ""
}
