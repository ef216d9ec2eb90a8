"""Done means done: a job completes only once the simulated machine stopped moving.

Both simulators run their planner in real time here (``time_scale`` 1), so when
the last line is acknowledged up to ~15 moves, seconds of motion, are still to
run.  Everything goes through a real pty, as with ``/dev/ttyACM0``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.access import service as access_service
from gateway.access.config import AccessConfig, FileSourceConfig, MachineRules
from gateway.access.outputs import OutputsConfig
from gateway.access.readers.config import SimulatedReaderConfig
from gateway.access.service import AccessService
from gateway.bus import EventBus
from gateway.commands import CommandRouter
from gateway.machine import events as ev
from gateway.machine.sim.firmware import SimulatedFirmware
from gateway.machine.sim.grbl import SimulatedGrbl
from gateway.machine.sim.marlin import SimulatedMarlin
from gateway.supervisor import Service
from tests.machine.conftest import MakeRig, PtyRig, until

RELAY = 17
ADA = "04A1B2C3"


def long_moves(path: Path, moves: int) -> Path:
    """``moves`` moves of 20 mm at 100 mm/s: 0.2 s of motion each."""
    with path.open("w") as fh:
        fh.write("G21\nG90\n")
        for i in range(moves):
            fh.write(f"G1 X{20 * ((i + 1) % 2)} Y{i % 3} F6000\n")
    return path


def make_firmware(kind: str) -> SimulatedFirmware:
    if kind == "grbl":
        return SimulatedGrbl(time_scale=1.0)
    return SimulatedMarlin(time_scale=1.0)


@pytest.mark.parametrize("kind", ["marlin", "grbl"])
async def test_a_job_completes_only_after_the_planner_is_empty(
    pty_rig: MakeRig, tmp_path: Path, kind: str
) -> None:
    rig = await pty_rig(make_firmware(kind))
    rig.machine.files.add_path(long_moves(tmp_path / "moves.gcode", 30))
    await rig.commands.call("start_job", {"file": "moves.gcode"})
    job = rig.machine.job
    assert job is not None
    # Every line acknowledged, the machine still moving: finishing, not completed.
    await until(lambda: job.state.value != "running")
    assert job.state.value == "finishing"
    assert job.lines_done == job.lines_total
    assert rig.moving(), "the simulator must still have planned moves to run"
    assert rig.machine.status()["state"] == "running"
    assert not [e for e in rig.events if isinstance(e, ev.JobFinished)]
    await until(lambda: job.finished)
    assert job.state.value == "completed"
    assert not rig.moving(), "completed while the simulated planner still held moves"
    await until(lambda: any(isinstance(e, ev.JobFinished) for e in rig.events))
    finishing = [e for e in rig.events if isinstance(e, ev.JobFinishing)]
    assert len(finishing) == 1 and finishing[0].job_id == job.id
    history = await rig.machine.job_history()
    assert history[0]["state"] == "completed"
    moves = [line for line in rig.sim.firmware.executed if line.startswith("G1")]
    assert len(moves) == 30


async def test_cancel_while_finishing_stops_the_machine(
    pty_rig: MakeRig, tmp_path: Path
) -> None:
    rig = await pty_rig(make_firmware("marlin"))
    rig.machine.files.add_path(long_moves(tmp_path / "moves.gcode", 30))
    await rig.commands.call("start_job", {"file": "moves.gcode"})
    job = rig.machine.job
    assert job is not None
    await until(lambda: job.state.value == "finishing")
    await rig.commands.call("cancel")
    assert job.state.value == "cancelled"
    await until(lambda: "M410" in rig.sim.firmware.executed)


def access(tmp_path: Path) -> Callable[[EventBus, CommandRouter], Service]:
    members = [{"id": "m-ada", "name": "Ada", "badges": [ADA], "machines": {"*": "user"}}]
    (tmp_path / "access.json").write_text(
        json.dumps(
            {
                "version": 1,
                "generated_at": "2024-05-01T00:00:00Z",
                "count": 1,
                "members": members,
            }
        )
    )
    config = AccessConfig(
        gpio="mock",
        site_secret="site-secret-for-tests-0123456789",  # type: ignore[arg-type]
        readers=[SimulatedReaderConfig(name="sim", repeat_suppress=0)],
        outputs=OutputsConfig(relay_pin=RELAY, green_led=22, red_led=27, buzzer=18),
        interlocks=[],
        source=FileSourceConfig(path=tmp_path / "access.json", check_interval=0.05),
        rules=MachineRules(badge_out="after_job", grace_period=0),
    )

    def make(bus: EventBus, commands: CommandRouter) -> Service:
        return AccessService(config, "laser-1", tmp_path / "access.db", bus, commands)

    return make


@pytest.mark.parametrize("kind", ["marlin", "grbl"])
async def test_the_relay_never_drops_while_the_machine_moves(
    pty_rig: MakeRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    factory = MockFactory()
    monkeypatch.setattr(access_service, "make_pin_factory", lambda kind, **_: factory)
    rig: PtyRig = await pty_rig(make_firmware(kind), extra=access(tmp_path))

    def relay_on() -> bool:
        return bool(factory.pin(RELAY).state)

    rig.machine.files.add_path(long_moves(tmp_path / "moves.gcode", 30))
    await until(lambda: rig.machine.status()["state"] == "idle")
    await rig.commands.call("present_badge", {"uid": ADA})
    await until(lambda: relay_on() and rig.machine.powered)
    await rig.commands.call("start_job", {"file": "moves.gcode"})
    job = rig.machine.job
    assert job is not None
    await until(lambda: job.lines_done > 3)
    await rig.commands.call("present_badge", {"uid": ADA})  # badge out mid-job
    moving_seen = 0
    async with asyncio.timeout(30):
        while relay_on():
            if rig.moving():
                moving_seen += 1
            await asyncio.sleep(0.005)
    # The relay just went off: the machine must have stopped before that.
    assert not rig.moving(), "power was cut while the simulated machine was still moving"
    assert job.state.value == "completed"
    assert moving_seen > 0
