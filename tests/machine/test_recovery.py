"""Handshake fallback and fast recovery against the simulated Marlin on a real pty.

Assertions are on what the simulated board executed (its log), not on timing;
the recovery time is checked loosely, as CPU here is shared.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import SerialConfig
from gateway.machine import events as ev
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
