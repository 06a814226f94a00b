#!/usr/bin/env bash
# Build drover's disk-less test guest: a Debian cloud kernel and a busybox-static initramfs whose
# /init starts the heartbeat program (scripts/guest/heartbeat) on the serial console.
#
#   scripts/guest/build.sh GUESTDIR
#
# Writes GUESTDIR/out/vmlinuz, GUESTDIR/out/initramfs.cpio.gz and GUESTDIR/out/build-info (inputs
# hash, kernel package, build time). Downloaded .debs are kept in GUESTDIR/debs. Nothing is rebuilt
# while the inputs are unchanged: the heartbeat sources, this script, the kernel package version, the
# busybox version and the Go version. FORCE=1 rebuilds anyway.
# Guest kernel command line: console=ttyS0 dirty_mb=N dirty_rate=R (see heartbeat/main.go).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
G=${1:?usage: build.sh GUESTDIR}
OUT=$G/out DEBS=$G/debs WORK=$G/work
KMETA=${DROVER_GUEST_KERNEL_META:-linux-image-cloud-amd64}   # meta-package naming the current kernel
BUSYBOX=${DROVER_GUEST_BUSYBOX:-/bin/busybox}                 # from busybox-static
log() { printf '%s guest: %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'guest: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
mkdir -p "$OUT" "$DEBS"

# kernel_pkg: "NAME VERSION" of the kernel image package the meta-package depends on today, or of the
# .deb already downloaded when apt's lists cannot tell (offline, no `apt-get update` yet).
kernel_pkg() {
  local dep deb
  # the meta-package pins its image exactly: "Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"
  dep=$(apt-cache show --no-all-versions "$KMETA" 2>/dev/null |
    sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*\) (= \([^)]*\)).*/\1 \2/p' | head -1)
  [ -n "$dep" ] && { echo "$dep"; return; }
  deb=$(find "$DEBS" -maxdepth 1 -name 'linux-image-*.deb' | sort | tail -1)
  [ -n "$deb" ] || die "cannot find the package behind $KMETA: run 'apt-get update' (or put a linux-image-*-cloud-amd64 .deb in $DEBS)"
  echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
}

[ -x "$BUSYBOX" ] || die "$BUSYBOX missing: apt-get install busybox-static"
command -v go >/dev/null || die "go not found in PATH"

read -r KNAME KVER <<<"$(kernel_pkg)"
INPUTS=$(
  {
    echo "kernel $KNAME $KVER"
    echo "busybox $("$BUSYBOX" 2>&1 | head -1)"
    echo "go $(go env GOVERSION)"
    sha256sum "$HERE/build.sh"
    (cd "$HERE/heartbeat" && find . -name '*.go' ! -name '*_test.go' | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -c1-16
)
if [ "${FORCE:-0}" != 1 ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initramfs.cpio.gz" ] &&
  grep -qx "inputs=$INPUTS" "$OUT/build-info" 2>/dev/null; then
  log "up to date ($KNAME $KVER, inputs $INPUTS)"
  exit 0
fi

T0=$(now)
log "building ($KNAME $KVER, inputs $INPUTS)"
rm -f "$OUT/build-info" # until the new one is written, out/ is stale
DEB=$DEBS/${KNAME}_${KVER//:/%3a}_amd64.deb
if [ ! -s "$DEB" ]; then
  (cd "$DEBS" && apt-get download -q -o APT::Sandbox::User=root "$KNAME=$KVER" >/dev/null) ||
    die "apt-get download $KNAME=$KVER failed: check the Debian mirror, or run 'apt-get update'"
  # keep only this kernel's .deb
  find "$DEBS" -maxdepth 1 -name 'linux-image-*.deb' ! -name "${KNAME}_*" -delete
  DEB=$(find "$DEBS" -maxdepth 1 -name "${KNAME}_*.deb" | head -1)
fi
rm -rf "$WORK" && mkdir -p "$WORK/kernel" "$WORK/root"/{bin,dev,proc,sys,tmp,run}
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$WORK/kernel" --wildcards './boot/vmlinuz-*'
cp "$WORK"/kernel/boot/vmlinuz-* "$WORK/vmlinuz"

(cd "$REPO" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags='-s -w' \
  -o "$WORK/root/bin/heartbeat" ./scripts/guest/heartbeat)
cp "$BUSYBOX" "$WORK/root/bin/busybox"
for a in sh mount cat echo sleep poweroff; do ln -s busybox "$WORK/root/bin/$a"; done
cat >"$WORK/root/init" <<'INIT'
#!/bin/busybox sh
# drover test guest: mount the pseudo file systems, then hand the console to heartbeat.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "GUEST-UP uptime=$(/bin/busybox cut -d' ' -f1 /proc/uptime) $(/bin/busybox grep MemTotal /proc/meminfo)"
exec /bin/heartbeat
INIT
chmod 0755 "$WORK/root/init"
(cd "$WORK/root" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1 >"$WORK/initramfs.cpio.gz")

# rename, not copy: a guest already running from the old files keeps them open undisturbed
mv -f "$WORK/vmlinuz" "$OUT/vmlinuz"
mv -f "$WORK/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
SECS=$(awk -v a="$T0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}')
cat >"$OUT/build-info" <<INFO
inputs=$INPUTS
kernel_package=$KNAME
kernel_version=$KVER
built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_seconds=$SECS
INFO
rm -rf "$WORK"
log "built in ${SECS}s: $OUT/vmlinuz ($(du -k "$OUT/vmlinuz" | cut -f1) KiB), initramfs.cpio.gz ($(du -k "$OUT/initramfs.cpio.gz" | cut -f1) KiB)"
