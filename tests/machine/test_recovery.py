"""Handshake fallback and fast recovery against the simulated Marlin on a real pty.

Assertions are on what the simulated board executed (its log), not on timing;
the recovery time is checked loosely, as CPU here is shared.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.config import SerialConfig
from gateway.machine import events as ev
from gateway.machine.sim.link import Faults
from gateway.machine.sim.marlin import SimulatedMarlin
from tests.machine.conftest import MakeRig, until


def small_job(path: Path, lines: int) -> list[str]:
    body = [f"G1 X{i % 90}.{i % 10} Y{(i * 7) % 90} F6000" for i in range(lines)]
    path.write_text("G21\nG90\n" + "\n".join(body) + "\n")
    return ["G21", "G90", *body]


async def test_a_marlin_without_firmware_name_is_driven_after_the_handshake_timeout(
    pty_rig: MakeRig, tmp_path: Path
) -> None:
    fw = SimulatedMarlin(firmware_name=False, advanced_ok=False, auto_report=False)
    # response_timeout 10 s: the fallback must not wait for it.
    rig = await pty_rig(fw, serial=SerialConfig(max_line_length=80), wait_ready=False)
    await until(lambda: rig.machine.link.value == "idle", timeout=8.0)
    assert rig.machine.firmware_version == ""
    lines = small_job(tmp_path / "part.gcode", 40)
    rig.machine.files.add_path(tmp_path / "part.gcode")
    await rig.commands.call("start_job", {"file": "part.gcode"})
    job = rig.machine.job
    assert job is not None
    await until(lambda: job.finished, timeout=20.0)
    assert job.state.value == "completed"
    assert [x for x in fw.executed if x.startswith("G")] == lines
    assert "M155 S2" not in fw.executed  # no capability assumed: temperatures are polled
    assert not [e for e in rig.of(ev.MachineError) if "FIRMWARE_NAME" not in e.message]


async def run_with_faults(
    pty_rig: MakeRig, tmp_path: Path, fw: SimulatedMarlin, faults: Faults, lines: int = 400
) -> tuple[float, int]:
    """Run a job with the default 10 s response timeout; return its seconds and the
    number of faults injected.  Every line must have run exactly once, in order."""
    rig = await pty_rig(fw, faults=faults, serial=SerialConfig(max_line_length=80))
    expected = small_job(tmp_path / "part.gcode", lines)
    rig.machine.files.add_path(tmp_path / "part.gcode")
    await rig.commands.call("start_job", {"file": "part.gcode"})
    job = rig.machine.job
    assert job is not None
    await until(lambda: job.finished, timeout=90.0)
    assert job.state.value == "completed", job.reason
    assert [x for x in fw.executed if x.startswith("G")] == expected
    inject = rig.sim.inject
    injected = inject.dropped_ok + inject.dropped_resend + inject.dropped_resent
    return job.elapsed(time.monotonic()), injected


@pytest.mark.parametrize("advanced", [True, False])
async def test_lost_oks_recover_quickly_and_run_every_line_once(
    pty_rig: MakeRig, tmp_path: Path, advanced: bool
) -> None:
    fw = SimulatedMarlin(advanced_ok=advanced)
    seconds, lost = await run_with_faults(
        pty_rig, tmp_path, fw, Faults(drop_ok=0.03, seed=3)
    )
    assert lost >= 3
    # Each lost ok costs a probe after a fraction of a second, not the 10 s timeout
    # (loose bound: the CPU here is shared).
    assert seconds < 2.0 * lost + 5.0


@pytest.mark.parametrize("last_line", [True, False])
async def test_line_errors_without_resend_recover_quickly(
    pty_rig: MakeRig, tmp_path: Path, last_line: bool
) -> None:
    """``Error:`` arrives, its ``Resend:`` is lost; with ``last_line`` False the
    Error does not name the line either, so the core must probe."""
    fw = SimulatedMarlin(error_last_line=last_line)
    faults = Faults(corrupt=0.02, drop_resend=1.0 if last_line else 0.6, seed=5)
    seconds, lost = await run_with_faults(pty_rig, tmp_path, fw, faults)
    assert lost >= 3 and fw.lines_rejected >= 3
    assert seconds < 2.0 * lost + 5.0


async def test_a_dropped_resent_line_recovers_quickly(pty_rig: MakeRig, tmp_path: Path) -> None:
    fw = SimulatedMarlin()
    faults = Faults(corrupt=0.02, drop_resent=0.5, seed=7)
    seconds, lost = await run_with_faults(pty_rig, tmp_path, fw, faults)
    assert lost >= 2 and fw.lines_rejected >= 3
    assert seconds < 2.0 * (lost + fw.lines_rejected) + 5.0
