# shellcheck shell=bash
# ipmi: one simulated BMC (OpenIPMI's ipmi_sim) per hypervisor in $TB_HVS, on host loopback.
#
#   RMCP/RMCP+   127.0.0.1:${TB_BMC_PORT[hv]} (UDP), user $TB_BMC_USER, admin privilege; the password
#                is generated once per testbed dir into $TB_BMC_PASSWORD_FILE (mode 600)
#   console      127.0.0.1:${TB_BMC_CONSOLE[hv]} (TCP): ipmi_sim's command console, used by
#                `testbed sensor` to change readings. Never send `quit` there: it ends the simulator.
#   state        $TB_IPMI_DIR/<hv>/: lan.conf, bmc.emu, the CPU Temp poll file, the pid file and
#                ipmi_sim's persistent state (wiped at every start: fresh SDR, SEL and users)
#   log          $TB_LOG/ipmi-<hv>.log
#
# Every BMC has the threshold sensors of $TB_IPMI_SENSORS, each with a Full Sensor Record (SDR type
# 01h) written by ipmi_emu. CPU Temp is polled by ipmi_sim from a file every second (a console
# setting would be overwritten), the others are set through the console. Functions and variables
# here are prefixed ipmi_/TB_IPMI_ because all components are sourced into one shell.

TB_IPMI_DIR=$TB_DIR/ipmi
TB_IPMI_WAIT=${DROVER_TB_IPMI_WAIT:-20} # seconds for a started BMC to answer RMCP+
TB_IPMI_ADDR=127.0.0.1
TB_IPMI_MC=0x20 # IPMB address of the BMC

# The sensors of every testbed BMC, one row each, fields separated by '|':
#   key|number|ID string|sensor type|entity|unit code|M|R exp|nominal|LNR|LCR|LNC|UNC|UCR|UNR
# A reading is M * raw * 10^(R exp) in the unit (B = 0; raw is an unsigned byte, 0..255), so the
# representable range is 0 .. 255*M*10^R. Nominal and thresholds are in those units; '-' = none.
# Sensor types (IPMI table 42-3): 01h temperature, 02h voltage, 03h current (vendors put watts
# there too), 04h fan. Units (table 43-15): 1 degrees C, 4 volts, 6 watts, 18 RPM.
# Entities (table 43-13): 03h processor, 07h system board, 1Dh cooling device, 15h power unit, 37h air inlet.
TB_IPMI_SENSORS=(
  "cpu|1|CPU Temp|0x01|0x03|1|1|0|45|-|-|-|80|90|100"
  "inlet|2|Inlet Temp|0x01|0x37|1|1|0|24|-|-|-|40|45|50"
  "fan|3|FAN1|0x04|0x1d|18|50|0|6000|500|1000|1500|-|-|-"
  "12v|4|12V|0x02|0x07|4|6|-2|12|10.2|10.8|11.4|12.6|13.2|13.8"
  "power|5|Pwr Consumption|0x03|0x15|6|4|0|300|-|-|-|800|900|1000"
)
TB_IPMI_POLLED=cpu # the sensor whose reading ipmi_sim polls from a file (in raw units)

ipmi_dir() { echo "$TB_IPMI_DIR/$1"; }
ipmi_pidfile() { echo "$TB_IPMI_DIR/$1/ipmi_sim.pid"; }
ipmi_pollfile() { echo "$TB_IPMI_DIR/$1/$TB_IPMI_POLLED.raw"; }
ipmi_logfile() { echo "$TB_LOG/ipmi-$1.log"; }
ipmi_sensor_keys() { local r k=(); for r in "${TB_IPMI_SENSORS[@]}"; do k+=("${r%%|*}"); done; echo "${k[*]}"; }

# ipmi_sensor_row KEY: the TB_IPMI_SENSORS row of that sensor; 1 if there is none.
ipmi_sensor_row() {
  local r
  for r in "${TB_IPMI_SENSORS[@]}"; do
    [ "${r%%|*}" = "$1" ] && { echo "$r"; return 0; }
  done
  return 1
}

# ipmi_known_hv HV: HV is one of the testbed hypervisors.
ipmi_known_hv() { [[ " ${TB_HVS[*]} " == *" $1 "* ]] && [ -n "${TB_BMC_PORT[$1]:-}" ]; }

# ipmi_password: make sure $TB_BMC_PASSWORD_FILE holds this testbed's BMC password (16 characters
# [A-Za-z0-9], written once, no newline, mode 600). Never printed.
ipmi_password() {
  mkdir -p "$(dirname "$TB_BMC_PASSWORD_FILE")"
  if [ ! -s "$TB_BMC_PASSWORD_FILE" ]; then
    local pw
    pw=$(tr -dc 'A-Za-z0-9' </dev/urandom 2>/dev/null | head -c 16) || true
    [ ${#pw} -eq 16 ] || { tb_log "ipmi: could not generate a password from /dev/urandom"; return 1; }
    (umask 077 && printf '%s' "$pw" >"$TB_BMC_PASSWORD_FILE.tmp")
    mv "$TB_BMC_PASSWORD_FILE.tmp" "$TB_BMC_PASSWORD_FILE"
  fi
  chmod 600 "$TB_BMC_PASSWORD_FILE"
  grep -qx '[A-Za-z0-9]\{1,16\}' "$TB_BMC_PASSWORD_FILE" ||
    { tb_log "ipmi: $TB_BMC_PASSWORD_FILE must hold 1-16 letters or digits (delete it to generate a new one)"; return 1; }
}

# ipmi_lanconf HV: ipmi_sim's LAN configuration (ipmi_lan(5)) for HV, on stdout. Only the admin
# user exists (no anonymous user); v1.5 sessions must use MD5, never "none" or "straight".
ipmi_lanconf() {
  local hv=$1
  cat <<CONF
# written by scripts/testbed (ipmi) -- BMC of $hv; holds the BMC password: mode 600
name "drover-$hv"
set_working_mc $TB_IPMI_MC
  startlan 1
    addr $TB_IPMI_ADDR ${TB_BMC_PORT[$hv]}
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid $(printf '%s' "drover-bmc-$hv" | md5sum | cut -c1-32)
  endlan
  user 2 true "$TB_BMC_USER" "$(cat "$TB_BMC_PASSWORD_FILE")" admin 10 md5
console $TB_IPMI_ADDR ${TB_BMC_CONSOLE[$hv]}
CONF
}

# ipmi_emu: the ipmi_sim command file (ipmi_sim_cmd(5)) creating the BMC, its SEL, one Full Sensor
# Record per TB_IPMI_SENSORS row and the matching simulated sensors, on stdout; @POLLFILE@ stands
# for the path of the polled sensor's file.
ipmi_emu() {
  python3 - "$TB_IPMI_MC" "$TB_IPMI_POLLED" @POLLFILE@ "${TB_IPMI_SENSORS[@]}" <<'PY'
import sys

mc = int(sys.argv[1], 0)
polled, pollfile = sys.argv[2], sys.argv[3]
# Threshold order used below: bit 0..5 = LNC, LC, LNR, UNC, UC, UNR (IPMI's readable/settable masks).
ORDER = ("LNC", "LC", "LNR", "UNC", "UC", "UNR")


def raw(value, m, rexp, what):
    """Engineering value -> unsigned raw byte, for reading = m * raw * 10^rexp."""
    r = round(float(value) / (m * 10.0 ** rexp))
    if not 0 <= r <= 255:
        sys.exit("ipmi_emu: %s = %s is outside 0..%g" % (what, value, 255 * m * 10.0 ** rexp))
    return r


def full_sdr(number, name, stype, entity, unit, m, rexp, nominal, th):
    """A Full Sensor Record (IPMI 2.0 section 43.1, table 43-1) for a threshold sensor with
    unsigned 8-bit readings, linear conversion, B = 0 and no hysteresis."""
    mask = sum(1 << i for i, k in enumerate(ORDER) if th[k] is not None)
    low, up = mask & 7, mask >> 3  # bit0 NC, bit1 C, bit2 NR on each side
    # event bits: lower thresholds assert going low, upper ones going high
    ev_ls = (low & 1) | (low & 2) << 1 | (low & 4) << 2 | (up & 1) << 7
    ev_ms = (up & 2) | (up & 4) << 1
    ident = name.encode("ascii")
    if len(ident) > 16:
        sys.exit("ipmi_emu: sensor name %r is longer than 16 bytes" % name)
    tv = {k: (0 if th[k] is None else th[k]) for k in ORDER}
    body = [
        mc, 0x00, number,          # owner ID, owner LUN, sensor number
        entity, 0x01,              # entity ID, instance 1 (physical)
        0x67,                      # initialisation: scanning, events, type; events + scanning enabled
        0x48,                      # capabilities: auto re-arm, no hysteresis, thresholds readable+settable
        stype, 0x01,               # sensor type, event/reading type: threshold
        ev_ls, low << 4 | ev_ms,   # assertion events; lower threshold comparisons returned
        ev_ls, up << 4 | ev_ms,    # deassertion events; upper threshold comparisons returned
        mask, mask,                # readable, settable threshold masks
        0x00, unit, 0x00,          # units 1 (unsigned, no rate/modifier/%), base unit, modifier unit
        0x00,                      # linearisation: linear
        m & 0xFF, (m >> 8 & 3) << 6,  # M (10 bits), tolerance 0
        0x00, 0x00,                # B = 0, accuracy 0
        0x00,                      # accuracy exp, sensor direction
        (rexp & 0xF) << 4,         # R exponent (4-bit two's complement), B exponent 0
        0x01, nominal,             # analog flags: nominal reading given; nominal (raw)
        0x00, 0x00,                # normal max, normal min (not given)
        0xFF, 0x00,                # sensor maximum, minimum reading (raw)
        tv["UNR"], tv["UC"], tv["UNC"], tv["LNR"], tv["LC"], tv["LNC"],
        0x00, 0x00,                # positive, negative hysteresis
        0x00, 0x00, 0x00,          # reserved, reserved, OEM
        0xC0 | len(ident),         # ID string: 8-bit ASCII, length
    ] + list(ident)
    return mask, [0x00, 0x00, 0x51, 0x01, len(body)] + body  # record ID (assigned by the BMC), SDR 51h, type 01h


def bits(n):
    return format(n, "015b")


print("# written by scripts/testbed (ipmi): BMC %#04x with threshold sensors" % mc)
print("mc_setbmc %#04x" % mc)
# MC: device ID 0, no device SDRs, revision 1, firmware 1.00, IPMI 2.0 features 0x9f, manufacturer
# 0x0000 (none), product 0x0d10.
print("mc_add %#04x 0 no-device-sdrs 0x01 1 0x00 0x9f 0x000000 0x0d10" % mc)
print("sel_enable %#04x 1000 0x0a" % mc)
for row in sys.argv[4:]:
    f = row.split("|")
    key, number, name = f[0], int(f[1]), f[2]
    stype, entity, unit, m, rexp = int(f[3], 0), int(f[4], 0), int(f[5]), int(f[6]), int(f[7])
    nominal = raw(f[8], m, rexp, name + " nominal")
    th = {k: (None if v == "-" else raw(v, m, rexp, name + " " + k)) for k, v in zip(("LNR", "LC", "LNC", "UNC", "UC", "UNR"), f[9:15])}
    mask, sdr = full_sdr(number, name, stype, entity, unit, m, rexp, nominal, th)
    print("# %s (%s)" % (name, key))
    print("main_sdr_add %#04x %s" % (mc, " ".join("0x%02x" % b for b in sdr)))
    if key == polled:
        print('sensor_add %#04x 0 %d %#04x 0x01 poll 1000 file "%s"' % (mc, number, stype, pollfile))
    else:
        print("sensor_add %#04x 0 %d %#04x 0x01" % (mc, number, stype))
    print("sensor_set_threshold %#04x 0 %d settable %s %s" % (
        mc, number, format(mask, "06b"), " ".join("%#04x" % (0 if th[k] is None else th[k]) for k in reversed(ORDER))))
    # event bits of ipmi_sim (ipmi_sim_cmd(5)): 2i = threshold i going low, 2i+1 = going high
    ev = sum(1 << (2 * i) for i in range(3) if mask >> i & 1) | sum(1 << (2 * i + 1) for i in range(3, 6) if mask >> i & 1)
    print("sensor_set_event_support %#04x 0 %d enable scanning per-state %s %s %s %s" % (mc, number, bits(ev), bits(ev), bits(ev), bits(ev)))
    print("sensor_set_value %#04x 0 %d %#04x 0" % (mc, number, nominal))
print("mc_enable %#04x" % mc)
PY
}

# ipmi_ipmitool HV ARGS...: ipmitool against HV's BMC over RMCP+ with cipher suite 3, one try of
# 1 s. The password is read from its file (-f), never put on a command line.
ipmi_ipmitool() {
  local hv=$1; shift
  timeout 10 ipmitool -I lanplus -C 3 -H "$TB_IPMI_ADDR" -p "${TB_BMC_PORT[$hv]}" -U "$TB_BMC_USER" \
    -f "$TB_BMC_PASSWORD_FILE" -N 1 -R 1 "$@"
}

ipmi_answers() { ipmi_ipmitool "$1" mc info >/dev/null 2>&1; }

# ipmi_is_sim HV: the pid file of HV names a live ipmi_sim.
ipmi_is_sim() {
  local pf; pf=$(ipmi_pidfile "$1")
  tb_alive "$pf" && [ "$(cat "/proc/$(cat "$pf")/comm" 2>/dev/null)" = ipmi_sim ]
}

# ipmi_emu_template: (re)write $TB_IPMI_DIR/bmc.emu.in when the sensor table or the generator
# changed since it was written (python3 takes about 0.5 s to start on these machines).
ipmi_emu_template() {
  local key tmpl=$TB_IPMI_DIR/bmc.emu.in
  key=$( { declare -f ipmi_emu; printf '%s\n' "$TB_IPMI_MC" "$TB_IPMI_POLLED" "${TB_IPMI_SENSORS[@]}"; } | md5sum | cut -c1-32)
  [ -s "$tmpl" ] && [ "$(head -1 "$tmpl")" = "# key $key" ] && return 0
  { echo "# key $key"; ipmi_emu; } >"$tmpl.tmp" || { tb_log "ipmi: could not generate the sensor records (python3)"; return 1; }
  mv -f "$tmpl.tmp" "$tmpl"
}

# ipmi_start HV: write HV's configuration and start its ipmi_sim in its own session. $! is
# ipmi_sim's pid because setsid execs in place when it is no process-group leader, i.e. when job
# control is off as the background subshell forks (so it is turned off for that moment).
# Does not wait for it to answer.
ipmi_start() {
  local hv=$1 dir pf port cport jobctl=0
  dir=$(ipmi_dir "$hv"); pf=$(ipmi_pidfile "$hv")
  port=${TB_BMC_PORT[$hv]}; cport=${TB_BMC_CONSOLE[$hv]}
  tb_port_free "$port" || { tb_log "ipmi: $hv: port $port is taken by another process"; return 1; }
  tb_port_free "$cport" || { tb_log "ipmi: $hv: console port $cport is taken by another process"; return 1; }
  mkdir -p "$dir"
  chmod 700 "$dir"
  rm -rf "$dir/state"
  mkdir -p "$dir/state"
  (umask 077 && ipmi_lanconf "$hv" >"$dir/lan.conf")
  local row; row=$(ipmi_sensor_row "$TB_IPMI_POLLED")
  echo "$row" | awk -F'|' '{ printf "%d\n", $9 / ($7 * 10 ^ $8) + 0.5 }' >"$(ipmi_pollfile "$hv")"
  local pollfile emu
  pollfile=$(ipmi_pollfile "$hv")
  emu=$(<"$TB_IPMI_DIR/bmc.emu.in")
  printf '%s\n' "${emu//@POLLFILE@/"$pollfile"}" >"$dir/bmc.emu"
  case $- in *m*) jobctl=1; set +m ;; esac
  (cd / && exec setsid ipmi_sim -n -c "$dir/lan.conf" -f "$dir/bmc.emu" -s "$dir/state" \
    </dev/null >"$(ipmi_logfile "$hv")" 2>&1) &
  echo $! >"$pf"
  [ $jobctl = 0 ] || set -m
}

# ipmi_bound HV: a UDP socket is bound to HV's BMC port (cheap: no ipmitool, whose first try
# against a port not bound yet can cost its whole 1 s timeout). Column 2 of /proc/net/udp is the
# local address:port, the port in hex.
ipmi_bound() {
  awk -v p=":$(printf '%04X' "${TB_BMC_PORT[$1]}")" 'NR > 1 && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' /proc/net/udp
}

# ipmi_wait HV: bounded wait ($TB_IPMI_WAIT s) until HV's BMC answers RMCP+; 1 if it died or timed out.
ipmi_wait() {
  local hv=$1 end=$(($(date +%s) + TB_IPMI_WAIT))
  until ipmi_bound "$hv" && ipmi_answers "$hv"; do
    if ! ipmi_is_sim "$hv"; then
      tb_log "ipmi: $hv: ipmi_sim exited; last lines of $(ipmi_logfile "$hv"):"
      tail -5 "$(ipmi_logfile "$hv")" >&2
      return 1
    fi
    if [ "$(date +%s)" -ge "$end" ]; then
      tb_log "ipmi: $hv: no RMCP+ answer on $TB_IPMI_ADDR:${TB_BMC_PORT[$hv]} within ${TB_IPMI_WAIT}s (log $(ipmi_logfile "$hv"))"
      return 1
    fi
    sleep 0.05
  done
}

# ---------------------------------------------------------------- component interface
ipmi_up() {
  local hv started=()
  command -v ipmi_sim >/dev/null || { tb_log "ipmi: no ipmi_sim (apt-get install openipmi)"; return 1; }
  command -v ipmitool >/dev/null || { tb_log "ipmi: no ipmitool (apt-get install ipmitool)"; return 1; }
  mkdir -p "$TB_IPMI_DIR" "$TB_LOG"
  ipmi_password || return 1
  for hv in "${TB_HVS[@]}"; do
    if ipmi_is_sim "$hv"; then
      continue
    fi
    ipmi_emu_template || return 1
    ipmi_start "$hv" || return 1
    started+=("$hv")
  done
  for hv in "${TB_HVS[@]}"; do # the already running ones must answer too
    if ipmi_wait "$hv"; then continue; fi
    if [[ " ${started[*]} " == *" $hv "* ]]; then
      tb_stop "$(ipmi_pidfile "$hv")" "ipmi_sim $hv"
    else
      tb_log "ipmi: $hv: ipmi_sim (pid $(cat "$(ipmi_pidfile "$hv")")) runs but does not answer: scripts/testbed down ipmi; scripts/testbed up ipmi"
    fi
    return 1
  done
  [ ${#started[@]} -eq 0 ] && tb_log "ipmi: already running" || tb_log "ipmi: started ${started[*]}"
}

ipmi_down() {
  local hv pf
  for hv in "${TB_HVS[@]}"; do
    pf=$(ipmi_pidfile "$hv")
    if ipmi_is_sim "$hv"; then
      tb_stop "$pf" "ipmi_sim $hv"
    elif [ -e "$pf" ]; then
      rm -f "$pf" # stale: its pid is gone, or now belongs to another program, which is left alone
    fi
  done
}

ipmi_status() {
  local hv rc=0 pf
  for hv in "${TB_HVS[@]}"; do
    pf=$(ipmi_pidfile "$hv")
    if ipmi_is_sim "$hv" && ipmi_answers "$hv"; then
      tb_status_line "ipmi $hv" up "pid $(cat "$pf"), RMCP+ $TB_IPMI_ADDR:${TB_BMC_PORT[$hv]}, console $TB_IPMI_ADDR:${TB_BMC_CONSOLE[$hv]}"
    elif ipmi_is_sim "$hv"; then
      tb_status_line "ipmi $hv" down "pid $(cat "$pf") runs but RMCP+ $TB_IPMI_ADDR:${TB_BMC_PORT[$hv]} does not answer (log $(ipmi_logfile "$hv"))"
      rc=1
    else
      tb_status_line "ipmi $hv" down "not running: scripts/testbed up ipmi"
      rc=1
    fi
  done
  return $rc
}

# ipmi_sensor HV SENSOR VALUE: set SENSOR of HV's BMC to VALUE (engineering units), rounded to the
# sensor's resolution. Crossing a threshold makes the BMC log a SEL event.
ipmi_sensor() {
  [ $# -eq 3 ] || tb_die "usage: testbed sensor HV SENSOR VALUE"
  local hv=$1 key=$2 value=$3 row raw actual out
  ipmi_known_hv "$hv" || tb_die "sensor: unknown hypervisor '$hv' (known: ${TB_HVS[*]})"
  row=$(ipmi_sensor_row "$key") || tb_die "sensor: unknown sensor '$key' (known: $(ipmi_sensor_keys))"
  local num name unit m rexp
  IFS='|' read -r _ num name _ _ unit m rexp _ <<<"$row"
  [[ "$value" =~ ^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)$ ]] || tb_die "sensor: value '$value' is not a number"
  read -r raw actual < <(awk -v v="$value" -v m="$m" -v r="$rexp" 'BEGIN {
    step = m * 10 ^ r; max = 255 * step
    if (v < 0 || v > max + step * 1e-6) { printf "range %g\n", max; exit }
    raw = int(v / step + 0.5); printf "%d %g\n", raw, raw * step }')
  [ "$raw" = range ] && tb_die "sensor: $name takes 0 to $actual $(ipmi_unit_name "$unit"); '$value' is out of range"
  ipmi_is_sim "$hv" || tb_die "sensor: the BMC of $hv is not running: scripts/testbed up ipmi"
  if [ "$key" = "$TB_IPMI_POLLED" ]; then
    # ipmi_sim re-reads this file every second; replace it atomically so it never reads half a file
    local pf; pf=$(ipmi_pollfile "$hv")
    echo "$raw" >"$pf.tmp" && mv -f "$pf.tmp" "$pf"
    echo "$hv $name = $actual $(ipmi_unit_name "$unit") (raw $raw; ipmi_sim reads it within 1 s)"
    return 0
  fi
  out=$(printf 'sensor_set_value %s 0 %d %d 1\n' "$TB_IPMI_MC" "$num" "$raw" |
    timeout 5 nc -N "$TB_IPMI_ADDR" "${TB_BMC_CONSOLE[$hv]}" 2>&1 | tr -cd '[:print:]\n') ||
    tb_die "sensor: no answer from the console of $hv at $TB_IPMI_ADDR:${TB_BMC_CONSOLE[$hv]}"
  if grep -q '^\*\*' <<<"$out"; then tb_die "sensor: ipmi_sim refused: $(grep '^\*\*' <<<"$out")"; fi
  echo "$hv $name = $actual $(ipmi_unit_name "$unit") (raw $raw)"
}

ipmi_unit_name() {
  case $1 in 1) echo "°C" ;; 4) echo V ;; 6) echo W ;; 18) echo RPM ;; *) echo "(unit $1)" ;; esac
}
