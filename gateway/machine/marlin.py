"""The Marlin host protocol as a pure state machine (no port, no clock, no task).

Wire format
    Every line goes out as ``N<n> <line>*<checksum>\\n``, the checksum being the
    XOR of every byte before ``*``; numbers increase by one.  ``M112`` from
    :meth:`MarlinProtocol.emergency_stop` is the only unnumbered line: Marlin
    acts on an unnumbered ``M112`` when it reads the line, ahead of its queue and
    whatever its line counter says (``queue.cpp``, "Process critical commands
    early"; at once, even with a full queue, with ``EMERGENCY_PARSER``).

Handshake
    ``N0 M110 N0``, ``M115``, then ``M155 S<n>`` if the firmware reports
    temperatures itself; a board that never says ``FIRMWARE_NAME:`` is driven
    with conservative settings once ``handshake_timeout`` has passed, and
    ``start`` after the handshake is a :class:`FirmwareReset`.  The rules are
    written down in :mod:`gateway.machine.marlin_handshake`.

Flow control
    Without ``ADVANCED_OK`` one line is in flight per ``ok``.  With it (seen
    in the first ``ok N<n> P<planner free> B<queue free>``; Marlin does not list
    it in ``M115``) several lines are in flight, bounded by the RX buffer
    (``rx_buffer_size`` bytes of unacknowledged lines) and by the command queue:
    ``B`` is ``BUFSIZE - length`` counted while the acknowledged command still
    holds its slot (``GCodeQueue::RingBuffer::ok_to_send``), so ``BUFSIZE`` is the
    largest ``B`` seen plus one and at most that many lines are unacknowledged.
    Every line that is not acknowledged is then either in Marlin's command queue
    or in its RX buffer, and the RX buffer only fills while the queue is full,
    which this bound rules out; Marlin reads serial from ``idle()`` whenever the
    queue has room (``manage_inactivity`` -> ``get_available_commands``).
    ``ok N<n>`` acknowledges every line up to ``n``: Marlin queues a line only if
    its number is ``last_N + 1`` and runs its queue in order.

Resends and lost replies
    The first resend request is acted on and duplicates never cause double
    sending; a silent link is probed with a numbered ``N<next> M105``, which
    nothing can run twice, after a wait learnt from the link.  The rules are
    written down in :mod:`gateway.machine.marlin_recovery`.

Known limits of Marlin itself
    ``gcode_line_error`` drains the RX buffer in the middle of whatever it holds.
    If part of a later line was in it, the rest of that line arrives without its
    ``N`` and Marlin runs it as an unnumbered command; with
    ``GCODE_CASE_INSENSITIVE`` (off in stock configurations) a bit flip of ``N``
    into ``n`` does the same, because ``queue.cpp`` only checks lines starting
    with ``'N'``.  With ``ADVANCED_OK`` either shows as an ``ok P.. B..``
    without ``N``, reported as a non-fatal :class:`FirmwareError`.  Keeping the
    unacknowledged lines within ``BUFSIZE`` keeps the RX buffer empty on a
    UART; a USB CDC link delivers 64-byte packets and can still split a line.
"""

from __future__ import annotations

from collections import deque

from gateway.machine.marlin_fast import OK_NPB, FastAcks
from gateway.machine.marlin_handshake import Handshake
from gateway.machine.marlin_lines import Kind, Line, State
from gateway.machine.marlin_probe import MIN_PROBE, is_long
from gateway.machine.marlin_recovery import LinkRecovery
from gateway.machine.marlin_wire import (
    Reply,
    checksum,
    classify,
    format_line,
    parse_ok,
    parse_resend,
    parse_temperatures,
)
from gateway.machine.protocol import (
    CommandDone,
    CommunicationTimeout,
    ControllerProtocol,
    ControllerReady,
    FirmwareError,
    FirmwareMessage,
    FirmwareReset,
    LinesAcked,
    MotionFinished,
    ProtocolEvent,
    Temperatures,
    UnparsedLine,
)

__all__ = [
    "InvalidLine",
    "MarlinProtocol",
    "MarlinProtocolError",
    "PrinterHalted",
    "checksum",
    "format_line",
    "parse_temperatures",
]

_WANT_DEPTH = 32  # job lines the core keeps queued ahead of the window
_MAX_PARTIAL = 4096  # bytes without a newline before they are reported as garbage
_NUMBER_MARGIN = 1000  # line numbers a queued line may move by before it is sent
_HALTED = "the printer is halted (M112 or a firmware error): reset or power-cycle it"


class MarlinProtocolError(Exception):
    """Base of the errors raised by :class:`MarlinProtocol`."""


class InvalidLine(MarlinProtocolError, ValueError):
    """A line that cannot be sent to Marlin as it is."""


class PrinterHalted(MarlinProtocolError):
    """A line was offered after ``M112`` or a firmware kill."""


class MarlinProtocol(FastAcks, LinkRecovery, ControllerProtocol):
    """Sans-I/O core for Marlin 2.x (and 1.1.x) over a serial line.

    Keyword arguments:

    ``rx_buffer_size``
        Bytes of unacknowledged lines allowed in flight with ``ADVANCED_OK``:
        what Marlin's RX ring holds (``RX_BUFFER_SIZE`` 128 keeps 127).
    ``response_timeout``
        Seconds without an answer, while lines are in flight, before the core
        probes with a numbered ``M105`` (``busy:`` and heating reports restart it).
    ``temperature_interval``
        Seconds between temperature reports: ``M155 S<n>`` if the firmware
        auto-reports, else an ``M105`` poll.
    ``history_size``
        Sent lines kept for ``Resend``.
    ``max_line_length``
        Marlin's ``MAX_CMD_SIZE``: a line with its number and checksum must be
        shorter, or Marlin cuts it and refuses it for ever.
    ``handshake_timeout``
        Seconds to wait for ``M110`` before sending it again (board booting).
    """

    firmware = "marlin"
    _next_poll: float

    def __init__(
        self,
        *,
        rx_buffer_size: int = 127,
        response_timeout: float = 10.0,
        temperature_interval: float = 2.0,
        history_size: int = 256,
        max_line_length: int = 96,
        handshake_timeout: float = 2.5,
    ) -> None:
        if rx_buffer_size < 32 or max_line_length < 16 or history_size < 16:
            raise ValueError("rx_buffer_size >= 32, max_line_length >= 16, history_size >= 16")
        if min(response_timeout, temperature_interval, handshake_timeout) <= 0:
            raise ValueError("timeouts and intervals must be positive")
        self._rx_size = rx_buffer_size
        self._response_timeout = response_timeout
        self._interval = temperature_interval
        self._history_size = history_size
        self._max_length = max_line_length
        self._handshake_timeout = handshake_timeout
        self._state = State.NEW
        self._head_wire: tuple[object, int, bytes] | None = None
        self._out = bytearray()
        self._rx = bytearray()
        self._events: list[ProtocolEvent] = []
        self._pending: deque[Line] = deque()  # job and console lines, not numbered yet
        self._system: deque[Line] = deque()  # handshake and poll lines, sent first
        self._job_lines = 0
        self._acked = 0
        self._unreported = 0  # job lines acknowledged by fast_ok, not yet in a LinesAcked
        self._ahead: dict[int, tuple[Line, bytes]] = {}  # fast_ok's lines framed in advance
        self._resends = 0
        self._errors = 0
        self._reset_link(0.0)

    # -- ControllerProtocol ----------------------------------------------------

    def start(self, now: float) -> None:
        self._enter(State.SYNC, now, self._events)

    def receive(self, data: bytes, now: float) -> list[ProtocolEvent]:
        events, self._events = self._events, []
        if self._unreported:
            self._report_fast(events)
        buf = self._rx
        buf += data
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > _MAX_PARTIAL:
                events.append(UnparsedLine(bytes(buf).decode("utf-8", "replace")))
                buf.clear()
            return events
        chunk = bytes(buf[:end])
        del buf[: end + 1]
        npb = OK_NPB.fullmatch
        for raw in chunk.split(b"\n"):
            m = npb(raw)
            if m is None:
                self._handle(raw, now, events)
            else:
                self._on_npb(int(m[1]), int(m[2]), int(m[3]), now, events)
        return events

    def tick(self, now: float) -> list[ProtocolEvent]:
        events, self._events = self._events, []
        if self._unreported:
            self._report_fast(events)
        state = self._state
        if state is State.NEW or state is State.HALTED:
            return events
        if self._in_flight:
            waited = now - self._last_progress
            if state is State.SYNC:
                if waited >= self._handshake_timeout:
                    self._resend_sync(now)
                    events.append(CommunicationTimeout(waited, "sent M110 N0 again"))
            elif (
                state is State.IDENTIFY and self._probe_n < 0 and self._handshake.name_overdue(now)
            ):
                self._probe(
                    now,
                    now - self._handshake.since,
                    events,
                    "no FIRMWARE_NAME in the M115 answer; sent N{n} M105 to go on without it",
                )
            elif 0.0 <= self._resend_due <= now:
                self._probe(
                    now, waited, events, "a line error came without Resend; sent N{n} M105"
                )
            elif waited >= MIN_PROBE and waited >= self._timing.wait(
                (line.text for line in self._in_flight), self._response_timeout
            ):
                self._probe(now, waited, events)
        if state is State.READY and not self._auto_report and now >= self._next_poll:
            self._next_poll = now + self._interval
            self._queue_poll()
        return events

    def data_to_send(self, now: float) -> bytes:
        self._fill(now)
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    def send_line(self, line: str) -> None:
        """Queue a job line; raises :class:`InvalidLine` or :class:`PrinterHalted`."""
        if self._state is State.HALTED:
            raise PrinterHalted(_HALTED)
        text = self._check(line)
        self._job_lines += 1
        self._pending.append(Line(text, Kind.JOB, self._job_lines))

    def send_command(self, line: str) -> None:
        """Queue a console command; raises :class:`InvalidLine`.  While the printer
        is halted the command is answered at once with a failed :class:`CommandDone`."""
        text = self._check(line)
        if self._state is State.HALTED:
            self._events.append(CommandDone(text, False, (_HALTED,)))
            return
        self._pending.append(Line(text, Kind.COMMAND))

    def finish_motion(self) -> None:
        """Queue ``M400``: Marlin answers it only once its planner is empty
        (``planner.synchronize()``), printing ``busy:`` while it waits."""
        if self._state is not State.HALTED:
            self._pending.append(Line("M400", Kind.DRAIN))

    def wants_lines(self) -> bool:
        return self._state is not State.HALTED and len(self._pending) < _WANT_DEPTH

    def emergency_stop(self) -> None:
        self._out = bytearray(b"M112\n")
        self._halt(self._events)

    def discard_queued(self) -> int:
        kept = deque(line for line in self._pending if line.kind == Kind.COMMAND)
        dropped = sum(1 for line in self._pending if line.kind == Kind.JOB)
        self._pending = kept
        return dropped

    @property
    def ready(self) -> bool:
        return self._state is State.READY

    @property
    def acked(self) -> int:
        return self._acked

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def queued(self) -> int:
        return len(self._pending) + len(self._system) + self._next_n - self._send_n

    @property
    def resends(self) -> int:
        return self._resends

    @property
    def errors(self) -> int:
        return self._errors

    @property
    def bytes_in_flight(self) -> int:
        return self._flight_bytes

    @property
    def planned(self) -> int | None:
        if self._planner_free < 0:
            return None
        return self._planner_size - self._planner_free

    @property
    def advanced_ok(self) -> bool:
        """The firmware answers ``ok N<n> P<planner> B<queue>`` (several lines in flight)."""
        return self._advanced

    @property
    def command_slots(self) -> int:
        """Lines allowed in flight: Marlin's ``BUFSIZE`` with ``ADVANCED_OK``, else 1."""
        return self._slots

    # -- state machine ---------------------------------------------------------

    def _reset_link(self, now: float) -> None:
        """Forget everything about the line counter (new session or board restart)."""
        self._history = {}  # sent lines by number, kept for Resend
        self._in_flight = []
        self._flight_bytes = 0
        self._next_n = 0  # number the next new line gets
        self._send_n = 0  # number the next line on the wire has (< _next_n: re-sending)
        self._acked_n = -1  # highest number taken as executed
        self._proven_n = -1  # highest number an ``ok N`` acknowledged
        self._advanced = False
        self._slots = 1
        self._reset_recovery()
        self._after_unknown = False  # the last line was "echo:Unknown command"
        self._planner_free = -1  # P of the last ok N P B
        self._planner_size = 0  # the largest P seen: the planner when empty
        self._last_progress = now
        self._auto_report = False
        self._next_poll = now
        self._handshake = Handshake(now, self._handshake_timeout)
        self._system.clear()

    def _enter(self, state: State, now: float, events: list[ProtocolEvent]) -> None:
        """The one place the state changes; entry actions per state."""
        self._state = state
        match state:
            case State.SYNC:
                self._reset_link(now)
                line = Line("M110 N0", Kind.SYNC)
                line.n = 0
                line.wire = b"\n" + format_line(0, line.text)  # ends any partial line
                self._history[0] = line
                self._next_n = 1
            case State.IDENTIFY:
                self._handshake.identify_sent(now)
                self._system.append(Line("M115", Kind.IDENTIFY))
            case State.CONFIGURE:
                seconds = max(1, round(self._interval))
                self._system.append(Line(f"M155 S{seconds}", Kind.CONFIGURE))
            case State.READY:
                hs = self._handshake
                self._next_poll = now
                self._auto_report = hs.auto_report
                events.append(ControllerReady("marlin", hs.version, dict(hs.capabilities)))
            case State.HALTED | State.NEW:
                pass

    def _halt(self, events: list[ProtocolEvent]) -> None:
        self._fail_lines(events)
        self._pending.clear()
        self._system.clear()
        self._in_flight = []
        self._flight_bytes = 0
        self._send_n = self._next_n
        self._recover_n = -1
        self._state = State.HALTED

    def _restart(self, now: float, events: list[ProtocolEvent]) -> None:
        """Drop the job and run the handshake again (board reset or lost numbering)."""
        self._fail_lines(events)
        self._pending.clear()
        self._enter(State.SYNC, now, events)

    def _fail_lines(self, events: list[ProtocolEvent]) -> None:
        """Answer every console command that will not run now."""
        lines = [*self._history.values(), *self._pending]
        for line in lines:
            if line.kind == Kind.COMMAND and not line.done:
                line.done = True
                response = tuple(line.response or ())
                events.append(CommandDone(line.text, False, response))
        self._pending = deque(line for line in self._pending if line.kind != Kind.COMMAND)

    # -- sending -----------------------------------------------------------------

    def _check(self, line: str) -> str:
        text = line.strip()
        if not text:
            raise InvalidLine("empty line")
        if (
            not (text.isascii() and text.isprintable())
            or ";" in text
            or "\\" in text
            or "*" in text
        ):
            raise InvalidLine(
                f"{text!r}: strip comments first; Marlin cannot take ';', '\\', '*', "
                "control or non-ASCII characters in a numbered line"
            )
        number = self._next_n + len(self._pending) + _NUMBER_MARGIN
        if len(text) + len(str(number)) + 6 >= self._max_length:  # "N<number> <text>*255"
            raise InvalidLine(
                f"{text[:40]!r}...: too long for Marlin's {self._max_length}-byte line buffer "
                "(MAX_CMD_SIZE); split it"
            )
        return text

    def _fill(self, now: float) -> None:
        """Put lines on the wire while the window allows."""
        state = self._state
        if state is State.NEW or state is State.HALTED:
            return
        flight = self._in_flight
        limit = self._slots if state is State.READY else 1
        while len(flight) < limit:
            n = self._send_n
            if n < self._next_n:
                line = self._history.get(n)
                if line is None:
                    self._lost_sync(f"line {n} is no longer in the history", now, self._events)
                    return
                wire = line.wire
            else:
                if self._system:
                    line = self._system[0]
                elif self._pending and state is State.READY:
                    line = self._pending[0]
                else:
                    return
                cached = self._head_wire
                if cached is not None and cached[0] is line and cached[1] == n:
                    wire = cached[2]
                else:
                    # A line that does not fit yet is tried again on the next ok.
                    wire = format_line(n, line.text)
                    self._head_wire = (line, n, wire)
            if 0 <= self._recover_n < n:
                return  # the re-sent line goes alone until it is acknowledged
            if flight and self._flight_bytes + len(wire) > self._rx_size:
                return
            if n == self._next_n:
                (self._system if self._system else self._pending).popleft()
                line.n, line.wire = n, wire
                self._history[n] = line
                self._history.pop(n - self._history_size, None)
                self._next_n = n + 1
            elif line.kind != Kind.SYNC:
                self._resends += 1
            if not flight:
                self._last_progress = now
            flight.append(line)
            self._flight_bytes += len(wire)
            self._send_n = n + 1
            self._out += wire

    def _queue_poll(self) -> None:
        if not any(line.kind == Kind.POLL for line in self._system) and not any(
            line.kind == Kind.POLL for line in self._in_flight
        ):
            self._system.append(Line("M105", Kind.POLL))

    def _resend_sync(self, now: float) -> None:
        self._in_flight = []
        self._flight_bytes = 0
        self._send_n = 0
        self._last_progress = now

    # -- acknowledgements ----------------------------------------------------------

    def _confirm(self, n: int, now: float, events: list[ProtocolEvent]) -> None:
        """Lines up to ``n`` were executed (Marlin runs its queue in order)."""
        if n <= self._acked_n:
            self._last_progress = now
            return
        gap = now - self._last_progress
        self._last_progress = now
        # A heating or homing answered says nothing about the link's pace.
        self._timing.replied(
            gap, gap >= 0.3 and any(line.n <= n and is_long(line.text) for line in self._in_flight)
        )
        count = 0
        history = self._history
        for k in range(self._acked_n + 1, n + 1):
            line = history.get(k)
            if line is None or line.done:
                continue
            line.done = True
            if line.kind == Kind.JOB:
                count += 1
                continue
            if count:
                self._acked += count
                events.append(LinesAcked(count, self._acked))
                count = 0
            if line.kind == Kind.COMMAND:
                response = tuple(line.response or ())
                events.append(CommandDone(line.text, not line.failed, response))
            elif line.kind == Kind.DRAIN:
                events.append(MotionFinished())
            else:  # a handshake line or a poll: the handshake may move on
                state = self._handshake.next_state(self._state, line.kind, now, events)
                if state is not None:
                    self._enter(state, now, events)
        if count:
            self._acked += count
            events.append(LinesAcked(count, self._acked))
        self._acked_through(n)
        if 0 <= self._recover_n <= n:
            self._recover_n = -1
            self._allowance = 0
        if self._probe_n <= n:
            self._probe_n = -1

    def _on_bare_ok(self, after_error: bool, now: float, events: list[ProtocolEvent]) -> None:
        if after_error or self._advanced or not self._in_flight:
            return  # ends a resend triple; with ADVANCED_OK real acks carry P/B
        if self._state is State.NEW or self._state is State.HALTED:
            return
        # Only a line sent in sequence can be acknowledged: a probe sent past lines
        # still waiting to be re-sent cannot have been accepted.
        line = next((line for line in self._in_flight if line.n < self._send_n), None)
        if line is None:
            return
        if line.kind == Kind.IDENTIFY and not self._handshake.name_seen:
            return  # M115 prints its name before its ok: this one is stray
        self._confirm(line.n, now, events)
        if (
            self._state is State.READY
            and line.kind <= Kind.COMMAND
            and not self._in_flight
            and not self._pending
            and self._send_n == self._next_n
        ):
            self._queue_poll()  # a plain ok is not proof: let an ``ok T:`` confirm the last line

    def _on_ok(
        self,
        text: str,
        after_error: bool,
        after_unknown: bool,
        now: float,
        events: list[ProtocolEvent],
    ) -> None:
        body = text[2:]
        if body[:1] != " ":
            events.append(UnparsedLine(text))
            return
        body = body.strip()
        if body[:2] in ("T:", "B:") or body[:3] == "T0:":
            self._on_temperature_ok(body, now, events)
            return
        fields = parse_ok(body)
        if fields is None:
            events.append(UnparsedLine(text))
            return
        n, p, b = fields
        if self._state is State.NEW or self._state is State.HALTED:
            return
        if b >= 0 and p >= 0:
            self._note_planner(p, b)
        if n < 0:
            if p >= 0 and not after_unknown:
                self._errors += 1
                events.append(
                    FirmwareError(
                        "Marlin ran a line without a line number (the tail of a line left "
                        "after it emptied its receive buffer); a move may have run twice"
                    )
                )
            elif p < 0:
                self._on_bare_ok(after_error, now, events)
            return
        if n < self._next_n:
            self._proven_n = max(self._proven_n, n)
            self._confirm(n, now, events)

    def _on_temperature_ok(self, body: str, now: float, events: list[ProtocolEvent]) -> None:
        readings = parse_temperatures(body)
        if readings:
            events.append(Temperatures(readings))
        if self._state is State.NEW or self._state is State.HALTED:
            return
        # After a timeout the answer that matters is the probe's: the ``ok T:`` of
        # an earlier M105 was lost (or is late, which the probe makes harmless).
        probe = self._history.get(self._probe_n)
        if probe is not None and probe in self._in_flight and probe.n < self._send_n:
            self._confirm(probe.n, now, events)
            return
        for line in self._in_flight:
            if line.text.startswith("M105") and line.n < self._send_n:
                if line.response is not None:
                    line.response.append(body)
                self._confirm(line.n, now, events)
                return
        if not self._advanced:
            self._on_bare_ok(False, now, events)

    # -- reply lines -----------------------------------------------------------------

    def _handle(self, raw: bytes, now: float, events: list[ProtocolEvent]) -> None:
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._after_line_error = False
            self._paired_resend = -1
            events.append(UnparsedLine(raw.decode("utf-8", "replace")))
            return
        if not text:
            return
        after_error, self._after_line_error = self._after_line_error, False
        paired, self._paired_resend = self._paired_resend, -1
        after_unknown, self._after_unknown = self._after_unknown, False
        match classify(text):
            case Reply.OK:
                self._on_bare_ok(after_error, now, events)
            case Reply.OK_FIELDS:
                self._on_ok(text, after_error, after_unknown, now, events)
            case Reply.RESEND:
                number = parse_resend(text)
                if number is None:
                    events.append(UnparsedLine(text))
                    return
                self._after_line_error = True
                if number != paired:  # else: same triple as the Error line before it
                    self._on_resend(number, now, events)
            case Reply.ERROR:
                self._on_error(text, now, events)
            case Reply.ECHO:
                self._on_echo(text[5:].strip(), now, events)
            case Reply.TEMPERATURES:
                readings = parse_temperatures(text)
                if readings is None:
                    events.append(UnparsedLine(text))
                    return
                if "W:" in text:  # M109/M190 waiting: the command is alive
                    self._last_progress = now
                events.append(Temperatures(readings))
            case Reply.BUSY:
                self._on_echo(text, now, events)
            case Reply.START:
                self._on_start(now, events)
            case Reply.WAIT:
                events.append(FirmwareMessage("wait", text))
            case Reply.FIRMWARE_NAME:
                self._handshake.firmware_name(text)
                self._note_output(text)
            case Reply.CAP:
                self._handshake.cap(text)
                self._note_output(text)
            case Reply.INFO:
                events.append(FirmwareMessage("info", text[2:].strip()))
                self._note_output(text)
            case _:
                events.append(UnparsedLine(text))
                self._note_output(text)

    def _on_echo(self, body: str, now: float, events: list[ProtocolEvent]) -> None:
        self._last_progress = now
        if body.startswith("busy:"):
            self._timing.busy(now)
            events.append(FirmwareMessage("busy", body[5:].strip()))
            return
        events.append(FirmwareMessage("echo", body))
        unknown = body.startswith("Unknown command")
        self._after_unknown = unknown  # its ok may lack N: a refused fragment, not a run
        self._note_output("echo:" + body, failed=unknown)

    def _on_start(self, now: float, events: list[ProtocolEvent]) -> None:
        state = self._state
        if state is State.NEW:
            return
        if state is State.SYNC:
            self._resend_sync(now)  # the bootloader ate the first M110
            return
        events.append(FirmwareReset("start"))
        self._restart(now, events)

    def _note_output(self, text: str, *, failed: bool = False) -> None:
        """Printed while a console command runs: part of its answer."""
        if self._in_flight:
            line = self._in_flight[0]
            if line.response is not None:
                line.response.append(text)
                line.failed = line.failed or failed
