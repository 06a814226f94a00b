# shellcheck shell=bash
# libvirt: placeholder, being written.
libvirt_up() { tb_die "libvirt: not written yet"; }
libvirt_down() { :; }
libvirt_status() { tb_status_line libvirt down "not written yet"; return 1; }
