"""The PZEM-004T's simulated twin: a pymodbus Modbus-RTU server on a pseudo-terminal.

Two pseudo-terminals and a "cable" between their master ends: the gateway opens
one slave path exactly as it opens ``/dev/ttyUSB0``; pymodbus's serial server
opens the other.  The cable carries the bytes and is where faults happen, as on
a real RS-485/TTL line: replies with a broken CRC, replies that never come, the
meter unplugged.  The registers answer what :class:`~.load.SimulatedLoad` draws,
and the energy register counts the exact integral (:class:`~.load.EnergyCounter`).

    async with PzemTwin(SimulatedLoadConfig()) as twin:
        meter = PzemMeter(twin.path)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import time
import tty
from collections import deque
from dataclasses import dataclass
from types import TracebackType

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.bus import EventBus
from gateway.machine.events import MachineStatus
from gateway.metering.config import SimulatedLoadConfig
from gateway.metering.meters import pzem
from gateway.metering.meters.load import EnergyCounter, SimulatedLoad

log = logging.getLogger(__name__)

HISTORY = 1000


@dataclass(frozen=True, slots=True)
class TwinRead:
    """What the twin answered to one read: its time, power and exact energy."""

    t: float
    power_w: float
    energy_wh: float


def _pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


class PzemTwin:
    """A simulated PZEM-004T whose power follows a simulated machine."""

    def __init__(
        self,
        load: SimulatedLoadConfig | None = None,
        *,
        address: int = 1,
    ) -> None:
        self.load = SimulatedLoad(load or SimulatedLoadConfig())
        self.counter = EnergyCounter()
        self.address = address
        self.path = ""
        #: The newest answers (bounded: the twin also runs for days in `make run`).
        self.reads: deque[TwinRead] = deque(maxlen=HISTORY)
        self.corrupt_replies = 0  # the next N replies get a broken CRC
        self.drop_replies = 0  # the next N requests get no reply (a timeout)
        self.unplugged = False
        self.counter_offset_wh = 0.0  # added to the register (start a counter near its wrap)
        self._fds: list[int] = []
        self._host_master = -1
        self._meter_master = -1
        self._server: ModbusSerialServer | None = None

    @staticmethod
    def now() -> float:
        return time.monotonic()

    # ------------------------------------------------------------------ lifetime

    async def __aenter__(self) -> PzemTwin:
        host_master, host_slave, self.path = _pty()
        meter_master, meter_slave, meter_path = _pty()
        self._fds = [host_master, host_slave, meter_master, meter_slave]
        self._host_master, self._meter_master = host_master, meter_master
        loop = asyncio.get_running_loop()
        loop.add_reader(host_master, self._from_host)
        loop.add_reader(meter_master, self._from_meter)
        self.counter.set_power(self.load.power_w(), self.now())
        registers = [SimData(0, count=pzem.REGISTERS, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        device = SimDevice(
            id=self.address,
            simdata=(bits, bits, [SimData(0, values=0, datatype=DataType.REGISTERS)], registers),
            action=self._on_read,
        )
        self._server = ModbusSerialServer(
            device, framer=FramerType.RTU, port=meter_path, baudrate=pzem.BAUD
        )
        await self._server.serve_forever(background=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
        loop = asyncio.get_running_loop()
        for fd in (self._host_master, self._meter_master):
            if fd >= 0:
                loop.remove_reader(fd)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        self._host_master = self._meter_master = -1

    # ------------------------------------------------------------------ the machine

    def observe(self, status: MachineStatus) -> None:
        """Follow the simulated machine: heaters, motion, idle."""
        self.load.observe(status.state, status.temperatures)
        self.counter.set_power(self.load.power_w(), self.now())

    def set_extra_power(self, watts: float) -> None:
        self.load.extra_w = watts
        self.counter.set_power(self.load.power_w(), self.now())

    async def follow(self, bus: EventBus) -> None:
        """Track the machine's status from the bus until cancelled."""
        async with bus.subscribe(MachineStatus, maxsize=16) as events:
            async for status in events:
                self.observe(status)

    @property
    def energy_wh(self) -> float:
        """The exact energy counted so far (the register shows its whole Wh)."""
        return self.counter.advance(self.now())

    # ------------------------------------------------------------------ faults

    def unplug(self) -> None:
        self.unplugged = True

    def plug_in(self) -> None:
        self.unplugged = False

    def reset_counter(self) -> None:
        """What function 0x42 does: the energy register starts again from 0."""
        self.counter.reset(self.now())
        self.counter_offset_wh = 0.0

    # ------------------------------------------------------------------ the cable

    def _from_host(self) -> None:
        data = self._read(self._host_master)
        if not data or self.unplugged:
            return
        if self.drop_replies > 0:
            self.drop_replies -= 1
            return
        self._write(self._meter_master, data)

    def _from_meter(self) -> None:
        data = self._read(self._meter_master)
        if not data or self.unplugged:
            return
        if self.corrupt_replies > 0:
            self.corrupt_replies -= 1
            data = data[:-1] + bytes([data[-1] ^ 0x5A])
        self._write(self._host_master, data)

    @staticmethod
    def _read(fd: int) -> bytes:
        try:
            return os.read(fd, 4096)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EIO):
                return b""
            raise

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(fd, data)

    # ------------------------------------------------------------------ registers

    async def _on_read(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code != 4:
            return None
        now = self.now()
        energy = self.counter.advance(now)
        power = self.counter.power_w
        voltage = self.load.config.voltage
        current_registers[:] = pzem.encode(
            voltage_v=voltage,
            current_a=power / voltage,
            power_w=power,
            energy_wh=math.floor(energy + self.counter_offset_wh),
        )
        self.reads.append(TwinRead(now, power, energy))
        return None
