"""The boot test (image-build/boot-test.sh): the arm64 image booted under
qemu-system-aarch64 with its real units, checked from outside: READY=1, the web
API through a forwarded loopback port, a job on the simulated controller (pty)
and on the emulated UART ttyAMA0, SIGKILL leaving the relay off and the service
restarting, a stop within TimeoutStopSec, first-boot configuration, and no
denial in the boot's journal.  About 4 minutes with the image cached in
/var/cache/gateway-image-build/; a cold build adds about 10.  Fails (never
skips) when a tool is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "image-build" / "boot-test.sh"


@pytest.mark.timeout(1800)
def test_image_boots_and_serves_under_its_sandbox() -> None:
    result = subprocess.run(
        [str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHON": sys.executable},
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    for check in (
        "PASS gateway.service active through READY=1",
        "PASS first boot applied gateway.toml",
        "PASS /api/status answers",
        "PASS a job ran",
        "PASS SIGKILL: relay pin",
        "PASS restarted after SIGKILL",
        "PASS systemctl stop in",
        "PASS journal (simulated controller on a pty)",
        "PASS ttyAMA0",
        "PASS journal (controller on ttyAMA0)",
        "PASS DevicePolicy=closed is enforced",
    ):
        assert check in result.stdout, f"missing: {check}\n{result.stdout}"
