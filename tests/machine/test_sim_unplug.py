"""Simulation mode: the simulated controller's USB cable pulled out and plugged back in.

A real pty between the simulated Marlin and the machine service, as in
``gateway run`` with ``simulation.enabled``: unplugging removes the device node
the machine service has open, plugging back in makes a new one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.bus import EventBus
from gateway.commands import CommandError, CommandRouter
from gateway.config import JobsConfig, MachineConfig, SerialConfig, SimulationConfig
from gateway.machine.service import MachineService
from gateway.machine.sim.service import SimulatorService
from gateway.supervisor import Supervisor

pytestmark = [pytest.mark.timeout(120)]

MOVES = [f"G1 X{i % 100} Y{(i * 7) % 100} F{3000 + i}" for i in range(400)]


async def wait_for(cond: object, timeout: float = 30.0) -> None:
    assert callable(cond)
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


class Rig:
    def __init__(self, commands: CommandRouter, machine: MachineService, sim: SimulatorService,
                 log: Path) -> None:
        self.commands, self.machine, self.sim, self.log = commands, machine, sim, log

    def executed(self) -> list[str]:
        return self.log.read_text(encoding="latin-1").splitlines() if self.log.exists() else []


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    bus = EventBus()
    commands = CommandRouter()
    sup = Supervisor(bus)
    log = tmp_path / "executed.log"
    # time_scale makes moves take (scaled) real time, so the job is running when unplugged.
    sim = SimulatorService(
        "marlin",
        SimulationConfig(enabled=True, baud=250000, time_scale=0.05, executed_log=log),
        commands,
    )
    sup.add(sim)
    machine = MachineService(
        machine=MachineConfig(id="m1", firmware="marlin"),
        serial=SerialConfig(response_timeout=2.0, reconnect_max_delay=1.0),
        jobs=JobsConfig(),
        db_path=tmp_path / "gw.db",
        files_dir=tmp_path / "files",
        bus=bus,
        commands=commands,
        port=sim.port_path,
        dtr_reset=sim.power_cycle,
    )
    sup.add(machine)
    await sup.start()
    await wait_for(lambda: machine.state.value == "idle")
    yield Rig(commands, machine, sim, log)
    await sup.stop()


async def test_unplug_then_plug_disconnects_and_reconnects(rig: Rig) -> None:
    path = rig.sim.port_path()
    reply = await rig.commands.call("sim_controller", {"action": "unplug"})
    assert reply == {"plugged": False, "path": ""}
    # The device node is gone, as /dev/ttyACM0 is when the cable is pulled.
    assert not await asyncio.to_thread(os.path.exists, path)
    await wait_for(lambda: rig.machine.state.value == "disconnected")
    await asyncio.sleep(1.5)  # a few reconnect attempts fail while it is out
    assert rig.machine.state.value == "disconnected"
    assert "unplugged" in rig.machine.status()["message"]
    # Unplugging twice is harmless.
    assert (await rig.commands.call("sim_controller", {"action": "unplug"}))["plugged"] is False

    reply = await rig.commands.call("sim_controller", {"action": "plug"})
    assert reply["plugged"] is True
    assert await asyncio.to_thread(os.path.exists, reply["path"])
    await wait_for(lambda: rig.machine.state.value == "idle")
    assert rig.machine.firmware_version


async def test_bad_action_is_refused(rig: Rig) -> None:
    with pytest.raises(CommandError) as err:
        await rig.commands.call("sim_controller", {"action": "yank"})
    assert err.value.code == "bad_action"


async def test_job_at_unplug_fails_without_running_a_line_twice(rig: Rig, tmp_path: Path) -> None:
    src = tmp_path / "moves.gcode"
    src.write_text("".join(line + "\n" for line in MOVES))
    rig.machine.files.add_path(src)
    await rig.commands.call("start_job", {"file": "moves.gcode"})
    job = rig.machine.job
    assert job is not None
    await wait_for(lambda: job.lines_done >= 40)
    await rig.commands.call("sim_controller", {"action": "unplug"})
    await wait_for(lambda: job.finished)
    assert job.state.value == "failed"
    assert "serial connection lost" in job.reason
    assert rig.machine.state.value == "disconnected"
    # The interrupted job is offered back.
    offer = await rig.commands.call("resume_offer")
    assert offer["interrupted"] is not None

    await rig.commands.call("sim_controller", {"action": "plug"})
    await wait_for(lambda: rig.machine.state.value == "idle")
    await asyncio.sleep(0.3)  # the executed log is written a few times a second
    moves = [line for line in rig.executed() if line.startswith("G1 ")]
    # Executed in order, each at most once: a prefix of the file, and more than
    # the lines acknowledged before the cable was pulled.
    assert moves == MOVES[: len(moves)]
    assert 40 <= len(moves) < len(MOVES)

    # The machine works again: a whole job afterwards runs every line once more.
    rig.log.write_text("")
    await rig.commands.call("start_job", {"file": "moves.gcode"})
    again = rig.machine.job
    assert again is not None and again is not job
    await wait_for(lambda: again.finished, 120)
    assert again.state.value == "completed"
    await asyncio.sleep(0.3)
    assert [line for line in rig.executed() if line.startswith("G1 ")] == MOVES
