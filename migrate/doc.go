// Package migrate is the live-migration executor: it moves a running vnode's VM from one libvirt
// hypervisor to another (pre-copy with bounded downtime, post-copy when pre-copy cannot converge),
// journals every phase in PostgreSQL, verifies the guest on the destination and reconciles
// unfinished migrations after a restart.
//
// Not to be confused with sql/migrations, which holds database schema migrations.
//
// An Executor runs one migration per Migrate call. libvirt is the truth about where a vnode runs:
// the executor looks for the domain on every hypervisor before it starts, corrects the vnodes row
// when the database disagrees, and journals the migration (planned → preparing → transferring →
// switching_over → verifying → done, or failed / rolled_back with the error) through internal/store.
// It does not trust libvirt's return code alone: the guest must keep running and using CPU on the
// destination, and keep writing to its console when its log is readable, before a migration counts
// as done.
//
// Crash safety: while a process migrates a vnode it holds the vnode's PostgreSQL session lock
// (store.TryLockVnode), so a journal row whose lock is free has no live owner, on whatever host it
// ran. Reconcile settles such rows with what both hypervisors hold (the decision table is in
// decide.go): it waits for or aborts a libvirt job still under way, keeps exactly one running copy
// (finishing, rolling back, resuming a copy paused at switch-over, destroying leftovers), and
// journals what it found and did. Migrate reconciles stale rows before it starts, and admits a
// migration only within migration.max_per_hypervisor and migration.max_concurrent, counted in the
// database under an advisory lock so that several processes obey them together (limits.go).
//
// It does not decide when or where a vnode moves (that is the scheduler's plan), and it touches
// only the domain it was asked to move. Pool lends it one libvirt connection per hypervisor.
package migrate
