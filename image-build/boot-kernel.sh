#!/bin/bash
# boot-kernel.sh OUT: Debian's arm64 kernel and a small initramfs for boot-test.sh.
#
# Installing linux-image-arm64 the normal way runs mkinitramfs under qemu-user
# emulation (about 14 minutes here).  Instead the kernel package and
# busybox-static are only unpacked (mmdebstrap --variant=extract runs no arm64
# code, ~10 s), depmod runs on this machine, and the initramfs is built here:
# busybox, the few modules Debian builds as modules that are needed to reach the
# root (virtio PCI, block, console, net, rng; ext4 and its checksums), and an
# /init that loads them, mounts /dev/vda and switches to the root's systemd.
#
# OUT gets: vmlinuz, initrd.img, modules/<version>/ (the whole tree, copied into
# the booted root so udev and mount can load the rest), version.
set -euo pipefail

OUT=$1
WORK=$OUT.part
rm -rf "$WORK"
mkdir -p "$WORK/extract" "$WORK/initramfs"
mmdebstrap --quiet --architectures=arm64 --variant=extract \
    --include=linux-image-arm64,busybox-static bookworm "$WORK/extract"
E=$WORK/extract
version=$(basename "$(ls -d "$E"/lib/modules/*-arm64 | tail -n 1)")
depmod -b "$E" "$version"
M=$E/lib/modules/$version

# The modules /init loads, dependencies first (from modules.dep, as modprobe would).
wanted="virtio_pci virtio_blk virtio_console virtio_net virtio-rng crc32c_generic ext4"
order=()
add() {
    local rel=$1 dep
    for dep in $(sed -n "s|^$rel: *||p" "$M/modules.dep"); do add "$dep"; done
    local seen
    for seen in "${order[@]:-}"; do [ "$seen" = "$rel" ] && return; done
    order+=("$rel")
}
for name in $wanted; do
    rel=$(grep -oE "^[^:]*/$name\.ko" "$M/modules.dep") || { echo "no module $name in $version" >&2; exit 1; }
    add "$rel"
done

I=$WORK/initramfs
mkdir -p "$I"/{bin,dev,proc,sys,newroot,modules}
cp "$E/bin/busybox" "$I/bin/busybox"
for rel in "${order[@]}"; do cp "$M/$rel" "$I/modules/"; done
{
    cat <<'EOF'
#!/bin/busybox sh
# Load the virtio and ext4 modules, mount the root read-write, hand over to systemd.
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
EOF
    for rel in "${order[@]}"; do echo "insmod /modules/$(basename "$rel")"; done
    cat <<'EOF'
root=/dev/vda
for arg in $(cat /proc/cmdline); do
    case "$arg" in root=/dev/*) root=${arg#root=} ;; esac
done
n=0
while [ ! -b "$root" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
if ! mount -t ext4 -o rw "$root" /newroot; then
    echo "initramfs: cannot mount $root; modules loaded:"; cat /proc/modules
    exec sh
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
EOF
} > "$I/init"
chmod 0755 "$I/init"
(cd "$I" && find . | cpio --quiet -o -H newc --owner=0:0) | gzip -1 > "$WORK/initrd.img"

cp "$E/boot/vmlinuz-$version" "$WORK/vmlinuz"
mkdir -p "$WORK/modules"
mv "$M" "$WORK/modules/$version"
echo "$version" > "$WORK/version"
rm -rf "$E" "$I"
rm -rf "$OUT"
mv "$WORK" "$OUT"
