# shellcheck shell=bash
# libvirt: one monolithic libvirtd per hypervisor in TB_HVS, inside the testbed netns, plus the test
# guest image (scripts/guest/build.sh).
#
# Each libvirtd runs in its own mount + UTS namespace: /etc/libvirt, /run/libvirt, /var/lib/libvirt,
# /var/cache/libvirt, /var/log/libvirt and /etc/hosts are bind-mounted from $TB_LIBVIRT_DIR/<hv>, its
# hostname is the hypervisor's name and its host_uuid is TB_HV_UUID, so libvirt takes the two for
# different hosts (a live migration between them is not refused as "same host"). It listens on
# TB_HV_ADDR:TB_LIBVIRT_TLS_PORT with TLS, accepting only drover's client certificate from the
# testbed's CA (libvirt_pki), which drover uses; and on TB_HV_ADDR:TB_LIBVIRT_PORT without
# authentication for the testbed's own virsh calls. Both are reachable from the host over the veth.
#
# The first domain start on a fresh libvirtd probes QEMU for 4-8 s. `up` keeps the probed
# capabilities in $TB_LIBVIRT_DIR/capscache, seeds every hypervisor's cache from it, and asks each
# libvirtd for its capabilities before returning, so the first guest starts without probing.

TB_LIBVIRT_DIR=$TB_DIR/libvirt
TB_CAPS_SEED=$TB_LIBVIRT_DIR/capscache   # copy of /var/cache/libvirt/qemu after a successful probe
TB_GUEST_DIR=$TB_DIR/guest               # out/{vmlinuz,initramfs.cpio.gz,build-info}, debs/
TB_LIBVIRT_WAIT=${DROVER_TB_LIBVIRT_WAIT:-30}  # seconds a libvirtd gets to answer

TB_PKI_DIR=$TB_LIBVIRT_DIR/pki          # ca/, <hv>/ (server), client/ (drover's ?pkipath=)
TB_PKI_CLIENT_DN="O=drover testbed,CN=drover"   # as virt-pki-query-dn prints it, which libvirtd matches

libvirt_uri() { echo "qemu+tcp://${TB_HV_ADDR[$1]}:$TB_LIBVIRT_PORT/system"; }
# libvirt_tls_uri HV: what drover uses: TLS, the server's certificate checked against the testbed's
# CA and its address, drover's client certificate from the pki directory.
libvirt_tls_uri() { echo "qemu+tls://${TB_HV_ADDR[$1]}:$TB_LIBVIRT_TLS_PORT/system?pkipath=$TB_PKI_DIR/client"; }
libvirt_virsh() { # libvirt_virsh HV ARGS...: virsh against that hypervisor, never hanging
  local hv=$1; shift
  timeout 20 virsh -q -c "$(libvirt_uri "$hv")" "$@"
}
# libvirtd writes and removes daemon.pid itself; libvirtd.pid is ours and stays until tb_stop.
libvirt_pidfile() { echo "$TB_LIBVIRT_DIR/$1/libvirtd.pid"; }
libvirt_answers() { timeout 5 virsh -q -c "$(libvirt_uri "$1")" hostname >/dev/null 2>&1; }

# libvirt_pki_cert DIR NAME CN EXTENSIONS: a key and a certificate signed by the testbed's CA
# (NAME.pem and NAME-key.pem renamed by the caller) with the given X.509v3 extensions.
libvirt_pki_cert() {
  local d=$1 name=$2 cn=$3 ext=$4 ca=$TB_PKI_DIR/ca
  printf '[x]\n%s\n' "$ext" >"$d/$name.ext"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$d/$name-key.pem" -out "$d/$name.csr" \
    -subj "/O=drover testbed/CN=$cn" 2>>"$TB_PKI_DIR/openssl.log" &&
    openssl x509 -req -in "$d/$name.csr" -CA "$ca/cacert.pem" -CAkey "$ca/cakey.pem" -set_serial "0x$(openssl rand -hex 8)" \
      -days 3650 -extfile "$d/$name.ext" -extensions x -out "$d/$name.pem" 2>>"$TB_PKI_DIR/openssl.log" ||
    tb_die "libvirt: could not make the $cn certificate with openssl (see $TB_PKI_DIR/openssl.log)"
  rm -f "$d/$name.csr" "$d/$name.ext"
  chmod 600 "$d/$name-key.pem"
}

# libvirt_pki: the testbed's CA, a certificate per hypervisor (its address and name as subject
# alternative names; libvirtd's server certificate, and QEMU's for TLS migrations, where each
# side is server or client) and drover's client certificate; made once, remade when a
# hypervisor's address changed. libvirtd accepts only clients with drover's certificate.
libvirt_pki() {
  local hv d ca=$TB_PKI_DIR/ca t
  t=$(tb_now)
  mkdir -p "$ca" && chmod 700 "$TB_PKI_DIR"
  if [ ! -s "$ca/cacert.pem" ] || [ ! -s "$ca/cakey.pem" ]; then
    rm -rf "${TB_PKI_DIR:?}"/* && mkdir -p "$ca"
    printf '[req]\ndistinguished_name = dn\n[dn]\n[x]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n' >"$ca/ca.ext"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca/cakey.pem" -out "$ca/cacert.pem" -days 3650 \
      -subj "/O=drover testbed/CN=drover testbed CA" -config "$ca/ca.ext" -extensions x 2>>"$TB_PKI_DIR/openssl.log" ||
      tb_die "libvirt: could not make the testbed CA with openssl (see $TB_PKI_DIR/openssl.log)"
    chmod 600 "$ca/cakey.pem"
  fi
  for hv in "${TB_HVS[@]}"; do
    d=$TB_PKI_DIR/$hv
    if [ ! -s "$d/servercert.pem" ] || [ "$(cat "$d/address" 2>/dev/null)" != "${TB_HV_ADDR[$hv]} server+client" ]; then
      mkdir -p "$d"
      libvirt_pki_cert "$d" server "$hv" "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:${TB_HV_ADDR[$hv]}, DNS:$hv"
      mv "$d/server.pem" "$d/servercert.pem" && mv "$d/server-key.pem" "$d/serverkey.pem"
      echo "${TB_HV_ADDR[$hv]} server+client" >"$d/address"
      tb_log "libvirt: TLS certificate for $hv (${TB_HV_ADDR[$hv]})"
    fi
    # QEMU's names for the same files (qemu.conf migrate_tls_x509_cert_dir)
    mkdir -p "$d/qemu"
    cp "$ca/cacert.pem" "$d/qemu/ca-cert.pem"
    for role in server client; do
      cp "$d/servercert.pem" "$d/qemu/$role-cert.pem" && cp "$d/serverkey.pem" "$d/qemu/$role-key.pem"
    done
  done
  d=$TB_PKI_DIR/client
  if [ ! -s "$d/clientcert.pem" ]; then
    mkdir -p "$d"
    libvirt_pki_cert "$d" client drover "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth"
    mv "$d/client.pem" "$d/clientcert.pem" && mv "$d/client-key.pem" "$d/clientkey.pem"
  fi
  cp "$ca/cacert.pem" "$d/cacert.pem"
  tb_log "libvirt: PKI ready in $(tb_since "$t")s ($TB_PKI_DIR)"
}

# libvirt_write_config HV DIR: libvirtd.conf, qemu.conf and hosts for one hypervisor. Only the
# settings that differ from libvirt's defaults are written; the packaged files are not used.
libvirt_write_config() {
  local hv=$1 d=$2 addr=${TB_HV_ADDR[$1]} pmin pmax h
  read -r pmin pmax <<<"${TB_HV_MIGPORTS[$hv]}"
  cat >"$d/etc/libvirtd.conf" <<CONF
# written by scripts/testbed for hypervisor $hv
listen_tls = 1
tls_port = "$TB_LIBVIRT_TLS_PORT"
ca_file = "$TB_PKI_DIR/ca/cacert.pem"
cert_file = "$TB_PKI_DIR/$hv/servercert.pem"
key_file = "$TB_PKI_DIR/$hv/serverkey.pem"
tls_allowed_dn_list = ["$TB_PKI_CLIENT_DN"]
listen_tcp = 1
listen_addr = "$addr"
tcp_port = "$TB_LIBVIRT_PORT"
auth_tcp = "none"
auth_unix_rw = "none"
host_uuid = "${TB_HV_UUID[$hv]}"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
  cat >"$d/etc/qemu.conf" <<CONF
# written by scripts/testbed for hypervisor $hv: no confinement, QEMU runs as root
security_driver = "none"
user = "root"
group = "root"
dynamic_ownership = 0
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_address = "$addr"
migration_host = "$addr"
migration_port_min = $pmin
migration_port_max = $pmax
migrate_tls_x509_cert_dir = "$TB_PKI_DIR/$hv/qemu"
migrate_tls_x509_verify = 1
CONF
  {
    echo "127.0.0.1 localhost"
    echo "$TB_CTL_ADDR controller"
    for h in "${TB_HVS[@]}"; do echo "${TB_HV_ADDR[$h]} $h"; done
  } >"$d/hosts"
}

# libvirt_kill_qemus HV: SIGKILL the QEMU processes libvirt recorded for HV (pid files in its
# private /run/libvirt/qemu), checking each pid is still a QEMU before touching it.
libvirt_kill_qemus() {
  local hv=$1 pf p exe
  for pf in "$TB_LIBVIRT_DIR/$hv"/run/qemu/*.pid; do
    [ -s "$pf" ] || continue
    p=$(cat "$pf")
    exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
    case $exe in
      */qemu-system-*) kill -KILL "$p" 2>/dev/null && tb_log "$hv: killed leftover QEMU $(basename "$pf" .pid) (pid $p)" ;;
    esac
  done
  return 0
}

# libvirt_start HV: start HV's libvirtd unless it already runs, and wait until it answers.
libvirt_start() {
  local hv=$1 d=$TB_LIBVIRT_DIR/$1 pf dpf t p
  pf=$(libvirt_pidfile "$hv") dpf=$TB_LIBVIRT_DIR/$1/daemon.pid
  if tb_alive "$pf"; then
    tb_waitfor "$TB_LIBVIRT_WAIT" libvirt_answers "$hv" ||
      tb_die "$hv: libvirtd (pid $(cat "$pf")) runs but does not answer on $(libvirt_uri "$hv"): scripts/testbed down libvirt, then up"
    tb_log "$hv: libvirtd already running (pid $(cat "$pf"))"
    return 0
  fi
  libvirt_kill_qemus "$hv"
  # a fresh host every time: no domains, networks or caches survive a restart (logs do)
  rm -rf "$d/etc" "$d/run" "$d/lib" "$d/cache" "$pf" "$dpf"
  mkdir -p "$d"/{etc,run,lib,cache/qemu,log}
  cp -a /etc/libvirt/. "$d/etc/"
  find "$d/etc" -path '*/autostart/*' -delete # never start the default network (virbr0, 192.168.122.0/24)
  libvirt_write_config "$hv" "$d"
  if [ -d "$TB_CAPS_SEED/capabilities" ]; then cp -a "$TB_CAPS_SEED/." "$d/cache/qemu/"; fi

  t=$(tb_now)
  # setsid: own session, survives the caller; every step execs, so $! ends up being libvirtd
  setsid $TB_NX unshare --mount --uts --propagation private /bin/sh -c '
    set -e
    d=$1
    mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
    mount --bind "$d/etc" /etc/libvirt
    mount --bind "$d/run" /run/libvirt
    mount --bind "$d/lib" /var/lib/libvirt
    mount --bind "$d/cache" /var/cache/libvirt
    mount --bind "$d/log" /var/log/libvirt
    mount --bind "$d/hosts" /etc/hosts
    hostname "$2"
    exec /usr/sbin/libvirtd --listen -f /etc/libvirt/libvirtd.conf -p "$3"
  ' sh "$d" "$hv" "$dpf" >>"$d/libvirtd.out" 2>&1 </dev/null &
  p=$!
  echo "$p" >"$pf" # at once, so that `down` can stop a libvirtd that never answers
  local end=$(($(date +%s) + TB_LIBVIRT_WAIT))
  until libvirt_answers "$hv"; do
    if ! kill -0 "$p" 2>/dev/null && ! tb_alive "$dpf"; then
      tail -5 "$d/libvirtd.out" "$d/log/libvirtd.log" >&2 2>/dev/null
      tb_die "$hv: libvirtd exited at start (see $d/libvirtd.out and $d/log/libvirtd.log)"
    fi
    [ "$(date +%s)" -lt "$end" ] || tb_die "$hv: libvirtd (pid $p) did not answer on $(libvirt_uri "$hv") within ${TB_LIBVIRT_WAIT}s"
    sleep 0.1
  done
  if [ -s "$dpf" ]; then cp "$dpf" "$pf"; fi # the same pid unless setsid had to fork
  tb_log "$hv: libvirtd up in $(tb_since "$t")s (pid $(cat "$pf"), $(libvirt_uri "$hv"))"
}

# libvirt_warm HV: make HV load (or probe) QEMU's capabilities now rather than at the first start.
libvirt_warm() {
  local hv=$1 t
  t=$(tb_now)
  libvirt_virsh "$hv" capabilities >/dev/null &&
    libvirt_virsh "$hv" domcapabilities --virttype "$TB_DOMAIN_TYPE" --arch x86_64 >/dev/null ||
    tb_die "$hv: libvirtd cannot use QEMU with domain type $TB_DOMAIN_TYPE (see $TB_LIBVIRT_DIR/$hv/log/libvirtd.log)"
  tb_log "$hv: QEMU capabilities ready in $(tb_since "$t")s"
}

# libvirt_save_caps HV: keep HV's capabilities cache as the seed when it differs from the seed.
libvirt_save_caps() {
  local src=$TB_LIBVIRT_DIR/$1/cache/qemu
  [ -d "$src/capabilities" ] || return 0
  diff -rq "$src" "$TB_CAPS_SEED" >/dev/null 2>&1 && return 0
  rm -rf "$TB_CAPS_SEED.new" && cp -a "$src" "$TB_CAPS_SEED.new"
  rm -rf "$TB_CAPS_SEED" && mv "$TB_CAPS_SEED.new" "$TB_CAPS_SEED"
  tb_log "libvirt: saved QEMU capabilities cache from $1 as seed ($TB_CAPS_SEED)"
}

libvirt_up() {
  local hv first pids=() names=() i rc=0 gb
  net_exists || tb_die "libvirt: no netns $TB_NETNS: run scripts/testbed up net first"
  [ -x /usr/sbin/libvirtd ] || tb_die "libvirt: /usr/sbin/libvirtd missing: scripts/testbed install"
  case $TB_DOMAIN_TYPE in
    qemu) ;;
    kvm) [ -c /dev/kvm ] || tb_die "libvirt: DROVER_TB_DOMAIN_TYPE=kvm but this machine has no /dev/kvm: use qemu (TCG)" ;;
    *) tb_die "libvirt: DROVER_TB_DOMAIN_TYPE must be qemu or kvm, not '$TB_DOMAIN_TYPE'" ;;
  esac
  mkdir -p "$TB_LIBVIRT_DIR" "$TB_GUEST_DIR" "$TB_LOG"
  libvirt_pki

  # the guest image builds while the daemons start
  gb=$TB_LOG/guest-build.log
  "$TB_REPO/scripts/guest/build.sh" "$TB_GUEST_DIR" >"$gb" 2>&1 &
  pids+=($!) names+=("guest image")
  for hv in "${TB_HVS[@]}"; do
    libvirt_start "$hv" &
    pids+=($!) names+=("$hv")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { tb_log "libvirt: ${names[$i]} failed"; rc=1; }
  done
  cat "$gb" >&2
  [ $rc = 0 ] || return 1

  # capabilities: the first hypervisor probes (or loads the seed), later ones start from its cache
  first=${TB_HVS[0]}
  libvirt_warm "$first"
  libvirt_save_caps "$first"
  pids=() names=()
  for hv in "${TB_HVS[@]:1}"; do
    if [ -d "$TB_CAPS_SEED/capabilities" ]; then cp -a "$TB_CAPS_SEED/." "$TB_LIBVIRT_DIR/$hv/cache/qemu/"; fi
    libvirt_warm "$hv" &
    pids+=($!) names+=("$hv")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { tb_log "libvirt: ${names[$i]} failed"; rc=1; }
  done
  return $rc
}

libvirt_down() {
  local hv pf dom
  for hv in "${TB_HVS[@]}"; do
    pf=$(libvirt_pidfile "$hv")
    if tb_alive "$pf" && libvirt_answers "$hv"; then
      for dom in $(libvirt_virsh "$hv" list --name 2>/dev/null); do
        libvirt_virsh "$hv" destroy "$dom" >/dev/null 2>&1 && tb_log "$hv: destroyed domain $dom"
      done
    fi
    libvirt_kill_qemus "$hv"
    tb_stop "$pf" "libvirtd $hv"
  done
  return 0
}

libvirt_status() {
  local hv pf rc=0 doms guest
  for hv in "${TB_HVS[@]}"; do
    pf=$(libvirt_pidfile "$hv")
    if ! tb_alive "$pf"; then
      tb_status_line "libvirt $hv" down "no libvirtd: run scripts/testbed up libvirt"
      rc=1
    elif ! libvirt_answers "$hv"; then
      tb_status_line "libvirt $hv" down "libvirtd pid $(cat "$pf") does not answer on $(libvirt_uri "$hv"): see $TB_LIBVIRT_DIR/$hv/log/libvirtd.log"
      rc=1
    else
      doms=$(libvirt_virsh "$hv" list --name 2>/dev/null | grep -c . || true)
      tb_status_line "libvirt $hv" up "pid $(cat "$pf"), drover: qemu+tls://${TB_HV_ADDR[$hv]}:$TB_LIBVIRT_TLS_PORT (CA and certificates in $TB_PKI_DIR), scripts: $(libvirt_uri "$hv"), $doms running domain(s)"
    fi
  done
  if [ -s "$TB_GUEST_DIR/out/build-info" ]; then
    guest=$(awk -F= '/^(kernel_package|built_at)=/ {printf "%s ", $2}' "$TB_GUEST_DIR/out/build-info")
    tb_status_line "guest image" ok "$TB_GUEST_DIR/out ($guest)"
  else
    tb_status_line "guest image" none "not built: scripts/testbed up libvirt"
  fi
  return $rc
}
