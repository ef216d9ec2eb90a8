"""Serve a simulated firmware on a pseudo-terminal, at the wire rate of a baud rate.

The host opens the pty's slave path exactly as it opens ``/dev/ttyACM0``
(pyserial-asyncio-fast), so the whole serial code path is exercised.  A pty
moves bytes instantly; to behave like a UART the server paces both directions
with :class:`~gateway.machine.sim.link.Wire` (10 bits per byte at 8N1): bytes
the host wrote reach the firmware model only when they would have crossed the
wire, and replies likewise.  Faults (corrupted, dropped, garbled lines) are
injected with the same :class:`~gateway.machine.sim.link.FaultInjector` as the
in-memory link.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
import tty
from types import TracebackType

from gateway.machine.sim.firmware import SimulatedFirmware
from gateway.machine.sim.link import FaultInjector, Faults, Wire
from gateway.tasks import cancel_and_wait


class PtyController:
    """``async with PtyController(SimulatedMarlin()) as sim: print(sim.path)``."""

    def __init__(
        self,
        firmware: SimulatedFirmware,
        *,
        baud: int = 115200,
        faults: Faults | None = None,
    ) -> None:
        self.firmware = firmware
        self.baud = baud
        self.inject = FaultInjector(faults or Faults(), firmware.integrity_checked)
        byte_time = 10.0 / baud
        self.to_controller = Wire(byte_time)
        self.to_host = Wire(byte_time)
        self.path = ""
        self._master = -1
        self._slave = -1
        self._wake = asyncio.Event()
        self._outbuf = bytearray()
        self._task: asyncio.Task[None] | None = None
        self.bytes_from_host = 0
        self.bytes_to_host = 0

    @staticmethod
    def _clock() -> float:
        return time.monotonic()

    async def __aenter__(self) -> PtyController:
        self._open()
        self.firmware.power_on(self._clock())
        self._task = asyncio.create_task(self._pump(), name=f"sim:{self.firmware.name}")
        return self

    def _open(self) -> None:
        self._master, self._slave = os.openpty()
        # Raw mode: no echo, no line discipline, so 0x18, XON/XOFF and CR pass as bytes.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        asyncio.get_running_loop().add_reader(self._master, self._on_readable)

    def _close_pty(self) -> None:
        if self._master >= 0:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._master)
            loop.remove_writer(self._master)
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def unplug(self) -> None:
        """Pull the USB cable: the device node goes away, the host's open port reads
        EIO, and bytes on the wire in either direction are lost.  The board keeps
        running what it already accepted (it has its own supply)."""
        if not self.plugged:
            return
        self._close_pty()
        self.path = ""
        self.to_controller.pending.clear()
        self.to_host.pending.clear()
        self._outbuf.clear()
        self._wake.set()

    def replug(self) -> None:
        """Plug the cable back in: a new device node (Linux gives a pty the lowest
        free number, so usually the same path) and the board resets, as it does
        when the host opens its port and pulses DTR."""
        if self.plugged:
            return
        self._open()
        self.power_cycle()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        self._close_pty()

    def power_cycle(self) -> None:
        """Reset the firmware as if its board lost power (it prints its banner)."""
        self.firmware.power_on(self._clock())
        self._wake.set()

    def inject_noise(self, data: bytes) -> None:
        """Put raw bytes on the line towards the host (electrical noise, a confused board)."""
        self.to_host.put(data, self._clock())
        self._wake.set()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EIO):
                # EIO: no process has the slave open; harmless, we hold it ourselves.
                return
            raise
        if data:
            self.bytes_from_host += len(data)
            self.to_controller.put(self.inject.host_bytes(data), self._clock())
            self._wake.set()

    def _on_writable(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if not self.plugged:
            self._outbuf.clear()  # nobody at the other end of the cable
            return
        loop = asyncio.get_running_loop()
        while self._outbuf:
            try:
                n = os.write(self._master, self._outbuf)
            except BlockingIOError:
                loop.add_writer(self._master, self._on_writable)
                return
            del self._outbuf[:n]
            self.bytes_to_host += n
        loop.remove_writer(self._master)

    async def _pump(self) -> None:
        fw = self.firmware
        while True:
            now = self._clock()
            arrived = self.to_controller.take(now)
            if arrived:
                fw.receive(arrived, now)
            fw.tick(now)
            out = fw.output()
            if out and self.plugged:
                self.to_host.put(self.inject.reply_bytes(out), now)
            replies = self.to_host.take(now)
            if replies:
                self._outbuf += replies
                self._flush()
            wake = now + 0.05
            for t in (
                self.to_controller.next_arrival(),
                self.to_host.next_arrival(),
                fw.next_wakeup(),
            ):
                if t is not None:
                    wake = min(wake, t)
            delay = wake - self._clock()
            if delay <= 0:
                await asyncio.sleep(0)
            else:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
