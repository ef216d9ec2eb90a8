#!/bin/bash -e
# Installs the gateway release (files/release/, copied in by image-build/build.sh)
# into the image with the same script the offline arm64 check runs.
"${STAGE_DIR}/00-install/files/project/image-build/install-gateway.sh" \
    "${ROOTFS_DIR}" "${STAGE_DIR}/00-install/files/release"
# The text console never blanks before the kiosk takes over the screen.
cmdline="${ROOTFS_DIR}/boot/firmware/cmdline.txt"
if [ -f "$cmdline" ] && ! grep -q consoleblank= "$cmdline"; then
    sed -i 's/$/ consoleblank=0/' "$cmdline"
fi
# Examples next to the file a volunteer edits.
install -m 0644 "${STAGE_DIR}/00-install/files/project/config/gateway.toml" \
    "${ROOTFS_DIR}/boot/firmware/gateway.toml"
install -m 0644 "${STAGE_DIR}/00-install/files/project/image-build/gateway-setup.txt" \
    "${ROOTFS_DIR}/boot/firmware/gateway-setup.txt"
