"""Done means done: a job completes only once the simulated machine stopped moving.

Both simulators run their planner in real time here (``time_scale`` 1), so when
the last line is acknowledged up to ~15 moves, seconds of motion, are still to
run.  Everything goes through a real pty, as with ``/dev/ttyACM0``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.access import service as access_service
from gateway.access.config import AccessConfig, FileSourceConfig, MachineRules
from gateway.access.outputs import OutputsConfig
from gateway.access.readers.config import SimulatedReaderConfig
from gateway.access.service import AccessService
from gateway.bus import Event, EventBus
from gateway.commands import CommandRouter
from gateway.config import JobsConfig, MachineConfig, SerialConfig
from gateway.machine import events as ev
from gateway.machine.service import MachineService
from gateway.machine.sim.firmware import SimulatedFirmware
from gateway.machine.sim.grbl import SimulatedGrbl
from gateway.machine.sim.marlin import SimulatedMarlin
from gateway.machine.sim.pty import PtyController
from gateway.supervisor import Supervisor

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


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


@dataclass
class Rig:
    bus: EventBus
    commands: CommandRouter
    machine: MachineService
    sim: PtyController
    events: list[Event]

    def moving(self) -> bool:
        return self.sim.firmware.moving(time.monotonic())


@pytest.fixture
async def rigs(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    stack: list[tuple[Supervisor, PtyController, asyncio.Task[None]]] = []

    async def make(
        kind: str, *, extra: Callable[[EventBus, CommandRouter], Any] | None = None
    ) -> Rig:
        bus, commands = EventBus(), CommandRouter()
        sim = PtyController(make_firmware(kind), baud=250000)
        await sim.__aenter__()
        sup = Supervisor(bus)
        if extra is not None:
            sup.add(extra(bus, commands))
        machine = MachineService(
            machine=MachineConfig(id="laser-1", firmware=kind),  # type: ignore[arg-type]
            serial=SerialConfig(max_line_length=80, response_timeout=2.0, status_interval=0.1),
            jobs=JobsConfig(),
            db_path=tmp_path / f"{kind}.db",
            files_dir=tmp_path / f"files-{kind}",
            bus=bus,
            commands=commands,
            port=lambda: sim.path,
            require_power=extra is not None,
        )
        sup.add(machine)
        seen: list[Event] = []
        sub = bus.subscribe(Event, maxsize=100_000)

        async def collect() -> None:
            async for e in sub:
                seen.append(e)

        task = asyncio.create_task(collect())
        stack.append((sup, sim, task))
        await sup.start()
        await until(lambda: machine.link.value == "idle")
        return Rig(bus, commands, machine, sim, seen)

    yield make
    for sup, sim, task in reversed(stack):
        await sup.stop()
        task.cancel()
        await sim.close()


@pytest.mark.parametrize("kind", ["marlin", "grbl"])
async def test_a_job_completes_only_after_the_planner_is_empty(
    rigs: Callable[..., Any], tmp_path: Path, kind: str
) -> None:
    rig: Rig = await rigs(kind)
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
    rigs: Callable[..., Any], tmp_path: Path
) -> None:
    rig: Rig = await rigs("marlin")
    rig.machine.files.add_path(long_moves(tmp_path / "moves.gcode", 30))
    await rig.commands.call("start_job", {"file": "moves.gcode"})
    job = rig.machine.job
    assert job is not None
    await until(lambda: job.state.value == "finishing")
    await rig.commands.call("cancel")
    assert job.state.value == "cancelled"
    await until(lambda: "M410" in rig.sim.firmware.executed)


def access(tmp_path: Path, factory: MockFactory) -> Callable[[EventBus, CommandRouter], Any]:
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

    def make(bus: EventBus, commands: CommandRouter) -> AccessService:
        return AccessService(config, "laser-1", tmp_path / "access.db", bus, commands)

    return make


@pytest.mark.parametrize("kind", ["marlin", "grbl"])
async def test_the_relay_never_drops_while_the_machine_moves(
    rigs: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    factory = MockFactory()
    monkeypatch.setattr(access_service, "make_pin_factory", lambda kind, **_: factory)
    rig: Rig = await rigs(kind, extra=access(tmp_path, factory))

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
