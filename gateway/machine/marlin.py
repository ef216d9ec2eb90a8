"""The Marlin host protocol as a pure state machine (no port, no clock, no task).

Wire format
    Every line goes out as ``N<n> <line>*<checksum>\\n``, the checksum being the
    XOR of every byte before ``*``; numbers increase by one.  ``M112`` from
    :meth:`MarlinProtocol.emergency_stop` is the only unnumbered line: Marlin
    acts on an unnumbered ``M112`` when it reads the line, ahead of its queue and
    whatever its line counter says (``queue.cpp``, "Process critical commands
    early"; at once, even with a full queue, with ``EMERGENCY_PARSER``).

Handshake (:class:`_State`)
    ``N0 M110 N0`` resets Marlin's line counter (``M110`` skips the sequence
    check, so it works whatever the board's counter is), ``M115`` reads
    ``FIRMWARE_NAME:`` and the ``Cap:`` lines, then ``M155 S<n>`` turns on
    temperature auto-reports when ``Cap:AUTOREPORT_TEMP:1``; otherwise ``M105``
    is polled every ``temperature_interval``.  A board that answers ``M115``
    without ``FIRMWARE_NAME:`` (older or vendor firmwares) is driven anyway once
    ``handshake_timeout`` has passed since the first ``M115``: a numbered
    ``N<next> M105`` proves the ``M115`` was answered (its plain ``ok`` alone
    cannot be told from a stray one), then the conservative settings apply: no
    capability assumed, one line in flight unless ``ok N P B`` shows
    ``ADVANCED_OK``, temperatures polled with ``M105``.  A board reset by DTR on open
    swallows what arrives while its bootloader runs: ``M110`` is sent again
    after ``handshake_timeout`` and as soon as ``start`` is printed.  After the
    handshake, ``start`` means the board restarted: :class:`FirmwareReset`,
    queued job lines are dropped and the handshake runs again.

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

Resends
    On a bad line Marlin prints ``Error:<why>, Last Line: <L>``, drains its RX
    buffer, then ``Resend: <L+1>`` and ``ok`` (``gcode_line_error`` and
    ``flush_and_request_resend``).  Each later line still in transit is refused
    the same way ("Line Number is not Last Line Number+1"), except copies
    numbered ``L`` or ``L-1``, which 2.1.2 drops silently.  The core acts on the
    first request (taken from the ``Error`` line, so a lost ``Resend`` costs
    nothing; an ``Error`` that names no line, as some firmwares print, waits
    0.25 s for its ``Resend`` and then probes, see below): lines below ``L+1``
    are in Marlin's queue and leave the window, and line ``L+1`` is re-sent
    alone until it is acknowledged.  Each line that was in flight behind the
    bad one can produce one more identical request, so
    up to that many further requests for the same line are ignored: duplicates
    never cause double sending.  The bare ``ok`` of the triple acknowledges
    nothing: with ``ADVANCED_OK`` every real acknowledgement carries ``P``/``B``;
    without it the ``ok`` right after ``Error``/``Resend`` is skipped, and lines
    below ``L+1`` count as acknowledged.  A request for a line no longer in the
    history, or for one an ``ok N`` already acknowledged (the board restarted),
    is a fatal :class:`FirmwareError`: the job stops and the handshake runs again.

Lost replies
    If lines are in flight and no acknowledgement, resend request, ``busy:``,
    ``echo:`` or heating report arrives for a while, the core sends a numbered
    ``N<next> M105`` probe. How long it waits is learnt from the link (reply
    gaps, ``busy:`` keepalives, the command in flight; see
    :mod:`gateway.machine.marlin_probe`): well under 2 s for a lost ``ok``, as
    long as needed for a heating or homing. The probe is safe whatever happened:
    Marlin executes a numbered line only if it is ``last_N + 1``, so nothing can
    run twice. If every earlier line was executed (their ``ok`` was lost), the
    probe is accepted and its ``ok T:`` acknowledges everything before it; the
    first ``ok T:`` after a timeout is the probe's, since an earlier M105's
    answer is the one that went missing. If a line was lost, the probe is
    refused with ``Resend: <last_N + 1>``, which names the first line
    to send again.  Re-sending the oldest unacknowledged line instead would
    stall: if it had run, 2.1.2 drops the copy without a word.  A plain ``ok``
    cannot say which line it answers, so it is credited only to a line sent in
    sequence (never to a probe sent past lines waiting to be re-sent), and
    when the queue drains after plain ``ok`` s the core sends one ``M105``
    whose ``ok T:`` proves the last line ran.

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

import enum
from collections import deque

from gateway.machine.marlin_probe import MIN_PROBE, ProbeTiming, is_long
from gateway.machine.marlin_wire import (
    Reply,
    checksum,
    classify,
    format_line,
    is_fatal,
    line_error,
    parse_cap,
    parse_firmware_name,
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
    ResendRequested,
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
_MAX_SLOTS = 64
_MAX_PARTIAL = 4096  # bytes without a newline before they are reported as garbage
_NUMBER_MARGIN = 1000  # line numbers a queued line may move by before it is sent
_RESEND_WAIT = 0.25  # seconds a line error without a line number waits for its Resend
_HALTED = "the printer is halted (M112 or a firmware error): reset or power-cycle it"


class MarlinProtocolError(Exception):
    """Base of the errors raised by :class:`MarlinProtocol`."""


class InvalidLine(MarlinProtocolError, ValueError):
    """A line that cannot be sent to Marlin as it is."""


class PrinterHalted(MarlinProtocolError):
    """A line was offered after ``M112`` or a firmware kill."""


class _Kind(enum.IntEnum):
    JOB = 0  # send_line: counted in LinesAcked
    COMMAND = 1  # send_command: answered with CommandDone
    SYNC = 2  # M110 N0
    IDENTIFY = 3  # M115
    CONFIGURE = 4  # M155 S<n>
    POLL = 5  # M105: temperature poll or probe after a timeout
    DRAIN = 6  # M400 after the last job line: its ok means the planner is empty


class _State(enum.Enum):
    NEW = "new"  # start() not called
    SYNC = "sync"  # N0 M110 N0 sent: resetting Marlin's line counter
    IDENTIFY = "identify"  # M115 sent: reading firmware name and capabilities
    CONFIGURE = "configure"  # M155 S<n> sent: turning on temperature reports
    READY = "ready"  # streaming
    HALTED = "halted"  # M112 or kill(): silent until the board restarts


# States in which lines are numbered and checked in sequence (M110 in SYNC is not).
_NUMBERED = frozenset({_State.IDENTIFY, _State.CONFIGURE, _State.READY})


class _Line:
    """One line through its life: queued, numbered, in flight, acknowledged."""

    __slots__ = ("done", "failed", "job_index", "kind", "n", "response", "text", "wire")

    def __init__(self, text: str, kind: _Kind, job_index: int = 0) -> None:
        self.text = text
        self.kind = kind
        self.job_index = job_index
        self.n = -1
        self.wire = b""
        self.done = False
        self.failed = False
        self.response: list[str] | None = [] if kind == _Kind.COMMAND else None


class MarlinProtocol(ControllerProtocol):
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
    _last_progress: float  # last acknowledgement, resend request or sign of life
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
        self._state = _State.NEW
        self._head_wire: tuple[object, int, bytes] | None = None
        self._out = bytearray()
        self._rx = bytearray()
        self._events: list[ProtocolEvent] = []
        self._pending: deque[_Line] = deque()  # job and console lines, not numbered yet
        self._system: deque[_Line] = deque()  # handshake and poll lines, sent first
        self._job_lines = 0
        self._acked = 0
        self._unreported = 0  # job lines acknowledged by fast_ok, not yet in a LinesAcked
        self._resends = 0
        self._errors = 0
        self._reset_link(0.0)

    # -- ControllerProtocol ----------------------------------------------------

    def start(self, now: float) -> None:
        self._enter(_State.SYNC, now, self._events)

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
        for raw in chunk.split(b"\n"):
            self._handle(raw, now, events)
        return events

    def tick(self, now: float) -> list[ProtocolEvent]:
        events, self._events = self._events, []
        if self._unreported:
            self._report_fast(events)
        state = self._state
        if state is _State.NEW or state is _State.HALTED:
            return events
        if self._in_flight:
            waited = now - self._last_progress
            if state is _State.SYNC:
                if waited >= self._handshake_timeout:
                    self._resend_sync(now)
                    events.append(CommunicationTimeout(waited, "sent M110 N0 again"))
            elif (
                state is _State.IDENTIFY
                and not self._name_seen
                and self._probe_n < 0
                and now - self._identify_since >= self._handshake_timeout
            ):
                self._probe(
                    now,
                    now - self._identify_since,
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
        if state is _State.READY and not self._auto_report and now >= self._next_poll:
            self._next_poll = now + self._interval
            self._queue_poll()
        return events

    def fast_ok(self, now: float) -> bytes | None:
        """The common case of one-per-``ok`` streaming, in one step: a bare ``ok``
        (the whole of what was read) acknowledges the one job line in flight, and
        the next queued job line goes out.  Returns what to write, or ``None`` when
        anything else is going on (handshake, recovery, ADVANCED_OK, a command, an
        empty queue): then :meth:`receive` must be given the same bytes.

        Same bookkeeping as :meth:`receive` then :meth:`data_to_send` take for
        that reply, without their general dispatch; its :class:`LinesAcked` is
        reported, summed, with the next events.  On a Pi the wake-up per line
        costs more than the protocol, so a line should cost as little as can be.
        """
        if (
            self._state is not _State.READY
            or self._advanced
            or self._rx
            or self._events
            or self._system
            or self._after_line_error
            or self._after_unknown
            or self._recover_n >= 0
            or self._probe_n >= 0
            or self._resend_due >= 0.0
            or self._paired_resend >= 0
            or len(self._in_flight) != 1
            or not self._pending
        ):
            return None
        done = self._in_flight[0]
        n = self._next_n
        nxt = self._pending[0]
        if (
            done.kind is not _Kind.JOB
            or nxt.kind is not _Kind.JOB
            or done.n != n - 1
            or self._send_n != n
            or self._acked_n != n - 2
        ):
            return None
        gap = now - self._last_progress
        if gap >= 0.3:
            return None  # a long move answered: the general path weighs it for probe timing
        self._timing.replied(gap, False)
        done.done = True
        self._acked_n = n - 1
        self._acked += 1
        self._unreported += 1
        self._pending.popleft()
        cached = self._head_wire
        if cached is not None and cached[0] is nxt and cached[1] == n:
            wire = cached[2]
        else:
            wire = format_line(n, nxt.text)
        nxt.n, nxt.wire = n, wire
        history = self._history
        history[n] = nxt
        history.pop(n - self._history_size, None)
        self._next_n = self._send_n = n + 1
        self._in_flight = [nxt]
        self._flight_bytes = len(wire)
        self._last_progress = now
        return wire

    def _report_fast(self, events: list[ProtocolEvent]) -> None:
        events.insert(0, LinesAcked(self._unreported, self._acked))
        self._unreported = 0

    def data_to_send(self, now: float) -> bytes:
        self._fill(now)
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    def send_line(self, line: str) -> None:
        """Queue a job line; raises :class:`InvalidLine` or :class:`PrinterHalted`."""
        if self._state is _State.HALTED:
            raise PrinterHalted(_HALTED)
        text = self._check(line)
        self._job_lines += 1
        self._pending.append(_Line(text, _Kind.JOB, self._job_lines))

    def send_command(self, line: str) -> None:
        """Queue a console command; raises :class:`InvalidLine`.  While the printer
        is halted the command is answered at once with a failed :class:`CommandDone`."""
        text = self._check(line)
        if self._state is _State.HALTED:
            self._events.append(CommandDone(text, False, (_HALTED,)))
            return
        self._pending.append(_Line(text, _Kind.COMMAND))

    def finish_motion(self) -> None:
        """Queue ``M400``: Marlin answers it only once its planner is empty
        (``planner.synchronize()``), printing ``busy:`` while it waits."""
        if self._state is not _State.HALTED:
            self._pending.append(_Line("M400", _Kind.DRAIN))

    def wants_lines(self) -> bool:
        return self._state is not _State.HALTED and len(self._pending) < _WANT_DEPTH

    def emergency_stop(self) -> None:
        self._out = bytearray(b"M112\n")
        self._halt(self._events)

    def discard_queued(self) -> int:
        kept = deque(line for line in self._pending if line.kind == _Kind.COMMAND)
        dropped = sum(1 for line in self._pending if line.kind == _Kind.JOB)
        self._pending = kept
        return dropped

    @property
    def ready(self) -> bool:
        return self._state is _State.READY

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
        self._history: dict[int, _Line] = {}
        self._in_flight: list[_Line] = []
        self._flight_bytes = 0
        self._next_n = 0  # number the next new line gets
        self._send_n = 0  # number the next line on the wire has (< _next_n: re-sending)
        self._acked_n = -1  # highest number taken as executed
        self._proven_n = -1  # highest number an ``ok N`` acknowledged
        self._advanced = False
        self._slots = 1
        self._recover_n = -1  # line re-sent alone after a resend request
        self._allowance = 0  # identical requests still expected from lines in transit
        self._after_line_error = False  # the next bare ``ok`` ends an Error/Resend triple
        self._paired_resend = -1  # ``Resend`` expected right after an ``Error``
        self._after_unknown = False  # the last line was "echo:Unknown command"
        self._probe_n = -1  # the M105 sent after the last timeout, while unanswered
        self._resend_due = -1.0  # probe then if the Resend of a line error does not come
        self._probe_refused = False  # a line error without number came after the probe
        self._timing = ProbeTiming()  # what the link has shown: when to probe
        self._planner_free = -1  # P of the last ok N P B
        self._planner_size = 0  # the largest P seen: the planner when empty
        self._last_progress = now
        self._auto_report = False
        self._next_poll = now
        self._version = ""
        self._capabilities: dict[str, str] = {}
        self._name_seen = False
        self._identify_tries = 0
        self._identify_since = now
        self._system.clear()

    def _enter(self, state: _State, now: float, events: list[ProtocolEvent]) -> None:
        """The one place the state changes; entry actions per state."""
        self._state = state
        match state:
            case _State.SYNC:
                self._reset_link(now)
                line = _Line("M110 N0", _Kind.SYNC)
                line.n = 0
                line.wire = b"\n" + format_line(0, line.text)  # ends any partial line
                self._history[0] = line
                self._next_n = 1
            case _State.IDENTIFY:
                self._identify_tries += 1
                if self._identify_tries == 1:
                    self._identify_since = now
                self._system.append(_Line("M115", _Kind.IDENTIFY))
            case _State.CONFIGURE:
                seconds = max(1, round(self._interval))
                self._system.append(_Line(f"M155 S{seconds}", _Kind.CONFIGURE))
            case _State.READY:
                self._next_poll = now
                events.append(ControllerReady("marlin", self._version, dict(self._capabilities)))
            case _State.HALTED | _State.NEW:
                pass

    def _step_handshake(self, line: _Line, now: float, events: list[ProtocolEvent]) -> None:
        """A handshake line was acknowledged: move on."""
        match (self._state, line.kind):
            case (_State.SYNC, _Kind.SYNC):
                self._enter(_State.IDENTIFY, now, events)
            case (_State.IDENTIFY, _Kind.IDENTIFY) if not self._name_seen:
                if (
                    self._identify_tries < 3
                    and now - self._identify_since < self._handshake_timeout
                ):
                    self._enter(_State.IDENTIFY, now, events)  # FIRMWARE_NAME was lost
                else:
                    # Not a Marlin that says its name: drive it conservatively.
                    events.append(
                        FirmwareMessage(
                            "info",
                            "the firmware did not report FIRMWARE_NAME in M115; "
                            "streaming with conservative settings",
                        )
                    )
                    self._enter(_State.READY, now, events)
            case (_State.IDENTIFY, _Kind.IDENTIFY):
                self._auto_report = self._capabilities.get("AUTOREPORT_TEMP") == "1"
                next_state = _State.CONFIGURE if self._auto_report else _State.READY
                self._enter(next_state, now, events)
            case (_State.CONFIGURE, _Kind.CONFIGURE):
                self._enter(_State.READY, now, events)
            case _:
                pass

    def _halt(self, events: list[ProtocolEvent]) -> None:
        self._fail_lines(events)
        self._pending.clear()
        self._system.clear()
        self._in_flight = []
        self._flight_bytes = 0
        self._send_n = self._next_n
        self._recover_n = -1
        self._state = _State.HALTED

    def _restart(self, now: float, events: list[ProtocolEvent]) -> None:
        """Drop the job and run the handshake again (board reset or lost numbering)."""
        self._fail_lines(events)
        self._pending.clear()
        self._enter(_State.SYNC, now, events)

    def _fail_lines(self, events: list[ProtocolEvent]) -> None:
        """Answer every console command that will not run now."""
        lines = [*self._history.values(), *self._pending]
        for line in lines:
            if line.kind == _Kind.COMMAND and not line.done:
                line.done = True
                response = tuple(line.response or ())
                events.append(CommandDone(line.text, False, response))
        self._pending = deque(line for line in self._pending if line.kind != _Kind.COMMAND)

    # -- sending -----------------------------------------------------------------

    def _check(self, line: str) -> str:
        text = line.strip()
        if not text:
            raise InvalidLine("empty line")
        if not (text.isascii() and text.isprintable()) or any(c in text for c in ";\\*"):
            raise InvalidLine(
                f"{text!r}: strip comments first; Marlin cannot take ';', '\\', '*', "
                "control or non-ASCII characters in a numbered line"
            )
        number = self._next_n + len(self._pending) + _NUMBER_MARGIN
        if len(f"N{number} {text}*255") >= self._max_length:
            raise InvalidLine(
                f"{text[:40]!r}...: too long for Marlin's {self._max_length}-byte line buffer "
                "(MAX_CMD_SIZE); split it"
            )
        return text

    def _fill(self, now: float) -> None:
        """Put lines on the wire while the window allows."""
        state = self._state
        if state is _State.NEW or state is _State.HALTED:
            return
        flight = self._in_flight
        limit = self._slots if state is _State.READY else 1
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
                elif self._pending and state is _State.READY:
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
            elif line.kind != _Kind.SYNC:
                self._resends += 1
            if not flight:
                self._last_progress = now
            flight.append(line)
            self._flight_bytes += len(wire)
            self._send_n = n + 1
            self._out += wire

    def _queue_poll(self) -> None:
        if not any(line.kind == _Kind.POLL for line in self._system) and not any(
            line.kind == _Kind.POLL for line in self._in_flight
        ):
            self._system.append(_Line("M105", _Kind.POLL))

    def _probe(
        self,
        now: float,
        waited: float,
        events: list[ProtocolEvent],
        action: str = "sent N{n} M105 to find the line Marlin expects",
    ) -> None:
        """Nothing came back: send ``N<next> M105`` to learn where Marlin is."""
        last = self._history.get(self._next_n - 1)
        refused, self._probe_refused = self._probe_refused, False
        if refused and last is not None and last.kind == _Kind.POLL and last in self._in_flight:
            # The newest line is a probe Marlin refused: send it again rather than
            # spend a new number on each try (a long run of refused probes would
            # push the line Marlin wants out of the history).  After silence a
            # new number is needed: a copy of a probe Marlin took is dropped.
            n = last.n
            self._out += last.wire
        else:
            n = self._next_n
            line = _Line("M105", _Kind.POLL)
            line.n, line.wire = n, format_line(n, "M105")
            self._history[n] = line
            self._history.pop(n - self._history_size, None)
            self._next_n = n + 1
            if self._send_n == n:
                self._send_n = n + 1
            self._in_flight.append(line)
            self._flight_bytes += len(line.wire)
            self._out += line.wire
        self._probe_n = n
        self._timing.probes_out += 1
        self._allowance = 0
        self._after_line_error = False
        self._resend_due = -1.0
        self._last_progress = now
        events.append(CommunicationTimeout(waited, action.format(n=n)))

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
            if line.kind == _Kind.JOB:
                count += 1
                continue
            if count:
                self._acked += count
                events.append(LinesAcked(count, self._acked))
                count = 0
            if line.kind == _Kind.COMMAND:
                response = tuple(line.response or ())
                events.append(CommandDone(line.text, not line.failed, response))
            elif line.kind == _Kind.DRAIN:
                events.append(MotionFinished())
            else:
                self._step_handshake(line, now, events)
        if count:
            self._acked += count
            events.append(LinesAcked(count, self._acked))
        self._acked_n = n
        if self._send_n <= n:
            self._send_n = n + 1
        flight = self._in_flight
        if flight:
            kept = [line for line in flight if line.n > n]
            if len(kept) != len(flight):
                self._in_flight = kept
                self._flight_bytes = sum(len(line.wire) for line in kept)
        if 0 <= self._recover_n <= n:
            self._recover_n = -1
            self._allowance = 0
        if self._probe_n <= n:
            self._probe_n = -1

    def _on_bare_ok(self, after_error: bool, now: float, events: list[ProtocolEvent]) -> None:
        if after_error or self._advanced or not self._in_flight:
            return  # ends a resend triple; with ADVANCED_OK real acks carry P/B
        if self._state is _State.NEW or self._state is _State.HALTED:
            return
        # Only a line sent in sequence can be acknowledged: a probe sent past lines
        # still waiting to be re-sent cannot have been accepted.
        line = next((line for line in self._in_flight if line.n < self._send_n), None)
        if line is None:
            return
        if line.kind == _Kind.IDENTIFY and not self._name_seen:
            return  # M115 prints its name before its ok: this one is stray
        self._confirm(line.n, now, events)
        if (
            self._state is _State.READY
            and line.kind <= _Kind.COMMAND
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
        if self._state is _State.NEW or self._state is _State.HALTED:
            return
        if b >= 0 and p >= 0:
            self._advanced = True
            self._timing.planner_full = p == 0
            self._planner_free = p
            if p > self._planner_size:
                self._planner_size = p
            if b + 1 > self._slots:
                self._slots = min(b + 1, _MAX_SLOTS)
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
        if self._state is _State.NEW or self._state is _State.HALTED:
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

    # -- resend requests -----------------------------------------------------------

    def _on_resend(self, number: int, now: float, events: list[ProtocolEvent]) -> None:
        state = self._state
        if state is _State.NEW or state is _State.HALTED:
            return
        self._last_progress = now
        self._resend_due = -1.0
        if state is _State.SYNC:
            self._resend_sync(now)  # M110 skips the sequence check: just send it again
            return
        if number == self._recover_n and self._allowance > 0:
            self._allowance -= 1  # from a line that was in transit behind the bad one
            return
        if 0 <= number <= self._probe_n:
            self._probe_n = -1  # the probe was answered (refused): it goes again in turn
            self._timing.probes_out = 0
        if number > self._next_n:
            self._lost_sync(
                f"Marlin expects line {number} but only {self._next_n - 1} were sent", now, events
            )
            return
        if number < self._next_n and number not in self._history:
            self._lost_sync(
                f"Marlin asked for line {number}, no longer in the history", now, events
            )
            return
        if number <= self._proven_n or number < self._acked_n - self._slots - 2:
            self._lost_sync(
                f"Marlin asked for line {number} again after acknowledging it: "
                "the board probably restarted",
                now,
                events,
            )
            return
        if not self._advanced and number - 1 > self._acked_n:
            # Marlin accepted everything before ``number``; a plain ok cannot say
            # which line it answers, so waiting for those would stall ping-pong.
            self._confirm(number - 1, now, events)
        if number == self._next_n:
            self._send_n = number  # everything sent was accepted
            return
        # Lines below ``number`` are in Marlin's queue, out of its RX buffer; their
        # ``ok N`` (or any later one) acknowledges them.  Lines from ``number`` on
        # are refused or will be.  Neither holds a place in the window any more.
        voids = sum(1 for line in self._in_flight if line.n >= number)
        self._in_flight = []
        self._flight_bytes = 0
        self._allowance = max(0, voids - 1)
        self._recover_n = number
        self._send_n = number
        if number <= self._acked_n:
            self._acked_n = number - 1  # a plain ok was taken for a line Marlin refused
        events.append(ResendRequested(number))

    def _lost_sync(self, message: str, now: float, events: list[ProtocolEvent]) -> None:
        self._errors += 1
        events.append(FirmwareError(message + "; the job was stopped", fatal=True))
        self._restart(now, events)

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
                self._version, info = parse_firmware_name(text)
                self._capabilities.update(info)
                self._name_seen = True
                self._note_output(text)
            case Reply.CAP:
                key, value = parse_cap(text)
                self._capabilities[key] = value
                self._note_output(text)
            case Reply.INFO:
                events.append(FirmwareMessage("info", text[2:].strip()))
                self._note_output(text)
            case _:
                events.append(UnparsedLine(text))
                self._note_output(text)

    def _on_error(self, text: str, now: float, events: list[ProtocolEvent]) -> None:
        body = (text[6:] if text.startswith("Error:") else text[2:]).strip()
        refused, last = line_error(body)
        if refused:
            self._after_line_error = True
            if last is not None:
                self._paired_resend = last + 1
                self._on_resend(last + 1, now, events)
            elif self._state in _NUMBERED and (self._recover_n < 0 or self._probe_n >= 0):
                # No line number: its Resend names the line; if that is lost, a
                # probe makes Marlin name it again (module docstring).  During a
                # recovery such errors come from lines that were in transit,
                # unless a probe is out: then it is the probe's refusal, and the
                # board is plainly not busy, so the next probe need not wait.
                self._resend_due = now + _RESEND_WAIT
                self._timing.probes_out = 0
                self._probe_refused = self._probe_n >= 0
            return
        fatal = is_fatal(text, body)
        jobs = (line.job_index for line in self._in_flight if line.kind == _Kind.JOB)
        job_line = next(jobs, None)
        self._errors += 1
        self._note_output(text, failed=True)
        events.append(FirmwareError(body, fatal=fatal, job_line=job_line))
        if fatal and self._state is not _State.NEW:
            self._halt(events)

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
        if state is _State.NEW:
            return
        if state is _State.SYNC:
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
