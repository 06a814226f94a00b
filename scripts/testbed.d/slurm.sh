# shellcheck shell=bash
# slurm: placeholder, being written.
slurm_up() { tb_die "slurm: not written yet"; }
slurm_down() { :; }
slurm_status() { tb_status_line slurm down "not written yet"; return 1; }
