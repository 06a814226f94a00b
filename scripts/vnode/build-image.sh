#!/usr/bin/env bash
# Build the vnode image: a Debian kernel and an initramfs holding a minimal Debian bookworm with
# slurmd, slurm-client and munge, so a vnode needs no disk and live migration no shared storage.
#
#   build-image.sh base KERNEL_DEB OUTDIR     cached base: OUTDIR/vmlinuz, OUTDIR/base.cpio.gz
#   build-image.sh overlay SLURM_ETC MUNGE_KEY OUTDIR
#                                             per-cluster overlay (slurm.conf, cgroup.conf, munge key)
#                                             and OUTDIR/initrd = base + overlay (Linux unpacks both)
#
# The base is rebuilt only when its inputs change (this script, init, package list, kernel package);
# the overlay is rebuilt whenever the cluster's files change, in well under a second.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PACKAGES=slurmd,slurm-client,munge,iproute2,kmod,procps
MODULES=(virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net)
die() { echo "build-image: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

mirror() {
  local m
  m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${DROVER_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

# pack DIR OUT: a gzip'ed newc cpio of DIR, written atomically.
pack() {
  local bb
  bb=$(command -v busybox || true)
  if command -v cpio >/dev/null; then
    (cd "$1" && find . -xdev | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1 >"$2.tmp"
  elif [ -n "$bb" ]; then
    (cd "$1" && find . -xdev | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null) | gzip -1 >"$2.tmp"
  else
    die "need cpio or busybox to pack an initramfs (apt-get install cpio)"
  fi
  mv "$2.tmp" "$2"
}

build_base() {
  local kdeb=$1 out=$2 key work root kver t0 t1
  [ -f "$kdeb" ] || die "kernel package $kdeb not found"
  mkdir -p "$out"
  key=$(cat "${BASH_SOURCE[0]}" "$HERE/init" <(echo "$PACKAGES ${MODULES[*]} $(basename "$kdeb")") | sha256sum | cut -c1-16)
  if [ -s "$out/base.cpio.gz" ] && [ -s "$out/vmlinuz" ] && [ "$(cat "$out/base.key" 2>/dev/null)" = "$key" ]; then
    echo "vnode base image up to date ($key)"
    return 0
  fi
  work=$out/work
  root=$work/rootfs
  t0=$(now)
  if [ ! -x "$root/usr/sbin/slurmd" ] || [ "$(cat "$work/rootfs.packages" 2>/dev/null)" != "$PACKAGES" ]; then
    rm -rf "$root"
    mkdir -p "$work"
    echo "debootstrap bookworm ($PACKAGES) from $(mirror) ..."
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$(mirror)" >"$work/debootstrap.log" 2>&1 ||
      { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log: $work/debootstrap.log)"; }
    echo "$PACKAGES" >"$work/rootfs.packages"
  fi
  t1=$(now)
  echo "rootfs ready in $(since "$t0")s"
  # trim what a disk-less compute node never reads
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man \
    "$root"/usr/share/locale "$root"/usr/share/info "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
  # kernel and the virtio-net modules
  rm -rf "$work/k" && mkdir -p "$work/k"
  dpkg-deb -x "$kdeb" "$work/k"
  kver=$(ls "$work/k/lib/modules")
  cp "$work"/k/boot/vmlinuz-* "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
  rm -rf "$root/lib/modules" && mkdir -p "$root/lib/modules/vnode"
  : >"$root/lib/modules/vnode/order"
  local m f
  for m in "${MODULES[@]}"; do
    f=$(find "$work/k/lib/modules/$kver" -name "$m.ko" | head -1)
    [ -n "$f" ] || die "module $m.ko not in $kdeb"
    cp "$f" "$root/lib/modules/vnode/"
    echo "$m" >>"$root/lib/modules/vnode/order"
  done
  install -m 755 "$HERE/init" "$root/init"
  pack "$root" "$out/base.cpio.gz"
  echo "$key" >"$out/base.key"
  echo "vnode base image: kernel $kver, initramfs $(du -h "$out/base.cpio.gz" | cut -f1), built in $(since "$t0")s (pack $(since "$t1")s)"
}

build_overlay() {
  local etc=$1 key=$2 out=$3 stage uid gid
  [ -s "$out/base.cpio.gz" ] || die "no base image in $out: run build-image.sh base first"
  [ -s "$etc/slurm.conf" ] || die "no slurm.conf in $etc"
  [ -s "$key" ] || die "munge key $key not found"
  stage=$out/overlay
  rm -rf "$stage" && mkdir -p "$stage/etc/slurm" "$stage/etc/munge"
  cp "$etc/slurm.conf" "$stage/etc/slurm/"
  if [ -s "$etc/cgroup.vnode.conf" ]; then
    cp "$etc/cgroup.vnode.conf" "$stage/etc/slurm/cgroup.conf"
  else
    printf 'CgroupPlugin=cgroup/v2\nIgnoreSystemd=yes\n' >"$stage/etc/slurm/cgroup.conf"
  fi
  # the key must belong to the guest's munge user, whose uid the base's passwd file tells
  uid=$(awk -F: '$1=="munge"{print $3}' "$out/work/rootfs/etc/passwd")
  gid=$(awk -F: '$1=="munge"{print $4}' "$out/work/rootfs/etc/passwd")
  [ -n "$uid" ] || die "the base image has no munge user"
  install -m 400 -o "$uid" -g "$gid" "$key" "$stage/etc/munge/munge.key"
  chown "$uid:$gid" "$stage/etc/munge" && chmod 700 "$stage/etc/munge"
  pack "$stage" "$out/overlay.cpio.gz"
  rm -rf "$stage"
  cat "$out/base.cpio.gz" "$out/overlay.cpio.gz" >"$out/initrd.tmp"
  mv "$out/initrd.tmp" "$out/initrd"
}

case "${1:-}" in
  base) [ $# -eq 3 ] || die "usage: build-image.sh base KERNEL_DEB OUTDIR"; build_base "$2" "$3" ;;
  overlay) [ $# -eq 4 ] || die "usage: build-image.sh overlay SLURM_ETC MUNGE_KEY OUTDIR"; build_overlay "$2" "$3" "$4" ;;
  *) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
