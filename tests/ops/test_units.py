"""The systemd units: accepted by `systemd-analyze verify` without a warning, and
hardened to an exposure of 3.0 or less by `systemd-analyze security`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

UNITS = ROOT / "systemd"
SECURED = ["gateway.service", "gateway-kiosk.service"]
# verify checks that ExecStart= binaries exist: point them at files of this checkout.
INSTALLED_PATHS = {
    "/opt/gateway/current/bin/gateway": str(Path(sys.executable).with_name("gateway")),
    "/usr/local/bin/gateway-kiosk": str(ROOT / "image-build" / "files" / "gateway-kiosk"),
    "/usr/local/sbin/gateway-firstboot": str(ROOT / "image-build" / "files" / "gateway-firstboot"),
}

# No skip: `make test` installs systemd; a missing systemd-analyze must fail loudly.


@pytest.mark.parametrize("unit", [*SECURED, "gateway-firstboot.service"])
def test_verify_prints_nothing(unit: str, tmp_path: Path) -> None:
    text = (UNITS / unit).read_text()
    for installed, here in INSTALLED_PATHS.items():
        text = text.replace(installed, here)
    copy = tmp_path / unit
    copy.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 even for ignored, invalid settings: any stderr output is a failure.
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("unit", SECURED)
def test_security_exposure_at_most_3(unit: str) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=30", str(UNITS / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    overall = [line for line in result.stdout.splitlines() if "Overall exposure level" in line]
    print(overall[0] if overall else result.stdout[-500:])
    assert result.returncode == 0, overall
    assert overall and " OK " in overall[0] + " "


def test_gateway_unit_promises() -> None:
    text = (UNITS / "gateway.service").read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "User=gateway",
        "SupplementaryGroups=gpio dialout video input",
        "StateDirectory=gateway",
        "DevicePolicy=closed",
        "CapabilityBoundingSet=",
        "ExecStopPost=/opt/gateway/current/bin/gateway relay-off "
        "--config /etc/gateway/gateway.toml",
    ):
        assert line in text.splitlines(), line
    assert any(line.startswith("WatchdogSec=") for line in text.splitlines())
