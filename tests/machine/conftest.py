"""A machine service on a simulated controller behind a real pty (shared by the
done-means-done, handshake and recovery tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from gateway.bus import Event, EventBus
from gateway.commands import CommandRouter
from gateway.config import JobsConfig, MachineConfig, SerialConfig
from gateway.machine.service import MachineService
from gateway.machine.sim.firmware import SimulatedFirmware
from gateway.machine.sim.link import Faults
from gateway.machine.sim.pty import PtyController
from gateway.supervisor import Service, Supervisor


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


@dataclass
class PtyRig:
    bus: EventBus
    commands: CommandRouter
    machine: MachineService
    sim: PtyController
    events: list[Event]

    def moving(self) -> bool:
        return self.sim.firmware.moving(time.monotonic())

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class MakeRig(Protocol):
    async def __call__(
        self,
        firmware: SimulatedFirmware,
        *,
        extra: Callable[[EventBus, CommandRouter], Service] | None = None,
        faults: Faults | None = None,
        serial: SerialConfig | None = None,
        wait_ready: bool = True,
    ) -> PtyRig: ...


@pytest.fixture
async def pty_rig(tmp_path: Path) -> AsyncIterator[MakeRig]:
    stack: list[tuple[Supervisor, PtyController, asyncio.Task[None]]] = []

    async def make(
        firmware: SimulatedFirmware,
        *,
        extra: Callable[[EventBus, CommandRouter], Service] | None = None,
        faults: Faults | None = None,
        serial: SerialConfig | None = None,
        wait_ready: bool = True,
    ) -> PtyRig:
        bus, commands = EventBus(), CommandRouter()
        sim = PtyController(firmware, baud=250000, faults=faults)
        await sim.__aenter__()
        sup = Supervisor(bus)
        if extra is not None:
            sup.add(extra(bus, commands))
        kind = "grbl" if firmware.name == "grbl" else "marlin"
        n = len(stack)
        machine = MachineService(
            machine=MachineConfig(id="laser-1", firmware=kind),
            serial=serial
            or SerialConfig(max_line_length=80, response_timeout=2.0, status_interval=0.1),
            jobs=JobsConfig(),
            db_path=tmp_path / f"machine-{n}.db",
            files_dir=tmp_path / f"files-{n}",
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
        if wait_ready:
            await until(lambda: machine.link.value == "idle")
        return PtyRig(bus, commands, machine, sim, seen)

    yield make
    for sup, sim, task in reversed(stack):
        await sup.stop()
        task.cancel()
        await sim.close()
