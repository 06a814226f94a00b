# shellcheck shell=bash
# pg: PostgreSQL for drover. TEST_DATABASE_URL is used as it is when it answers; otherwise a private
# cluster is initdb'ed under $TB_DIR/pg and listens on 127.0.0.1:$TB_PG_PORT only, with a generated
# password for role drover (scram-sha-256) kept in $TB_DIR/pg/drover.password.

TB_PG_DIR=$TB_DIR/pg
TB_PG_DATA=$TB_PG_DIR/data
TB_PG_SOCK=$TB_PG_DIR/run
TB_PG_PASSWORD_FILE=$TB_PG_DIR/drover.password
TB_PG_AGENT_PASSWORD_FILE=$TB_PG_DIR/agent.password

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

# pg_external: TEST_DATABASE_URL is set and answers (then the testbed starts no server of its own).
pg_external() {
  [ -n "${TEST_DATABASE_URL:-}" ] && [ "${TEST_DATABASE_URL}" != "$(pg_private_url_with_password 2>/dev/null)" ] &&
    timeout 5 psql "$TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1
}

pg_private_url_with_password() {
  printf 'postgres://drover:%s@127.0.0.1:%s/%s?sslmode=disable' "$(cat "$TB_PG_PASSWORD_FILE")" "$TB_PG_PORT" "$TB_PG_DB"
}

# pg_url: the URL written into drover.yaml (no password: that is in database.password_file).
pg_url() {
  if [ -s "$TB_PG_DIR/external.url" ]; then cat "$TB_PG_DIR/external.url"; return; fi
  printf 'postgres://drover@127.0.0.1:%s/%s?sslmode=disable' "$TB_PG_PORT" "$TB_PG_DB"
}
pg_password_file() { [ -s "$TB_PG_DIR/external.url" ] || echo "$TB_PG_PASSWORD_FILE"; }
# pg_test_url: what tests get as TEST_DATABASE_URL.
pg_test_url() {
  if [ -s "$TB_PG_DIR/external.url" ]; then cat "$TB_PG_DIR/external.url"; else pg_private_url_with_password; fi
}

pg_running() { [ -s "$TB_PG_DATA/postmaster.pid" ] && kill -0 "$(head -1 "$TB_PG_DATA/postmaster.pid")" 2>/dev/null; }

pg_up() {
  mkdir -p "$TB_PG_DIR"
  if pg_external; then
    printf '%s' "$TEST_DATABASE_URL" >"$TB_PG_DIR/external.url"
    tb_log "pg: using TEST_DATABASE_URL"
    return 0
  fi
  rm -f "$TB_PG_DIR/external.url"
  local bin; bin=$(pg_bin)
  [ -x "$bin/initdb" ] || tb_die "pg: no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)"
  id postgres >/dev/null 2>&1 || tb_die "pg: no 'postgres' user (the postgresql package creates it)"
  mkdir -p "$TB_PG_SOCK"
  chown postgres:postgres "$TB_PG_DIR" "$TB_PG_SOCK"
  if [ ! -s "$TB_PG_DATA/PG_VERSION" ]; then
    [ -s "$TB_PG_PASSWORD_FILE" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$TB_PG_PASSWORD_FILE"; }
    chmod 600 "$TB_PG_PASSWORD_FILE"
    rm -rf "$TB_PG_DATA"
    runuser -u postgres -- "$bin/initdb" -D "$TB_PG_DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$TB_PG_DIR/initdb.log" 2>&1 ||
      { cat "$TB_PG_DIR/initdb.log" >&2; tb_die "pg: initdb failed"; }
    cat >>"$TB_PG_DATA/postgresql.conf" <<CONF
# --- drover testbed ---
listen_addresses = '127.0.0.1'
port = $TB_PG_PORT
unix_socket_directories = '$TB_PG_SOCK'
max_connections = 200
shared_buffers = 256MB
wal_level = minimal
max_wal_senders = 0
max_wal_size = 2GB
logging_collector = off
CONF
  fi
  if ! pg_running; then
    tb_port_free "$TB_PG_PORT" || tb_die "pg: port $TB_PG_PORT is taken; set DROVER_TB_PG_PORT to a free port"
    runuser -u postgres -- "$bin/pg_ctl" -D "$TB_PG_DATA" -l "$TB_PG_DIR/postgres.log" -w -t 30 start >/dev/null ||
      { tail -20 "$TB_PG_DIR/postgres.log" >&2; tb_die "pg: server did not start (log: $TB_PG_DIR/postgres.log)"; }
  fi
  local pass; pass=$(cat "$TB_PG_PASSWORD_FILE")
  runuser -u postgres -- psql -h "$TB_PG_SOCK" -p "$TB_PG_PORT" -d postgres -Atq -v ON_ERROR_STOP=1 -v pass="$pass" >/dev/null <<'SQL' ||
SELECT 'CREATE ROLE drover LOGIN CREATEROLE' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'drover') \gexec
ALTER ROLE drover PASSWORD :'pass';
SELECT 'CREATE DATABASE drover OWNER drover' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'drover') \gexec
SQL
    tb_die "pg: could not create role/database drover"
  tb_waitfor 10 psql "$(pg_private_url_with_password)" -Atqc 'select 1' || tb_die "pg: drover cannot log in over 127.0.0.1:$TB_PG_PORT"
  pg_agent_role
}

# pg_agent_role: login role drover_agent_tb for agents, a member of the least-privilege group
# drover_agent (whose privileges migration 002 grants per schema), with a generated password in
# $TB_PG_AGENT_PASSWORD_FILE.
pg_agent_role() {
  [ -s "$TB_PG_AGENT_PASSWORD_FILE" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$TB_PG_AGENT_PASSWORD_FILE"; }
  chmod 600 "$TB_PG_AGENT_PASSWORD_FILE"
  runuser -u postgres -- psql -h "$TB_PG_SOCK" -p "$TB_PG_PORT" -d postgres -Atq -v ON_ERROR_STOP=1 \
    -v pass="$(cat "$TB_PG_AGENT_PASSWORD_FILE")" >/dev/null <<'SQL' || tb_die "pg: could not create the agent role drover_agent_tb"
SELECT 'CREATE ROLE drover_agent NOLOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'drover_agent') \gexec
SELECT 'CREATE ROLE drover_agent_tb LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'drover_agent_tb') \gexec
GRANT drover_agent TO drover_agent_tb;
ALTER ROLE drover_agent_tb PASSWORD :'pass';
SQL
}

# pg_agent_env: the agent role's exports for `testbed env` (none with an external database).
pg_agent_env() {
  [ -s "$TB_PG_DIR/external.url" ] && return 0
  printf "export DROVER_TESTBED_AGENT_DATABASE_URL='%s'\n" "postgres://drover_agent_tb@127.0.0.1:$TB_PG_PORT/$TB_PG_DB?sslmode=disable"
  printf 'export DROVER_TESTBED_AGENT_PASSWORD_FILE=%s\n' "$TB_PG_AGENT_PASSWORD_FILE"
}

pg_down() {
  [ -s "$TB_PG_DIR/external.url" ] && return 0
  pg_running || return 0
  runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$TB_PG_DATA" -m fast -w -t 30 stop >/dev/null && tb_log "stopped postgres"
}

pg_status() {
  if [ -s "$TB_PG_DIR/external.url" ]; then
    if timeout 5 psql "$(cat "$TB_PG_DIR/external.url")" -Atqc 'select 1' >/dev/null 2>&1; then
      tb_status_line pg up "TEST_DATABASE_URL (external)"
    else
      tb_status_line pg down "TEST_DATABASE_URL does not answer"; return 1
    fi
  elif pg_running; then
    tb_status_line pg up "pid $(head -1 "$TB_PG_DATA/postmaster.pid"), 127.0.0.1:$TB_PG_PORT, data $TB_PG_DATA"
  else
    tb_status_line pg down "not running: scripts/testbed up pg (log: $TB_PG_DIR/postgres.log)"; return 1
  fi
}
