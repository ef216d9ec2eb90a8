#!/bin/bash
# build.sh: the flashable Raspberry Pi OS Lite (bookworm, arm64) image with the
# gateway, built with pi-gen (https://github.com/RPi-Distro/pi-gen, arm64 branch)
# in Docker.  Needs the Raspberry Pi archive (archive.raspberrypi.com), Docker,
# about 10 GB of disk and 30-60 minutes.  The image lands in image-build/out/.
#
#   image-build/build.sh            # uses ./pi-gen-src, cloned on first use
#   PI_GEN_REF=2024-11-19-raspios-bookworm-arm64 image-build/build.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(dirname "$HERE")
PI_GEN=${PI_GEN_DIR:-$HERE/cache/pi-gen-src}
PI_GEN_REF=${PI_GEN_REF:-arm64}
PY=${PYTHON:-$PROJECT/.venv/bin/python}
[ -x "$PY" ] || PY=python3

if [ ! -d "$PI_GEN/.git" ]; then
    git clone --depth 1 --branch "$PI_GEN_REF" https://github.com/RPi-Distro/pi-gen.git "$PI_GEN"
fi

stage=$PI_GEN/stage-gateway
rm -rf "$stage"
cp -r "$HERE/pi-gen/stage-gateway" "$stage"
files=$stage/00-install/files
mkdir -p "$files/release" "$files/project/image-build" "$files/project/config"

# The release bundle: the project wheel and every dependency's aarch64 wheel.
"$PY" -m pip wheel --quiet --no-deps -w "$files/release" "$PROJECT"
"$PY" -m pip download --quiet --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux_2_28_aarch64 --platform linux_aarch64 \
    -d "$files/release" "$files"/release/makerspace_gateway-*.whl
# What install-gateway.sh reads, in the same layout as this checkout.
cp -r "$HERE/install-gateway.sh" "$HERE/files" "$HERE/gateway-setup.txt" "$files/project/image-build/"
cp -r "$PROJECT/systemd" "$files/project/"
cp -r "$PROJECT/config/gateway.toml" "$PROJECT/config/examples" "$files/project/config/"
cp "$HERE/pi-gen/config" "$PI_GEN/config"
touch "$PI_GEN/stage2/SKIP_IMAGES"

(cd "$PI_GEN" && ./build-docker.sh)
mkdir -p "$HERE/out"
cp "$PI_GEN"/deploy/*.img.xz "$HERE/out/"
echo "image: $(ls "$HERE"/out/*.img.xz | tail -n 1)"
