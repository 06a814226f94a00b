// Package virt is drover's client for libvirt: one Conn per hypervisor, domain lifecycle (define,
// start, create, destroy, undefine), listing, bulk statistics, host facts, and DomainSpec, which
// turns the few settings drover needs into domain XML.
//
// It owns the libvirt C binding (libvirt.org/go/libvirt): no other package imports it. Values it
// returns (Domain, DomainStats, HostInfo) are plain Go snapshots; no libvirt handle escapes, so
// callers never free anything but the Conn.
//
// Every call takes a context and returns when it expires even if the C library is still blocked
// (a hypervisor that stopped answering). Such an abandoned call may still complete later on the
// hypervisor: after a timeout, read the state again before acting on it.
//
// Errors name the hypervisor and the operation and say what to check; errors.Is matches
// ErrNoDomain, ErrDomainExists, ErrWrongState and ErrUnreachable, as well as context errors.
//
// It does not orchestrate migrations: deciding when and where to move a VM, running the move
// and checking the guest afterwards is the job of the migrate package (a later issue; not to be
// confused with sql/migrations). MigrateLive (migrate.go) is only the libvirt call that package
// builds on. Nor does it decide anything else: placement is the scheduler's, and this package
// only does what it is told on the hypervisor it is told.
package virt
