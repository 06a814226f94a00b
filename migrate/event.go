package migrate

import (
	"time"

	"github.com/drover-hpc/drover/internal/virt"
)

// Phase is a migration's place in the journal (the migrations.phase column).
type Phase string

// The journal's phases, in the order a successful migration passes them.
const (
	PhasePlanned       Phase = "planned"        // journaled, nothing done yet
	PhasePreparing     Phase = "preparing"      // libvirt sets up the destination
	PhaseTransferring  Phase = "transferring"   // memory is being copied
	PhaseSwitchingOver Phase = "switching_over" // libvirt returned: the guest was paused and resumed on the destination
	PhaseVerifying     Phase = "verifying"      // watching the guest on the destination
	PhaseDone          Phase = "done"
	PhaseFailed        Phase = "failed"      // the guest may be lost; the error says what happened
	PhaseRolledBack    Phase = "rolled_back" // the migration did not happen; the guest still runs on the source
)

// Final reports whether p ends a migration.
func (p Phase) Final() bool { return p == PhaseDone || p == PhaseFailed || p == PhaseRolledBack }

// Event is what Migrate reports as it goes: a phase change, or transfer progress.
type Event struct {
	ID       int64         // journal id
	VNode    string        // the vnode being moved
	From, To string        // hypervisor names
	Phase    Phase         // the phase the migration is in
	Since    time.Duration // since Migrate was called
	Progress *virt.Progress
	// Progress is nil for a phase change and set for transfer progress (sent, total, remaining,
	// rate, pre-copy iteration, QEMU's elapsed time).
	Err string // for PhaseFailed and PhaseRolledBack: why
}
