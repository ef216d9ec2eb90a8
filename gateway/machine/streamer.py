"""The serial adapter around a protocol core: owns the port, the clock and the thread.

:class:`Streamer` reads what the controller sends, hands it to the core with the
time, writes what the core wants sent, and keeps the core's queue topped up
from a :class:`FileLines` source while a job runs.  It knows nothing of jobs'
records, the bus or the web: it reports :class:`ProtocolEvent` objects (plus
:class:`StreamFinished`) to the one callback the machine service gives it, on
the event loop.

Why a thread of its own.  On tiny segments the controller answers every few
milliseconds, and what a Pi pays per line is the wake-up around each reply, not
the protocol work (about 12 us per ``ok`` here).  Measured on a pseudo-terminal
with the replies 2 ms apart: an asyncio reader callback costs ~46 us of CPU per
wake-up (the loop's timer heap, selector and handle machinery, plus
pyserial-asyncio's read and write wrappers on top), a thread blocked in
``poll``/``os.read`` on the descriptor ~14 us.  So one daemon thread per port
waits on the descriptor, runs the (pure, synchronous) core and writes its
answer at once, and the event loop hears only the events, in order and in
batches: at once for anything that matters (errors, ready, finished, status),
every ``flush_interval`` for mere progress (:class:`LinesAcked`).  The core is
touched under one lock, by that thread and by the loop's commands (which write
straight to the descriptor, so an e-stop never waits for the thread).  Nobody
waits on the port while holding the lock: what the port does not take at once
is kept, in order, and written by the thread when ``poll`` says it can, so an
adapter that stops taking data never blocks the event loop (nor the relay cut
that goes with an e-stop); after ``write_timeout`` the port counts as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import select
import termios
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import serial

from gateway.machine.marlin import MarlinProtocol
from gateway.machine.protocol import (
    ControllerProtocol,
    FirmwareError,
    LinesAcked,
    ProtocolEvent,
)
from gateway.machine.serial_port import SerialPortError

# While lines are in flight, the reader sleeps this share of the time the
# controller needs to take in the bytes in flight before it reads the replies.
_DRAIN_SHARE = 0.5
# The shortest reply a controller sends: Marlin's ``ok\n`` (GRBL's is ``ok\r\n``).
MIN_REPLY = 3
# Lines answered on the fast path between top-ups of the core's queue (it holds 32).
_FAST_REFILL = 8


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


class Streamer:
    """Drives ``core`` over a serial port until the port goes away.

    :func:`~gateway.machine.serial_port.open_port` hands it the opened port
    (:meth:`attach`); :meth:`run` serves it until it is lost.  Every public
    method is called on the event loop; the reader thread only calls the core
    and queues events.
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
        flush_interval: float = 0.1,
        write_timeout: float = 2.0,
    ) -> None:
        self.core = core
        # While two or more lines are in flight the controller has work queued, so
        # replies may wait and be read together: fewer wake-ups, reads and writes
        # per line.  The wait is ``coalesce`` at least and, when the baud rate is
        # known, half the time the controller needs to take in the bytes in
        # flight, so the wire never runs dry.
        self._coalesce = coalesce
        self._byte_time = 10.0 / baud if baud else 0.0
        self._coalesce_max = 0.05
        self._on_event = on_event
        self._tick_interval = tick_interval
        self._flush_interval = flush_interval
        self._write_timeout = write_timeout
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._lock = threading.RLock()
        self._port: serial.Serial | None = None
        self._fd = -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wake_r = self._wake_w = -1
        self._lost: asyncio.Future[BaseException | None] = self._loop.create_future()
        # Events from the core, in order, waiting for the loop.
        self._pending: list[ProtocolEvent] = []
        self._urgent = False
        self._delivery_due = False
        self._last_delivery = clock()
        self._source: FileLines | None = None
        self._source_finished = False
        self._offsets: deque[int] = deque()  # end offset of each line sent, not yet acked
        self._acked_base = 0  # core.acked when the current source started
        self._lines_sent = 0  # send_line calls on this core (cores number job lines so)
        self._line_base = 0  # _lines_sent when the current source started
        self.paused = False
        self.bytes_done = 0
        self.bytes_written = 0
        # Bytes the port did not take yet (an adapter that stopped taking data): the
        # reader thread writes them when poll says it can.  Nobody waits on the port
        # while holding the lock, so the loop's commands (an e-stop) never block.
        self._backlog = bytearray()
        self._backlog_since = 0.0  # when the port last took none of it
        #: Z of the last move sent (for layer changes; GRBL reports real positions).
        self.z: float | None = None

    def attach(self, port: serial.Serial) -> None:
        """Take the opened (non-blocking) port; :meth:`run` serves it."""
        self._port = port
        self._fd = port.fileno()

    # -- job source ---------------------------------------------------------------

    def begin(self, source: FileLines) -> None:
        """Start streaming ``source`` as the job's lines."""
        with self._lock:
            self._end()
            self._source = source
            self._source_finished = False
            self._offsets.clear()
            self._acked_base = self.core.acked
            self._line_base = self._lines_sent
            self.bytes_done = 0
            self.paused = False
            self._pump(self._clock())
            self._schedule_delivery(self._clock())

    def end(self) -> int:
        """Stop feeding the current source; drop its lines still queued in the core."""
        with self._lock:
            return self._end()

    def _end(self) -> int:
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
        self.control(lambda core: core.send_command(line))

    def emergency_stop(self) -> None:
        with self._lock:
            self._end()
            self.core.emergency_stop()
            self._pump(self._clock())

    def control(self, action: Callable[[ControllerProtocol], object]) -> None:
        """Run ``action`` on the core (a feed hold, a cycle start...) and write what
        it queued, without the reader thread in between."""
        with self._lock:
            action(self.core)
            now = self._clock()
            self._pump(now)
            self._schedule_delivery(now)

    def pump(self) -> None:
        """Top up the core's queue from the source and write what it wants sent."""
        with self._lock:
            now = self._clock()
            self._pump(now)
            self._schedule_delivery(now)

    # -- the core, under the lock ----------------------------------------------------

    def _pump(self, now: float) -> None:
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
                    self._emit(
                        FirmwareError(
                            message=f"line {source.lines_read} cannot be sent: {err}",
                            fatal=True,
                            job_line=source.lines_read,
                        )
                    )
                    self._end()
                    return
                self._lines_sent += 1
                if "Z" in line:
                    self._track_z(line)
        out = core.data_to_send(now)
        if out:
            self._write(out)
        if source is not None and source.exhausted and not self._source_finished and core.idle():
            self._source_finished = True
            self._emit(StreamFinished(lines=source.lines_read, bytes=source.bytes_read))
            core.finish_motion()
            out = core.data_to_send(now)
            if out:
                self._write(out)

    def _write(self, data: bytes) -> None:
        """Hand ``data`` to the port, in order after anything it has not taken yet.
        What it does not take at once is kept for the reader thread
        (:meth:`_flush`); a port that takes nothing for ``write_timeout`` (a wedged
        adapter) is treated as lost.  Never waits: it runs under the lock, on the
        reader thread and on the event loop alike."""
        fd = self._fd
        if fd < 0 or self._lost.done():
            return
        if self._backlog:
            self._backlog += data
            self._flush(time.monotonic())
            return
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            n = 0
        except OSError as err:
            self._fail(err)
            return
        self.bytes_written += n
        if n < len(data):
            self._backlog += data[n:]
            self._backlog_since = time.monotonic()
            self._kick()

    def _flush(self, now: float) -> None:
        """Write what the port can take of the backlog (under the lock)."""
        fd = self._fd
        if fd < 0 or self._lost.done():
            self._backlog.clear()
            return
        try:
            n = os.write(fd, self._backlog)
        except BlockingIOError:
            n = 0
        except OSError as err:
            self._fail(err)
            return
        if n:
            self.bytes_written += n
            del self._backlog[:n]
            self._backlog_since = now
        elif now - self._backlog_since >= self._write_timeout:
            self._backlog.clear()
            self._fail(
                SerialPortError(f"the controller took no data for {self._write_timeout:.0f} s")
            )

    def _kick(self) -> None:
        """Wake the reader thread (it then also waits for the port to take data)."""
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"w")

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
            if isinstance(ev, LinesAcked):
                offsets = self._offsets
                if offsets:
                    n = min(ev.count, len(offsets))
                    for _ in range(n - 1):
                        offsets.popleft()
                    self.bytes_done = offsets.popleft()
                self._pending.append(ev)
                continue
            if isinstance(ev, FirmwareError) and ev.job_line is not None:
                # Cores number job lines from their creation; report them per job.
                ev = replace(ev, job_line=max(1, ev.job_line - self._line_base))
            self._emit(ev)

    def _emit(self, ev: ProtocolEvent) -> None:
        self._pending.append(ev)
        self._urgent = True

    # -- events to the loop ----------------------------------------------------------

    def _schedule_delivery(self, now: float) -> None:
        """Hand the queued events to the loop: at once when one matters, else at
        most every ``flush_interval`` (progress alone need not wake the loop
        for every ``ok``)."""
        if not self._pending or self._delivery_due:
            return
        if self._urgent or now - self._last_delivery >= self._flush_interval:
            self._delivery_due = True
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                self._delivery_due = False

    def _deliver(self) -> None:
        with self._lock:
            events, self._pending = self._pending, []
            self._urgent = False
            self._delivery_due = False
            self._last_delivery = self._clock()
        merged: LinesAcked | None = None
        for ev in events:
            if isinstance(ev, LinesAcked):
                if merged is not None:
                    ev = LinesAcked(count=merged.count + ev.count, total=ev.total)
                merged = ev
                continue
            if merged is not None:
                self._on_event(merged)
                merged = None
            self._on_event(ev)
        if merged is not None:
            self._on_event(merged)

    def _fail(self, err: BaseException) -> None:
        """End the connection (from either thread): the service fails the job and
        reconnects."""

        def lost() -> None:
            if not self._lost.done():
                self._lost.set_result(err)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self._loop.call_soon_threadsafe(lost)

    # -- the reader thread -------------------------------------------------------------

    def _serve(self) -> None:
        fd, wake = self._fd, self._wake_r
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(wake, select.POLLIN)
        nap = select.poll()  # the coalescing wait: only a stop request cuts it short
        nap.register(wake, select.POLLIN)
        core, lock, clock = self.core, self._lock, self._clock
        tick = self._tick_interval
        next_tick = clock() + tick
        fast = core.fast_ok if isinstance(core, MarlinProtocol) else None
        npb = core.fast_npb if isinstance(core, MarlinProtocol) else None
        partial = b""
        # The descriptor wakes this thread only once a whole short reply (``ok``)
        # is in; the tail of a longer one is given this long (ms) to arrive.
        partial_ms = max(1, math.ceil(8 * self._byte_time * 1000))
        wake_on_reply(fd)
        try:
            carried = b""  # read by the fast lane, not for it
            writing = False  # poll also waits for the port to take the backlog
            ready: list[tuple[int, int]]
            while not self._stopping:
                if carried:
                    ready, carried, data = [], b"", carried
                    timed_out = readable = False
                elif partial:
                    # Half a reply is in: the rest is a few byte-times away, and
                    # fewer than VMIN bytes would not wake poll.  Sleep that long
                    # and take what came; if nothing did, the core keeps the half.
                    nap.poll(partial_ms)
                    if self._stopping:
                        return
                    ready, data = [], b""
                    readable, timed_out = True, False
                else:
                    now = clock()
                    timeout = next_tick - now
                    if self._pending and not self._delivery_due:
                        timeout = min(timeout, self._last_delivery + self._flush_interval - now)
                    backlog = bool(self._backlog)
                    if backlog != writing:  # also wait for the port to take the backlog
                        mask = select.POLLIN | select.POLLOUT if backlog else select.POLLIN
                        poller.modify(fd, mask)
                        writing = backlog
                    if backlog:  # the write timeout is real time, whatever the core's clock
                        waited = time.monotonic() - self._backlog_since
                        timeout = min(timeout, self._write_timeout - waited)
                    ready = poller.poll(math.ceil(max(0.0, timeout) * 1000))
                    if self._stopping:
                        return
                    timed_out = not ready
                    readable = timed_out  # then take what is there: fewer than VMIN bytes
                    data = b""
                for which, what in ready:
                    if which != fd:
                        os.read(wake, 64)
                    elif what != select.POLLOUT:
                        readable = True
                if readable:
                    try:
                        data = os.read(fd, 4096)
                    except BlockingIOError:
                        data = b""
                    else:
                        if not data:
                            raise SerialPortError(
                                "the serial port reports data but returns none: "
                                "the controller was unplugged"
                            )
                if partial:
                    if data:
                        data, partial = partial + data, b""
                    else:
                        data, partial = partial, b""  # nothing more came: the core keeps it
                        timed_out = True
                if data and data[-1] != 10 and len(data) < 4096 and not timed_out:
                    # The rest of the line is a few byte-times away: wait for it
                    # rather than run the core on half a reply.
                    partial, data = data, b""
                now = clock()
                delay = 0.0
                fast_lane = False
                with lock:
                    if self._backlog:
                        self._flush(time.monotonic())
                    if data == b"ok\n" and fast is not None and now < next_tick:
                        wire = fast(now)
                        if wire is not None:
                            self._write(wire)
                            fast_lane = True
                    if not fast_lane:
                        if data:
                            if npb is None or not npb(data, now):
                                self._handle(core.receive(data, now))
                            self._pump(now)
                        if now >= next_tick:
                            self._handle(core.tick(now))
                            self._pump(now)
                            next_tick = now + tick
                        self._schedule_delivery(now)
                        if data and self._coalesce > 0 and core.in_flight > 1 and not self._backlog:
                            delay = self._coalesce
                            pending = core.bytes_in_flight
                            if self._byte_time and pending:
                                drain = _DRAIN_SHARE * pending * self._byte_time
                                delay = min(self._coalesce_max, max(delay, drain))
                if delay:
                    nap.poll(math.ceil(delay * 1000))
                if fast_lane and fast is not None and not self._backlog:
                    carried = self._fast_lane(fd, poller.poll, fast, next_tick)
        except BaseException as err:  # a bug must not leave the port half-driven
            self._fail(err)

    def _fast_lane(
        self,
        fd: int,
        poll: Callable[[float], list[tuple[int, int]]],
        fast: Callable[[float], bytes | None],
        next_tick: float,
    ) -> bytes:
        """One-per-``ok`` streaming at its cheapest: while the board says nothing
        but ``ok``, answer each with the next line (:meth:`MarlinProtocol.fast_ok`),
        topping the core's queue up every few lines.  Returns the first read that
        is something else, or ``b""`` when a tick is due or the thread is woken:
        the general loop takes over."""
        clock, lock, read, write = self._clock, self._lock, os.read, os.write
        ok = b"ok\n"
        count = 0
        while True:
            wait = (next_tick - clock()) * 1000.0
            if wait <= 0.0:
                return b""
            ready = poll(wait)
            if len(ready) != 1 or ready[0][0] != fd or ready[0][1] == select.POLLOUT:
                return b""
            try:
                data = read(fd, 4096)
            except BlockingIOError:
                continue
            if data != ok:
                return data
            with lock:
                now = clock()
                wire = fast(now)
                if wire is None:
                    return data
                if self._backlog:  # after what the port has not taken yet
                    self._write(wire)
                    return b""
                try:
                    n = write(fd, wire)
                except OSError:
                    n = 0
                self.bytes_written += n
                if n != len(wire):
                    self._write(wire[n:])
                    return b""  # the general loop waits for the port to take the rest
                count += 1
                if count == _FAST_REFILL:
                    count = 0
                    self._pump(now)
                    self._schedule_delivery(now)

    async def run(self) -> None:
        """Handshake, then serve until the port closes (raises SerialPortError)."""
        if self._port is None:
            raise SerialPortError("the streamer was given no port")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        with self._lock:
            now = self._clock()
            self.core.start(now)
            self._pump(now)
            self._schedule_delivery(now)
        self._thread = threading.Thread(target=self._serve, name="streamer", daemon=True)
        self._thread.start()
        try:
            exc = await self._lost
            if isinstance(exc, SerialPortError):
                raise exc
            if isinstance(exc, serial.SerialException | OSError):
                if isinstance(exc, OSError) and exc.errno == errno.EIO:
                    raise SerialPortError(
                        "serial port closed: the controller was unplugged or lost power"
                    ) from exc
                raise SerialPortError(
                    f"serial port lost: {exc}; the controller was unplugged or reset"
                ) from exc
            if exc is not None:
                raise exc
            raise SerialPortError("serial port closed: the controller was unplugged or lost power")
        finally:
            self._stop_thread()
            with self._lock:  # lines the fast lane acknowledged, not yet reported
                self._handle(self.core.receive(b"", self._clock()))
            self._deliver()  # what the controller said last still reaches the service
            with self._lock:
                if self._source is not None:
                    self._source.close()
                    self._source = None
                self._fd = -1
                self._port.close()
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    def _stop_thread(self) -> None:
        self._stopping = True
        thread = self._thread
        if thread is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        thread.join(timeout=self._write_timeout + 1.0)


def wake_on_reply(fd: int) -> None:
    """Make ``poll`` on the port report it readable only once ``MIN_REPLY`` bytes
    are in (``VMIN`` with ``VTIME`` 0, non-canonical mode, as ``n_tty`` does for
    USB and UART ports alike).  A reply arrives from a UART a byte at a time;
    without this, ``ok\n`` wakes the reader once per byte that happens to
    have arrived, twice or three times a line.  Reads stay non-blocking, so a
    shorter tail is still read after a timeout."""
    with contextlib.suppress(termios.error):
        attrs = termios.tcgetattr(fd)
        cc = attrs[6]
        cc[termios.VMIN] = MIN_REPLY
        cc[termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
