// Package migrate is the live-migration executor: it moves a running vnode's VM from one libvirt
// hypervisor to another (pre-copy with bounded downtime, post-copy when pre-copy cannot converge),
// journals every phase in PostgreSQL, verifies the guest on the destination and reconciles
// unfinished migrations after a restart.
//
// Not to be confused with sql/migrations, which holds database schema migrations.
package migrate
