#!/bin/bash
# boot-test.sh: boot the gateway's arm64 image in an emulated machine and check
# it as a service, from outside (run by `make test`: tests/image/test_boot.py).
#
# The root is the one check-arm64.sh builds and installs the wheel into (real
# units, enabled); boot-kernel.sh adds Debian's arm64 kernel and a small
# initramfs built on this machine.  The disk image is made without loop devices
# (mke2fs -d), the boot partition is a FAT image holding the test's
# gateway.toml for gateway-firstboot, and qemu-system-aarch64 -M virt (TCG, no
# KVM needed) boots them with user-mode networking forwarded to a loopback
# port.  boot-test/boot_check.py then runs the checks (see its docstring).
#
#   boot-test.sh                 build what is not cached, boot, check
#   boot-test.sh --break-tty     the same with DeviceAllow=char-ttyAMA removed from
#                                the unit: must fail, naming the denial.  (Removing
#                                /dev/ptmx or char-pts proves nothing: systemd
#                                always allows /dev/ptmx, the pts major, /dev/null,
#                                /dev/tty... under DevicePolicy=closed.)
#
# Exit status 0 passed, 1 failed.  It fails (never skips) when a tool is
# missing: `make test` installs them (TEST_APT).  Cache (outside the checkout,
# shared by every clone on this machine): $GATEWAY_IMAGE_CACHE, default
# /var/cache/gateway-image-build/: kernel-<key>/ (by boot-kernel.sh's content),
# bootdisk-<key>/ (by the installed gateway, the kernel and these scripts)
# besides check-arm64.sh's root; boot-run/ keeps the last run's logs.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(dirname "$HERE")
export GATEWAY_IMAGE_CACHE=${GATEWAY_IMAGE_CACHE:-/var/cache/gateway-image-build}
CACHE=$GATEWAY_IMAGE_CACHE
PY=${PYTHON:-$PROJECT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
BREAK=no
[ "${1:-}" = --break-tty ] && BREAK=yes
START=$(date +%s)
step() { echo "[$(( $(date +%s) - START ))s] $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "the boot test needs root (mmdebstrap, chroot, root-owned files in the image): run make test as root"
for tool in qemu-system-aarch64 mke2fs mkfs.vfat mcopy depmod cpio mmdebstrap systemctl; do
    command -v "$tool" >/dev/null \
        || die "$tool is missing: apt install qemu-system-arm e2fsprogs dosfstools mtools kmod cpio mmdebstrap systemd"
done
mkdir -p "$CACHE"

kkey=$(sha256sum "$HERE/boot-kernel.sh" | cut -c1-12)
KERNEL=$CACHE/kernel-$kkey
if [ ! -f "$KERNEL/vmlinuz" ]; then
    step "unpacking Debian's arm64 kernel and building an initramfs (cached in $KERNEL)"
    "$HERE/boot-kernel.sh" "$KERNEL"
fi
version=$(cat "$KERNEL/version")

step "the arm64 root with the gateway installed (check-arm64.sh --root-only)"
set +e
out=$("$HERE/check-arm64.sh" --root-only)
rc=$?
set -e
echo "$out" | sed 's/^/  /'
[ $rc = 0 ] || die "check-arm64.sh could not prepare the root (exit $rc)"
ROOT=$(echo "$out" | tail -n 1)
[ -L "$ROOT/opt/gateway/current" ] || die "$ROOT has no gateway installed"

# The boot disk: the root plus the kernel's modules and the test's agent.  QEMU
# runs it with -snapshot (the guest's writes go to a throw-away overlay), so it
# is cached by what went into it and rebuilt only when one of those changes.
dkey=$( { cat "$ROOT/.gateway-installed"; echo "$kkey $BREAK"; cat "$0" "$HERE"/boot-test/agent.py "$HERE"/boot-test/*.service "$HERE"/boot-test/*.network; } \
    | sha256sum | cut -c1-12)
DISK=$CACHE/bootdisk-$dkey
WORK=$CACHE/boot-run
rm -rf "$WORK"
mkdir -p "$WORK"
if [ ! -f "$DISK/disk.img" ]; then
    step "staging the boot disk (root + kernel modules + boot-test agent; cached in $DISK)"
    rm -rf "$CACHE"/bootdisk-*
    S=$DISK.part/root
    mkdir -p "$DISK.part"
    cp -a "$ROOT" "$S"
    mkdir -p "$S/lib/modules"
    cp -a "$KERNEL/modules/$version" "$S/lib/modules/"
    install -m 0755 "$HERE/boot-test/agent.py" "$S/usr/local/sbin/boot-test-agent"
    install -m 0644 "$HERE/boot-test/boot-test-agent.service" "$S/etc/systemd/system/"
    install -d "$S/etc/systemd/network"
    install -m 0644 "$HERE/boot-test/20-wired.network" "$S/etc/systemd/network/"
    systemctl --root="$S" --quiet enable boot-test-agent.service systemd-networkd.service
    # No display in the emulated machine: the kiosk (cage + Chromium) is not installed here.
    systemctl --root="$S" --quiet disable gateway-kiosk.service
    systemctl --root="$S" --quiet set-default multi-user.target
    gid=$(awk -F: '$1 == "gateway" { print $3 }' "$S/etc/group")
    install -m 0640 -g "$gid" "$PROJECT/config/demo-members.json" "$S/etc/gateway/members.json"
    install -d "$S/boot/firmware"
    # As on Raspberry Pi OS: the FAT boot partition at /boot/firmware.
    echo "/dev/vdb /boot/firmware vfat defaults 0 0" >> "$S/etc/fstab"
    echo gateway-boot-test > "$S/etc/hostname"
    if [ "$BREAK" = yes ]; then
        sed -i '\|^DeviceAllow=char-ttyAMA|d' "$S/etc/systemd/system/gateway.service"
        grep -q '^DeviceAllow=char-ttyAMA' "$S/etc/systemd/system/gateway.service" \
            && die "could not remove DeviceAllow=char-ttyAMA"
        step "broken on purpose: DeviceAllow=char-ttyAMA removed from gateway.service"
    fi
    # Not the config under test: first boot must replace it with the boot partition's.
    cmp -s "$HERE/boot-test/gateway.toml" "$S/etc/gateway/gateway.toml" \
        && die "the image's default config equals the test's: the first-boot check would prove nothing"
    mke2fs -q -t ext4 -L gateway-root -d "$S" "$DISK.part/disk.img" 3G
    rm -rf "$S"
    mv "$DISK.part" "$DISK"
fi
# The boot partition is made fresh each run: first boot changes it.
mkfs.vfat -n BOOTFS -C "$WORK/boot.img" 32768 >/dev/null
mcopy -i "$WORK/boot.img" "$HERE/boot-test/gateway.toml" ::gateway.toml
step "disk images ready; booting"

set +e
"$PY" "$HERE/boot-test/boot_check.py" --kernel "$KERNEL" --disk "$DISK/disk.img" \
    --boot "$WORK/boot.img" --work "$WORK"
rc=$?
set -e
if [ $rc != 0 ]; then
    echo "--- the guest's console (last 40 lines of $WORK/console.log) ---"
    tail -n 40 "$WORK/console.log" 2>/dev/null || true
fi
step "done (exit $rc)"
exit $rc
