# shellcheck shell=bash
# vnode: the image Slurm's vnodes boot (scripts/vnode/build-image.sh): a cached Debian base with
# slurmd and munge, plus an overlay with this cluster's slurm.conf and munge key, rebuilt whenever
# those change. The VMs themselves are started by drover when Slurm resumes a vnode.

vnode_kernel_deb() { find "$TB_DIR/guest/debs" -maxdepth 1 -name 'linux-image-*.deb' 2>/dev/null | sort | tail -1; }

vnode_overlay_key() { cat "$TB_SLURM_CONF" "$TB_SLURM_MUNGE_KEY" "$TB_VNODE_DIR/base.key" 2>/dev/null | sha256sum | cut -c1-16; }

vnode_up() {
  local deb t
  deb=$(vnode_kernel_deb)
  [ -n "$deb" ] || { tb_log "vnode: no kernel package in $TB_DIR/guest/debs: run scripts/testbed up libvirt first"; return 1; }
  [ -s "$TB_SLURM_CONF" ] && [ -s "$TB_SLURM_MUNGE_KEY" ] || { tb_log "vnode: no slurm.conf or munge key: run scripts/testbed up slurm first"; return 1; }
  mkdir -p "$TB_VNODE_DIR/serial" "$TB_LOG"
  t=$(tb_now)
  "$TB_REPO/scripts/vnode/build-image.sh" base "$deb" "$TB_VNODE_DIR" >>"$TB_LOG/vnode-build.log" 2>&1 ||
    { tail -15 "$TB_LOG/vnode-build.log" >&2; tb_log "vnode: base image build failed (log: $TB_LOG/vnode-build.log)"; return 1; }
  if [ "$(cat "$TB_VNODE_DIR/overlay.key" 2>/dev/null)" != "$(vnode_overlay_key)" ] || [ ! -s "$TB_VNODE_DIR/initrd" ]; then
    "$TB_REPO/scripts/vnode/build-image.sh" overlay "$(dirname "$TB_SLURM_CONF")" "$TB_SLURM_MUNGE_KEY" "$TB_VNODE_DIR" >>"$TB_LOG/vnode-build.log" 2>&1 ||
      { tail -15 "$TB_LOG/vnode-build.log" >&2; tb_log "vnode: overlay build failed (log: $TB_LOG/vnode-build.log)"; return 1; }
    vnode_overlay_key >"$TB_VNODE_DIR/overlay.key"
  fi
  tb_log "vnode: image ready in $(tb_since "$t")s ($(du -h "$TB_VNODE_DIR/initrd" | cut -f1) initrd)"
}

vnode_down() { :; } # vnode VMs stop with their hypervisors (libvirt down); the image stays cached

vnode_status() {
  if [ -s "$TB_VNODE_DIR/initrd" ] && [ -s "$TB_VNODE_DIR/vmlinuz" ] &&
    [ "$(cat "$TB_VNODE_DIR/overlay.key" 2>/dev/null)" = "$(vnode_overlay_key)" ]; then
    tb_status_line vnode ok "image $TB_VNODE_DIR/initrd for vn[1-$TB_VNODES] ($TB_PREFIX.$TB_VNODE_ADDR0 and up)"
  else
    tb_status_line vnode down "image missing or older than slurm.conf: scripts/testbed up vnode"
    return 1
  fi
}
