# shellcheck shell=bash
# Shared settings and helpers for scripts/testbed and its components (scripts/testbed.d/*.sh).
# Every address, port and path of the local testbed is defined here, once; components only read them.
# Everything may be overridden from the environment (DROVER_TB_*), e.g. to run two testbeds side by side.

TB_REPO=${TB_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TB_DIR=${DROVER_TESTBED_DIR:-$TB_REPO/.testbed}
TB_RUN=$TB_DIR/run            # pid files, sockets
TB_LOG=$TB_DIR/log            # daemon logs
TB_CONFIG=$TB_DIR/drover.yaml # drover config written by `up`
TB_ENVFILE=$TB_DIR/env.sh

# ---- the testbed network: a network namespace holding bridge br0, joined to the host by a veth pair.
# The host side of the veth carries the controller address (slurmctld, PostgreSQL and drover are
# reachable there from VMs); hypervisors listen on their own addresses on the bridge.
TB_NETNS=${DROVER_TB_NETNS:-drover-tb}
TB_HOST_IF=${DROVER_TB_HOST_IF:-drtb0}   # host side of the veth
TB_NS_IF=${DROVER_TB_NS_IF:-drtb1}       # netns side, enslaved to br0
TB_BRIDGE=br0
TB_PREFIX=${DROVER_TB_PREFIX:-198.18.0}  # RFC 2544 benchmarking range; never routed anywhere
TB_CTL_ADDR=$TB_PREFIX.1                 # host side of the veth
TB_NX="ip netns exec $TB_NETNS"

# ---- hypervisors (libvirtd, one per mount+UTS namespace, inside the testbed netns)
TB_HVS=(hv1 hv2)
declare -A TB_HV_ADDR=([hv1]=$TB_PREFIX.2 [hv2]=$TB_PREFIX.3)
declare -A TB_HV_UUID=([hv1]=0a0a0a0a-0000-4000-8000-0000000000a1 [hv2]=0b0b0b0b-0000-4000-8000-0000000000b2)
declare -A TB_HV_MIGPORTS=([hv1]="49152 49199" [hv2]="49200 49249")
TB_LIBVIRT_PORT=16509       # TCP without authentication: the testbed's own scripts (virsh)
TB_LIBVIRT_TLS_PORT=16514   # TLS with client certificates from the testbed's CA: drover
TB_DOMAIN_TYPE=${DROVER_TB_DOMAIN_TYPE:-qemu}   # qemu = TCG (works everywhere); kvm on real hosts

# ---- BMCs (ipmi_sim, one per hypervisor, on host loopback)
declare -A TB_BMC_PORT=([hv1]=16623 [hv2]=16633)
declare -A TB_BMC_CONSOLE=([hv1]=16624 [hv2]=16634)
TB_BMC_USER=admin
TB_BMC_PASSWORD_FILE=$TB_DIR/ipmi/password

# ---- PostgreSQL (TEST_DATABASE_URL when reachable, else a private cluster on loopback)
TB_PG_PORT=${DROVER_TB_PG_PORT:-16432}
TB_PG_DB=drover

# ---- Slurm
TB_SLURM_DIR=$TB_DIR/slurm
TB_SLURM_CONF=$TB_SLURM_DIR/etc/slurm.conf
TB_SLURMCTLD_PORT=${DROVER_TB_SLURMCTLD_PORT:-16817}
TB_SLURMD_PORT0=${DROVER_TB_SLURMD_PORT0:-17000}   # n1..nN listen on PORT0+1..PORT0+N
TB_SLURM_NODES=${DROVER_TB_SLURM_NODES:-3}
TB_SLURMRESTD_PORT=${DROVER_TB_SLURMRESTD_PORT:-16820}
TB_SLURM_TOKEN_FILE=$TB_SLURM_DIR/run/root.jwt

# ---- vnodes: Slurm nodes that are VMs (State=CLOUD, booted by drover through Slurm's ResumeProgram)
TB_VNODES=${DROVER_TB_VNODES:-4}            # vn1..vnN
TB_VNODE_ADDR0=11                           # vn1 is $TB_PREFIX.11, vn2 .12, ...
TB_VNODE_MEM=${DROVER_TB_VNODE_MEM:-512}    # MiB per vnode VM
TB_VNODE_REALMEM=300                        # what slurm.conf promises (the guest sees less than TB_VNODE_MEM)
TB_VNODE_DIR=$TB_DIR/vnode
TB_HOOKS_DIR=$TB_DIR/slurm/hooks

# ---- Debian packages the testbed needs (installed when missing)
TB_PACKAGES=(
  postgresql postgresql-contrib
  munge slurmctld slurmd slurmrestd slurm-client slurm-wlm-jwt-plugin
  libvirt-daemon-system libvirt-clients libvirt-dev qemu-system-x86
  openipmi ipmitool freeipmi-tools
  iproute2 busybox-static cpio debootstrap curl netcat-openbsd bc python3 procps prometheus-node-exporter openssl
)

# ---------------------------------------------------------------- helpers
tb_now() { date +%s.%N; }
tb_since() { awk -v a="$1" -v b="$(tb_now)" 'BEGIN{printf "%.2f", b-a}'; }
tb_log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
tb_die() { printf 'testbed: %s\n' "$*" >&2; exit 1; }

# tb_alive PIDFILE: the pid file names a live, non-zombie process.
tb_alive() {
  local p
  [ -s "$1" ] && p=$(cat "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null &&
    ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$p/stat" 2>/dev/null
}

# tb_waitfor TIMEOUT_S CMD...: poll CMD every $TB_POLL s (default 0.1) until it succeeds; 1 on timeout.
tb_waitfor() {
  local t=$1; shift
  local end=$(($(date +%s) + t))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep "${TB_POLL:-0.1}"
  done
}

# tb_stop PIDFILE LABEL: SIGTERM the process named by PIDFILE (only that pid), SIGKILL after 10 s.
tb_stop() {
  local pf=$1 label=$2 p i
  [ -s "$pf" ] || { rm -f "$pf"; return 0; }
  p=$(cat "$pf")
  if tb_alive "$pf"; then
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 1 100); do tb_alive "$pf" || break; sleep 0.1; done
    if tb_alive "$pf"; then
      tb_log "$label ($p) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$p" 2>/dev/null
    fi
    tb_log "stopped $label (pid $p)"
  fi
  rm -f "$pf"
}

# tb_port_free PORT [ADDR]: nothing listens on ADDR:PORT (TCP or UDP).
tb_port_free() {
  ! ss -Hlntu 2>/dev/null | awk '{print $5}' | grep -qE "(^|[:.])$1\$"
}

# tb_status_line COMPONENT STATE DETAIL: one aligned row of `testbed status`.
tb_status_line() { printf '%-14s %-5s %s\n' "$1" "$2" "$3"; }

# tb_missing_packages: the TB_PACKAGES not installed yet.
tb_missing_packages() {
  local p missing=()
  for p in "${TB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  echo "${missing[@]}"
}
