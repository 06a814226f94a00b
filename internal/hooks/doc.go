// Package hooks is what Slurm's power-saving and slurmctld prolog/epilog hooks do through drover:
// resume boots a vnode's VM on the hypervisor the placer chooses and records why; suspend destroys
// it; job-start and job-end record jobs. Each works from a snapshot of the hypervisors taken through
// libvirt (the truth about where VMs run) and writes the outcome to PostgreSQL.
//
// A vnode that cannot be resumed is set DOWN in Slurm with a reason that says what failed, as
// Slurm's power-saving guide prescribes, so its job is requeued at once.
package hooks
