#!/bin/bash
# check-arm64.sh: the offline check of the Raspberry Pi install, run by `make test`
# (tests/image/test_arm64_rootfs.py).
#
# Builds (once, then cached) an arm64 Debian bookworm root filesystem with
# mmdebstrap, installs the project's wheel into it with install-gateway.sh exactly
# as the pi-gen stage does, and under qemu-user emulation checks that
# `gateway --version` runs, that the default config loads, and that
# `systemd-analyze verify` accepts the installed units with nothing on stderr.
#
#   check-arm64.sh              build (or reuse) the root, install the wheel, check
#   check-arm64.sh --root-only  build (or reuse) the root, install the wheel, print
#                               the root's path as the last line (boot-test.sh uses it)
#
# Exit status: 0 passed, 1 failed, 77 skipped (this machine cannot run arm64
# code or lacks root).  Cache: $GATEWAY_IMAGE_CACHE, default
# /var/cache/gateway-image-build/ (outside the checkout, so every clone on this
# machine, CI's included, reuses it):
#   base-<key>/             the mmdebstrap root (by package list; ~3 min to build)
#   wheels-aarch64-<key>/   dependency wheels for aarch64 (by the wheel's Requires-Dist)
#   root-<key>-<key>/       the base with the release venv; reruns reinstall the wheel only
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(dirname "$HERE")
CACHE=${GATEWAY_IMAGE_CACHE:-/var/cache/gateway-image-build}
PY=${PYTHON:-$PROJECT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
# systemd-sysv, udev (device groups: dialout for ttyAMA0), kmod and dbus make the
# root bootable as it is on a Pi; boot-test.sh boots this same root.
INCLUDE=python3,python3-venv,python3-systemd,systemd,systemd-sysv,udev,kmod,dbus
ROOT_ONLY=no
[ "${1:-}" = --root-only ] && ROOT_ONLY=yes
START=$(date +%s)

skip() { echo "SKIP: $*" >&2; exit 77; }
step() { echo "[$(( $(date +%s) - START ))s] $*"; }

[ "$(id -u)" = 0 ] || skip "the arm64 check needs root (mmdebstrap, chroot)"
for tool in mmdebstrap arch-test systemctl useradd; do
    command -v "$tool" >/dev/null || skip "$tool is missing: apt install mmdebstrap arch-test qemu-user-static binfmt-support systemd"
done
if ! arch-test arm64 >/dev/null 2>&1; then
    [ -e /proc/sys/fs/binfmt_misc/register ] \
        || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    arch-test arm64 >/dev/null 2>&1 \
        || skip "this machine cannot run arm64 code: install qemu-user-static and binfmt-support, mount binfmt_misc (as root)"
fi
mkdir -p "$CACHE"

key=$(echo "bookworm arm64 minbase $INCLUDE" | sha256sum | cut -c1-12)
BASE=$CACHE/base-$key
if [ ! -d "$BASE" ]; then
    step "building the arm64 bookworm root with mmdebstrap (cached in $BASE)"
    rm -rf "$BASE.part"
    mmdebstrap --quiet --architectures=arm64 --variant=minbase --include="$INCLUDE" bookworm "$BASE.part"
    mv "$BASE.part" "$BASE"
fi

WORK=$CACHE/work
rm -rf "$WORK"
mkdir -p "$WORK/project" "$WORK/release"
step "building the project wheel"
"$PY" -m pip wheel --quiet --no-deps -w "$WORK/project" "$PROJECT"
wheel=$(ls "$WORK"/project/makerspace_gateway-*.whl)
version=$(basename "$wheel" | cut -d- -f2)
depkey=$("$PY" - "$wheel" <<'PY' | sha256sum | cut -c1-12
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    text = z.read(meta).decode()
print(sorted(l for l in text.splitlines() if l.startswith("Requires-Dist:") and "extra ==" not in l))
PY
)
DEPS=$CACHE/wheels-aarch64-$depkey
if [ ! -d "$DEPS" ]; then
    step "downloading aarch64 wheels of the dependencies (cached in $DEPS)"
    rm -rf "$DEPS.part"
    "$PY" -m pip download --quiet --only-binary=:all: --python-version 3.11 --implementation cp \
        --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
        --platform manylinux_2_28_aarch64 --platform linux_aarch64 -d "$DEPS.part" "$wheel"
    rm -f "$DEPS.part"/makerspace_gateway-*.whl
    mv "$DEPS.part" "$DEPS"
fi
cp "$DEPS"/*.whl "$wheel" "$WORK/release/"

ROOT=$CACHE/root-$key-$depkey
# What the wheel holds (not its zip bytes, which carry build times), with the
# install script and units: a rerun on unchanged sources reinstalls nothing.
content=$( { "$PY" - "$wheel" <<'PY'
import hashlib, sys, zipfile
h = hashlib.sha256()
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in sorted(z.namelist()):
        h.update(name.encode() + b"\0" + z.read(name))
print(h.hexdigest())
PY
cat "$HERE/install-gateway.sh" "$HERE"/files/* "$PROJECT"/systemd/*; } | sha256sum | cut -c1-16)
force=--force
if [ ! -d "$ROOT" ]; then
    step "preparing the root from the cached base"
    rm -rf "$ROOT.part"
    cp -a "$BASE" "$ROOT.part"
    "$HERE/install-gateway.sh" "$ROOT.part" "$WORK/release"
    echo "$content" > "$ROOT.part/.gateway-installed"
    mv "$ROOT.part" "$ROOT"
    force=""
fi
if [ -n "$force" ] && [ "$(cat "$ROOT/.gateway-installed" 2>/dev/null)" = "$content" ]; then
    step "$version with these sources is already installed in the cached root"
elif [ -n "$force" ]; then
    step "installing $version into the cached root"
    rm -f "$ROOT/.gateway-installed"
    "$HERE/install-gateway.sh" "$ROOT" "$WORK/release" --force
    echo "$content" > "$ROOT/.gateway-installed"
fi

if [ "$ROOT_ONLY" = yes ]; then
    step "root ready"
    echo "$ROOT"
    exit 0
fi

failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
inroot() {
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 chroot "$ROOT" "$@"
}
trap 'mountpoint -q "$ROOT/proc" && umount "$ROOT/proc"' EXIT

step "gateway --version under arm64 emulation"
# ELF e_machine 0xb7 is AArch64.
[ "$(od -An -tx1 -j18 -N2 "$ROOT/usr/bin/python3.11" | tr -d ' ')" = b700 ] \
    || fail "the root's python3 is not an arm64 binary"
out=$(inroot /usr/local/bin/gateway --version) || fail "gateway --version exited with $?"
echo "  $out"
[ "$out" = "gateway $version" ] || fail "expected 'gateway $version', got '$out'"
inroot /opt/gateway/current/bin/python -c \
    'import sys; from gateway.config import load_config; c = load_config(sys.argv[1]); print("  config loads:", c.machine.id)' \
    /etc/gateway/gateway.toml || fail "/etc/gateway/gateway.toml does not load"
[ "$(readlink "$ROOT/opt/gateway/current")" = "/opt/gateway/releases/$version" ] \
    || fail "/opt/gateway/current does not point at releases/$version"

step "systemd-analyze verify on the installed units"
for unit in gateway.service gateway-kiosk.service gateway-firstboot.service; do
    state=$(systemctl --root="$ROOT" is-enabled "$unit" || true)
    [ "$state" = enabled ] || fail "$unit is $state, not enabled"
    if ! err=$(inroot systemd-analyze verify "/etc/systemd/system/$unit" 2>&1 >/dev/null); then
        fail "systemd-analyze verify $unit failed: $err"
    elif [ -n "$err" ]; then
        fail "systemd-analyze verify $unit printed: $err"
    else
        echo "  $unit: verified, no warnings"
    fi
done

step "done"
exit "$failed"
