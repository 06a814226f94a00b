package migrate

import (
	"errors"
	"strings"
)

// Errors callers can test with errors.Is on what Migrate returns. A second migration of a vnode
// that is still migrating matches store.ErrMigrationActive; a cancelled or timed-out migration
// matches ErrAborted and the context's error.
var (
	// ErrBadRequest: the request itself is invalid (empty names, negative tuning, unknown reason).
	ErrBadRequest = errors.New("invalid migration request")
	// ErrUnknownVnode: the database has no such vnode.
	ErrUnknownVnode = errors.New("unknown vnode")
	// ErrNotRunning: the vnode's domain is not running on any reachable hypervisor.
	ErrNotRunning = errors.New("vnode not running")
	// ErrUnknownHypervisor: the destination is not a configured hypervisor.
	ErrUnknownHypervisor = errors.New("unknown hypervisor")
	// ErrSameHypervisor: the vnode already runs on the destination.
	ErrSameHypervisor = errors.New("destination is the source")
	// ErrUnreachable: a hypervisor the migration needs did not answer.
	ErrUnreachable = errors.New("hypervisor unreachable")
	// ErrRunsTwice: the vnode's domain is active on more than one hypervisor.
	ErrRunsTwice = errors.New("vnode active on more than one hypervisor")
	// ErrAborted: the migration was cancelled or timed out and aborted.
	ErrAborted = errors.New("migration aborted")
	// ErrFailed: libvirt reported a failed migration.
	ErrFailed = errors.New("migration failed")
	// ErrGuestDied: libvirt reported success but the guest did not survive on the destination.
	ErrGuestDied = errors.New("guest died after switch-over")
	// ErrBusy: the vnode is being stopped.
	ErrBusy = errors.New("vnode busy")
)

// Causes the hint names; they match ErrFailed too.
var (
	// errNothingSent: the transfer failed before any memory was sent: the destination could not
	// receive (its QEMU could not listen on the migration address) or the source could not reach it.
	errNothingSent = errors.New("no memory was sent")
	// errGuestLost: the transfer failed because the guest's domain vanished from the source, and
	// no copy reached the destination.
	errGuestLost = errors.New("the guest is lost")
)

// Error is a migration that was refused or did not succeed.
type Error struct {
	VNode, From, To string
	ID              int64 // journal id; 0 when refused before anything was journaled
	Phase           Phase // the phase the journal was left in; "" when nothing was journaled
	Err             error
	Hint            string // what to check or do next; may be empty
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("migrate ")
	b.WriteString(e.VNode)
	if e.To != "" {
		b.WriteString(" to ")
		b.WriteString(e.To)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
