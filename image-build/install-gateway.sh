#!/bin/sh
# install-gateway.sh ROOT RELEASE_DIR [--force]
#
# Installs the gateway into the arm64 root filesystem at ROOT, run as root on the
# build machine: the gateway and kiosk users, the release virtual environment in
# /opt/gateway/releases/<version> (through gateway-upgrade, run inside ROOT under
# emulation), /etc/gateway/gateway.toml, the systemd units (enabled) and the
# helper scripts.  RELEASE_DIR holds the project's wheel and its dependencies'
# aarch64 wheels.  Used by the pi-gen stage (stage-gateway/00-install/01-run.sh)
# and by check-arm64.sh.  --force reinstalls the same version in place.
set -eu

ROOT=$(cd "$1" && pwd)
RELEASE=$2
FORCE=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(dirname "$HERE")

# Users and groups, with the build machine's tools working on ROOT's files.
for group in gpio dialout video input render; do
    grep -q "^$group:" "$ROOT/etc/group" || groupadd --root "$ROOT" --system "$group"
done
grep -q '^gateway:' "$ROOT/etc/passwd" || useradd --root "$ROOT" --system --user-group \
    --home-dir /var/lib/gateway --no-create-home --shell /usr/sbin/nologin \
    --groups gpio,dialout,video,input --comment "machine gateway" gateway
grep -q '^kiosk:' "$ROOT/etc/passwd" || useradd --root "$ROOT" --system --user-group \
    --home-dir /var/lib/gateway-kiosk --no-create-home --shell /usr/sbin/nologin \
    --groups video,render,input --comment "gateway touchscreen" kiosk
gid=$(awk -F: '$1 == "gateway" { print $3 }' "$ROOT/etc/group")

install -d -m 0755 "$ROOT/usr/local/sbin" "$ROOT/usr/local/bin" "$ROOT/opt/gateway"
install -m 0755 "$HERE/files/gateway-upgrade" "$HERE/files/gateway-firstboot" "$ROOT/usr/local/sbin/"
install -m 0755 "$HERE/files/gateway-kiosk" "$ROOT/usr/local/bin/"

# The release, installed as an upgrade would be, inside ROOT.
rm -rf "$ROOT/var/cache/gateway/release"
install -d "$ROOT/var/cache/gateway/release"
cp "$RELEASE"/*.whl "$ROOT/var/cache/gateway/release/"
mounted=""
cleanup() { for m in $mounted; do umount "$m"; done; }
trap cleanup EXIT
for fs in proc dev; do
    if ! mountpoint -q "$ROOT/$fs"; then
        if [ "$fs" = proc ]; then mount -t proc proc "$ROOT/proc"; else mount --bind /dev "$ROOT/dev"; fi
        mounted="$ROOT/$fs $mounted"
    fi
done
# A clean environment: the build machine's PIP_* settings mean nothing inside ROOT.
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    chroot "$ROOT" /usr/local/sbin/gateway-upgrade --no-restart $FORCE /var/cache/gateway/release
ln -sfn /opt/gateway/current/bin/gateway "$ROOT/usr/local/bin/gateway"

install -d -m 0750 -g "$gid" "$ROOT/etc/gateway"
[ -f "$ROOT/etc/gateway/gateway.toml" ] \
    || install -m 0640 -g "$gid" "$PROJECT/config/gateway.toml" "$ROOT/etc/gateway/gateway.toml"
install -d -m 0755 "$ROOT/usr/share/doc/gateway"
cp -r "$PROJECT/config/examples" "$ROOT/usr/share/doc/gateway/"

install -m 0644 "$PROJECT"/systemd/gateway.service "$PROJECT"/systemd/gateway-kiosk.service \
    "$PROJECT"/systemd/gateway-firstboot.service "$ROOT/etc/systemd/system/"
systemctl --root="$ROOT" --quiet enable gateway-firstboot.service gateway.service gateway-kiosk.service
systemctl --root="$ROOT" --quiet set-default graphical.target
