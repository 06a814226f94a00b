# shellcheck shell=bash
# ipmi: placeholder, being written.
ipmi_up() { tb_die "ipmi: not written yet"; }
ipmi_down() { :; }
ipmi_status() { tb_status_line ipmi down "not written yet"; return 1; }
ipmi_sensor() { tb_die "ipmi: not written yet"; }
