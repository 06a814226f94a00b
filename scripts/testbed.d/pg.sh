# shellcheck shell=bash
# pg: placeholder, being written.
pg_up() { tb_die "pg: not written yet"; }
pg_down() { :; }
pg_status() { tb_status_line pg down "not written yet"; return 1; }
pg_url() { echo "postgres://drover@127.0.0.1:$TB_PG_PORT/drover?sslmode=disable"; }
