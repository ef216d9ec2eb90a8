"""The relay is off whenever the daemon is not running.

The relay pin is a file-backed simulated GPIO that keeps its level when the
process driving it dies, like a real output register, so these tests see what
a machine would see.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from pathlib import Path

import httpx

from gateway.ops.filepins import read_level

from .conftest import ADA, GATEWAY, RELAY_PIN, UNIT, Daemon, gpio_dir, sim_config


def exec_stop_post() -> list[str]:
    """``ExecStopPost=`` of the installed unit, as systemd will run it."""
    lines = [
        line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if line.startswith("ExecStopPost=")
    ]
    assert len(lines) == 1, "gateway.service must have exactly one ExecStopPost="
    return shlex.split(lines[0])


def run_as_unit_states(argv: list[str], cfg: Path) -> subprocess.CompletedProcess[str]:
    """Run the unit's command with this checkout's gateway and the test's config."""
    assert argv[0] == "/opt/gateway/current/bin/gateway"
    assert "/etc/gateway/gateway.toml" in argv
    args = [str(cfg) if a == "/etc/gateway/gateway.toml" else a for a in argv[1:]]
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, timeout=60)


def relay_level(tmp_path: Path) -> int | None:
    return read_level(gpio_dir(tmp_path), RELAY_PIN)


def badge_in(d: Daemon, tmp_path: Path) -> None:
    assert relay_level(tmp_path) == 0, "the relay must be off at power-on"
    r = httpx.post(d.url + "api/sim/badge", json={"uid": ADA, "reader": "sim"}, timeout=10)
    assert r.status_code < 400, r.text
    deadline = time.monotonic() + 10
    while relay_level(tmp_path) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay_level(tmp_path) == 1, "Ada's badge did not switch the relay on"


def test_exec_stop_post_switches_the_relay_off_after_sigkill(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    cfg = sim_config(tmp_path)
    d = Daemon(cfg)
    daemons.append(d)
    badge_in(d, tmp_path)

    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=10)
    # Nothing ran after SIGKILL: the pin still drives the relay.
    assert relay_level(tmp_path) == 1

    result = run_as_unit_states(exec_stop_post(), cfg)
    assert result.returncode == 0, result.stderr
    assert "relay on GPIO17 is off" in result.stderr
    assert relay_level(tmp_path) == 0


def test_sigterm_switches_the_relay_off_without_exec_stop_post(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    d = Daemon(sim_config(tmp_path))
    daemons.append(d)
    badge_in(d, tmp_path)

    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0
    assert relay_level(tmp_path) == 0


def test_relay_off_with_access_disabled_does_nothing(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path, access=False)
    result = run_as_unit_states(exec_stop_post(), cfg)
    assert result.returncode == 0, result.stderr
    assert "access control is disabled" in result.stderr
    assert relay_level(tmp_path) is None


def test_relay_off_drives_an_active_low_relay_high(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path)
    cfg.write_text(
        cfg.read_text().replace(
            "[access.source]", "[access.outputs]\nrelay_active_high = false\n\n[access.source]"
        )
    )
    result = run_as_unit_states(exec_stop_post(), cfg)
    assert result.returncode == 0, result.stderr
    assert relay_level(tmp_path) == 1
