"""The serial adapter around a protocol core: owns the port, the clock and the task.

:class:`Streamer` reads what the controller sends, hands it to the core with the
time, writes what the core wants sent, and keeps the core's queue topped up
from a :class:`FileLines` source while a job runs.  It knows nothing of jobs'
records, the bus or the web: it reports :class:`ProtocolEvent` objects (plus
:class:`StreamFinished`) to the one callback the machine service gives it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import serial

from gateway.machine.protocol import (
    ControllerProtocol,
    FirmwareError,
    LinesAcked,
    ProtocolEvent,
)
from gateway.machine.serial_port import SerialPortError
from gateway.tasks import cancel_and_wait


@dataclass(frozen=True, slots=True)
class StreamFinished(ProtocolEvent):
    """Every line of the current source was sent and acknowledged.  The machine
    may still be moving: the streamer has asked the core to prove it stopped,
    and :class:`~gateway.machine.protocol.MotionFinished` follows when it has."""

    lines: int
    bytes: int


class FileLines:
    """Lines of a prepared (cleaned) G-code file, read lazily: constant memory."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("rb")
        self.lines_read = 0
        self.bytes_read = 0
        self.exhausted = False

    def next_line(self) -> str | None:
        raw = self._fh.readline()
        if not raw:
            self.exhausted = True
            return None
        self.lines_read += 1
        self.bytes_read += len(raw)
        return raw.rstrip(b"\r\n").decode("ascii")

    def close(self) -> None:
        self._fh.close()


class Streamer(asyncio.Protocol):
    """Drives ``core`` over a serial port until the port goes away.

    It is the port's asyncio protocol: bytes arrive in :meth:`data_received`
    and go straight to the core, with no stream buffer or task switch per
    reply, since on a Pi the per-``ok`` overhead is what limits tiny segments.
    """

    def __init__(
        self,
        core: ControllerProtocol,
        *,
        on_event: Callable[[ProtocolEvent], None],
        tick_interval: float = 0.05,
        coalesce: float = 0.004,
        baud: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        # While two or more lines are in flight the controller has work queued, so
        # replies may wait and be read together: fewer wake-ups, reads and writes
        # per line, which is what a Pi Zero's CPU pays for on tiny segments (each
        # pty or USB write is a system call costing tens of microseconds).  The
        # wait is ``coalesce`` at least and, when the baud rate is known, half
        # the time the controller needs to take in the bytes in flight, so the
        # wire never runs dry.
        self._coalesce = coalesce
        self._byte_time = 10.0 / baud if baud else 0.0
        self._coalesce_max = 0.05
        self._reading_paused = False
        self._on_event = on_event
        self._tick_interval = tick_interval
        self._clock = clock
        self._transport: asyncio.BaseTransport | None = None
        self._lost: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._source: FileLines | None = None
        self._source_finished = False
        self._offsets: deque[int] = deque()  # end offset of each line sent, not yet acked
        self._acked_base = 0  # core.acked when the current source started
        self._lines_sent = 0  # send_line calls on this core (cores number job lines so)
        self._line_base = 0  # _lines_sent when the current source started
        self.paused = False
        self.bytes_done = 0
        self.bytes_written = 0
        #: Z of the last move sent (for layer changes; GRBL reports real positions).
        self.z: float | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._handle(self.core.receive(data, self._clock()))
            self.pump()
            core = self.core
            if self._coalesce > 0 and core.in_flight > 1 and not self._reading_paused:
                transport = self._transport
                if isinstance(transport, asyncio.ReadTransport):
                    transport.pause_reading()
                    self._reading_paused = True
                    delay = self._coalesce
                    pending = core.bytes_in_flight
                    if self._byte_time and pending:
                        drain = 0.5 * pending * self._byte_time
                        delay = min(self._coalesce_max, max(delay, drain))
                    asyncio.get_running_loop().call_later(delay, self._resume_reading)
        except Exception as err:
            # A bug must not leave the port half-driven: end the connection, and
            # the service fails the job and reconnects.
            if not self._lost.done():
                self._lost.set_exception(err)

    def _resume_reading(self) -> None:
        self._reading_paused = False
        transport = self._transport
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(exc)

    # -- job source ---------------------------------------------------------------

    def begin(self, source: FileLines) -> None:
        """Start streaming ``source`` as the job's lines."""
        self.end()
        self._source = source
        self._source_finished = False
        self._offsets.clear()
        self._acked_base = self.core.acked
        self._line_base = self._lines_sent
        self.bytes_done = 0
        self.paused = False
        self.pump()

    def end(self) -> int:
        """Stop feeding the current source; drop its lines still queued in the core."""
        dropped = 0
        if self._source is not None:
            dropped = self.core.discard_queued()
            self._source.close()
            self._source = None
        self._offsets.clear()
        return dropped

    @property
    def lines_done(self) -> int:
        return self.core.acked - self._acked_base

    # -- commands -----------------------------------------------------------------

    def send_command(self, line: str) -> None:
        self.core.send_command(line)
        self.pump()

    def emergency_stop(self) -> None:
        self.end()
        self.core.emergency_stop()
        self.pump()

    # -- the loop -----------------------------------------------------------------

    def pump(self) -> None:
        """Top up the core's queue from the source and write what it wants sent."""
        now = self._clock()
        core = self.core
        source = self._source
        if source is not None and not self.paused and not source.exhausted and core.ready:
            offsets = self._offsets
            while core.wants_lines():
                line = source.next_line()
                if line is None:
                    break
                offsets.append(source.bytes_read)
                try:
                    core.send_line(line)
                except ValueError as err:
                    # A prepared file never holds such a line; if one slips through,
                    # the job stops with its line number instead of the daemon crashing.
                    self._on_event(
                        FirmwareError(
                            message=f"line {source.lines_read} cannot be sent: {err}",
                            fatal=True,
                            job_line=source.lines_read,
                        )
                    )
                    self.end()
                    return
                self._lines_sent += 1
                if "Z" in line:
                    self._track_z(line)
        out = core.data_to_send(now)
        if out and self._transport is not None:
            self._transport.write(out)  # type: ignore[attr-defined]
            self.bytes_written += len(out)
        if source is not None and source.exhausted and not self._source_finished and core.idle():
            self._source_finished = True
            self._on_event(StreamFinished(lines=source.lines_read, bytes=source.bytes_read))
            core.finish_motion()
            out = core.data_to_send(now)
            if out and self._transport is not None:
                self._transport.write(out)  # type: ignore[attr-defined]
                self.bytes_written += len(out)

    def _track_z(self, line: str) -> None:
        if not line.startswith(("G0", "G1")):
            return
        for word in line.split():
            if word.startswith("Z"):
                try:
                    self.z = float(word[1:])
                except ValueError:
                    return

    def _handle(self, events: list[ProtocolEvent]) -> None:
        for ev in events:
            if isinstance(ev, LinesAcked) and self._offsets:
                n = min(ev.count, len(self._offsets))
                for _ in range(n - 1):
                    self._offsets.popleft()
                self.bytes_done = self._offsets.popleft()
            elif isinstance(ev, FirmwareError) and ev.job_line is not None:
                # Cores number job lines from their creation; report them per job.
                ev = replace(ev, job_line=max(1, ev.job_line - self._line_base))
            self._on_event(ev)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            try:
                self._handle(self.core.tick(self._clock()))
                self.pump()
            except Exception as err:
                if not self._lost.done():
                    self._lost.set_exception(err)
                return

    async def run(self) -> None:
        """Handshake, then serve until the port closes (raises SerialPortError)."""
        self.core.start(self._clock())
        self.pump()
        ticker = asyncio.create_task(self._ticker(), name="streamer:tick")
        try:
            exc = await self._lost
            if isinstance(exc, serial.SerialException | OSError):
                raise SerialPortError(
                    f"serial port lost: {exc}; the controller was unplugged or reset"
                ) from exc
            raise SerialPortError("serial port closed: the controller was unplugged or lost power")
        finally:
            await cancel_and_wait([ticker])
            if self._source is not None:
                self._source.close()
            if self._transport is not None:
                self._transport.close()
