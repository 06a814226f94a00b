# shellcheck shell=bash
# drover: drover's own services on the testbed — `drover server` (placement API, leader election)
# and one `drover agent` per hypervisor (its BMC, libvirt and this machine's /proc into
# PostgreSQL) — started from the repository's bin/drover (`make build`) after the database is
# migrated. A rebuilt binary restarts them. Functions and variables are prefixed drover_/TB_DROVER_.

TB_DROVER_DIR=$TB_DIR/drover
TB_DROVER_BIN=${DROVER_TB_BIN:-$TB_REPO/bin/drover}
TB_SERVER_PORT=${DROVER_TB_SERVER_PORT:-16880}
TB_SERVER_TOKEN_FILE=$TB_DROVER_DIR/server.token
TB_DROVER_WAIT=${DROVER_TB_DROVER_WAIT:-30} # seconds for the services to answer and report

drover_pidfile() { echo "$TB_DROVER_DIR/$1.pid"; }
drover_logfile() { echo "$TB_LOG/drover-$1.log"; }
drover_services() { echo server; local hv; for hv in "${TB_HVS[@]}"; do echo "agent-$hv"; done; }

# drover_stale SERVICE: the running service was started from an older binary or config.
drover_stale() { [ "$TB_DROVER_BIN" -nt "$(drover_pidfile "$1")" ] || [ "$TB_CONFIG" -nt "$(drover_pidfile "$1")" ]; }

drover_start() {
  local svc=$1 pf log
  pf=$(drover_pidfile "$svc")
  log=$(drover_logfile "$svc")
  local args=(--config "$TB_CONFIG" --log-format json)
  case $svc in
    server) args+=(server) ;;
    agent-*)
      mkdir -p "$TB_DROVER_DIR/spool-${svc#agent-}"
      args+=(agent --host "${svc#agent-}")
      ;;
  esac
  DROVER_AGENT_SPOOL_DIR=$TB_DROVER_DIR/spool-${svc#agent-} setsid "$TB_DROVER_BIN" "${args[@]}" >>"$log" 2>&1 </dev/null &
  echo $! >"$pf"
}

drover_server_ok() {
  curl -fsS -m 2 -H "Authorization: Bearer $(cat "$TB_SERVER_TOKEN_FILE")" \
    "http://127.0.0.1:$TB_SERVER_PORT/v1/status" 2>/dev/null | grep -q '"leader":true'
}

# drover_psql ARGS...: psql as drover's own database role.
drover_psql() {
  local pw; pw=$(pg_password_file)
  if [ -n "$pw" ]; then PGPASSWORD=$(cat "$pw") psql "$(pg_url)" "$@"; else psql "$(pg_url)" "$@"; fi
}

# drover_reported HV: the agent's newest KPIs for HV are less than 30 s old.
drover_reported() {
  local n
  n=$(drover_psql -tAc "SELECT count(*) FROM host_kpi_now k JOIN hypervisors h ON h.id = k.hypervisor_id
                    WHERE h.name = '$1' AND k.ts > now() - interval '30 seconds'" 2>/dev/null) || return 1
  [ "$n" = 1 ]
}

drover_up() {
  [ -x "$TB_DROVER_BIN" ] || { tb_log "drover: no $TB_DROVER_BIN: run make build first"; return 1; }
  mkdir -p "$TB_DROVER_DIR" "$TB_LOG"
  if [ ! -s "$TB_SERVER_TOKEN_FILE" ]; then
    head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$TB_SERVER_TOKEN_FILE"
    chmod 600 "$TB_SERVER_TOKEN_FILE"
  fi
  write_config
  "$TB_DROVER_BIN" --config "$TB_CONFIG" db migrate >>"$(drover_logfile migrate)" 2>&1 ||
    { tb_log "drover: db migrate failed (see $(drover_logfile migrate))"; return 1; }
  local svc started=()
  for svc in $(drover_services); do
    if tb_alive "$(drover_pidfile "$svc")"; then
      drover_stale "$svc" || continue
      tb_stop "$(drover_pidfile "$svc")" "drover $svc (older binary or config)"
    fi
    drover_start "$svc"
    started+=("$svc")
  done
  tb_waitfor "$TB_DROVER_WAIT" drover_server_ok ||
    { tb_log "drover: the server does not lead or answer on 127.0.0.1:$TB_SERVER_PORT (see $(drover_logfile server))"; return 1; }
  local hv
  for hv in "${TB_HVS[@]}"; do
    tb_waitfor "$TB_DROVER_WAIT" drover_reported "$hv" ||
      { tb_log "drover: agent-$hv has not reported in ${TB_DROVER_WAIT}s (see $(drover_logfile "agent-$hv"))"; return 1; }
  done
  [ ${#started[@]} -eq 0 ] && tb_log "drover: already running" || tb_log "drover: started ${started[*]}"
}

drover_down() {
  local svc
  for svc in $(drover_services); do tb_stop "$(drover_pidfile "$svc")" "drover $svc"; done
}

drover_status() {
  local svc rc=0 hv
  for svc in $(drover_services); do
    if ! tb_alive "$(drover_pidfile "$svc")"; then
      tb_status_line "drover $svc" down "not running: scripts/testbed up drover (log $(drover_logfile "$svc"))"
      rc=1
      continue
    fi
    case $svc in
      server)
        if drover_server_ok; then
          tb_status_line "drover server" up "pid $(cat "$(drover_pidfile server)"), leader, http://127.0.0.1:$TB_SERVER_PORT"
        else
          tb_status_line "drover server" down "pid $(cat "$(drover_pidfile server)") runs but does not lead or answer (log $(drover_logfile server))"
          rc=1
        fi
        ;;
      agent-*)
        hv=${svc#agent-}
        if drover_reported "$hv"; then
          tb_status_line "drover $svc" up "pid $(cat "$(drover_pidfile "$svc")"), KPIs of $hv fresh"
        else
          tb_status_line "drover $svc" down "pid $(cat "$(drover_pidfile "$svc")") runs but $hv's KPIs are stale (log $(drover_logfile "$svc"))"
          rc=1
        fi
        ;;
    esac
  done
  return $rc
}
