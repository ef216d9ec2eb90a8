"""The GRBL 1.1 host protocol, sans-I/O: bytes in, bytes and events out.

References are to gnea/grbl ``doc/markdown/interface.md`` ("interface doc") and
``doc/markdown/commands.md`` of GRBL 1.1.

Streaming uses **character counting** (interface doc, "Streaming Protocol:
Character-Counting"): the host keeps the sum of the lengths, newline included,
of the lines it sent that GRBL has not answered with ``ok`` or ``error:N``, and
sends the next line as soon as that sum plus the line's length stays within
GRBL's serial RX buffer (``rx_buffer_size``: 127 of GRBL 1.1's 128 bytes, as the
doc's ``stream.py`` does).  The RX buffer then never runs dry between lines,
which keeps the planner full on fast laser jobs made of tiny segments.

Real-time commands (``?``, ``!``, ``~``, Ctrl-X and the 0x80+ overrides) are
"picked off" by GRBL's serial interrupt and never enter the RX buffer
(interface doc, "Real-Time Control Commands"), so they are sent ahead of queued
lines and never counted.  Lines that contain one of those characters, or
non-ASCII bytes (which GRBL would read as overrides), are refused locally.
EEPROM writes (``$x=``, ``$N0=``, ``G10 L2``, ``G28.1``...) are sent alone, with
nothing else in flight: GRBL's AVR stops its serial interrupt while writing
EEPROM (interface doc, "EEPROM Issues").

**Lost replies.**  GRBL has no checksums or line numbers.  If an ``ok`` is lost
or garbled on the wire the host keeps counting that line's bytes as occupying
the RX buffer forever; after a few such losses it stops sending altogether.
The core recovers by reconciling: it treats the unanswered lines as
acknowledged once GRBL proves it has consumed them.  GRBL sends ``ok`` when a
line has left the RX buffer and been planned (interface doc, "Streaming
Protocol: Simple Send-Response"), and bytes on the wire stay in order, so:

* a status report answering a ``?`` that was written *after* a line shows
  where that line is.  If the report says ``Idle`` and its ``Bf:`` field shows
  the RX buffer and the planner completely free, every line written before
  that ``?`` has been read and executed.  GRBL may build the report just after
  reading a line and before printing its ``ok``, so one line can still be
  executing: the core waits for a second such report (at least 0.1 s
  later, and longer than any ``G4`` dwell among those lines,
  since a dwell holds its ``ok`` back while the machine sits ``Idle``) with no
  ``ok``/``error`` in between, then acknowledges the lines written before the
  first report's ``?``.
* without ``Bf:`` (``$10`` does not ask for it) the same conclusion needs time
  instead: ``Idle`` for ``response_timeout`` with no reply at all means GRBL has
  nothing left to read, since it reads its RX buffer whenever it is not in a
  hold (``protocol_main_loop``), so every line written before the first report
  was consumed.

Each reconciliation is reported as a :class:`CommunicationTimeout`.  ``Hold`` or
``Door`` never qualify: GRBL stops reading lines while suspended.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from gateway.machine.grbl_codes import (
    FEED_OVERRIDES,
    RAPID_OVERRIDES,
    SPINDLE_OVERRIDES,
    OverrideStep,
    RapidLevel,
    Realtime,
    alarm_message,
    error_message,
    parse_banner,
    parse_status_report,
)
from gateway.machine.protocol import (
    Alarm,
    CommandDone,
    CommunicationTimeout,
    ControllerProtocol,
    ControllerReady,
    FirmwareError,
    FirmwareMessage,
    FirmwareReset,
    GrblStatus,
    LinesAcked,
    MotionFinished,
    ProtocolEvent,
    UnparsedLine,
)


class LinkState(Enum):
    """Where the core is in talking to GRBL."""

    CLOSED = "closed"  # start() not called yet
    RESETTING = "resetting"  # Ctrl-X sent, waiting for the welcome banner
    CONFIRMING = "confirming"  # banner seen, waiting for a status report (see _on_status)
    READY = "ready"  # lines flow


_TRANSITIONS: Final[dict[LinkState, frozenset[LinkState]]] = {
    LinkState.CLOSED: frozenset({LinkState.RESETTING}),
    LinkState.RESETTING: frozenset({LinkState.RESETTING, LinkState.CONFIRMING}),
    LinkState.CONFIRMING: frozenset({LinkState.RESETTING, LinkState.READY}),
    LinkState.READY: frozenset({LinkState.RESETTING}),
}

# Characters GRBL acts on the moment they arrive; a line must not carry them.
_REALTIME_CHARS: Final = b"?!~\x18\r\n"
_BLANKS: Final = bytes(range(0x21))  # GRBL's pre-parser drops c <= ' ' (protocol.c)
# G4 dwell, and the EEPROM writes G10 L2/L20, G28.1, G30.1 (interface doc, "EEPROM Issues").
_SPECIAL_WORD: Final = re.compile(r"[Gg]\s*0*(4|10|28\.1|30\.1)(?![\d.])")
_P_WORD: Final = re.compile(r"[Pp]\s*(\d+\.?\d*|\.\d+)")
_DRAIN_SETTLE: Final = 0.1  # seconds between the two reports that prove a drain
_DWELL_MARGIN: Final = 1.0
_MAX_PARTIAL: Final = 4096  # bytes without a newline before they are called garbage


class _Line:
    """A job line or console command on its way to GRBL."""

    __slots__ = ("data", "dwell", "exclusive", "job_line", "response", "seq", "text")

    def __init__(self, text: str, data: bytes, job_line: int, response: list[str] | None) -> None:
        self.text = text
        self.data = data  # ASCII with the trailing newline: what the RX buffer holds
        self.job_line = job_line  # 1-based; 0 for a command
        self.response = response  # lines collected for a command; None for a job line
        self.dwell = 0.0  # G4 P seconds: the ok comes only after the dwell
        self.exclusive = False  # EEPROM write: sent with nothing else in flight
        self.seq = -1  # order in which it was written


@dataclass
class _Drain:
    """Consecutive status reports showing GRBL idle with empty buffers, no reply between."""

    since: float
    mark: int  # lines written before the first report's '?'
    without_bf: bool


class GrblProtocol(ControllerProtocol):
    """Streams G-code to GRBL 1.1 with character counting.

    Keyword arguments:

    ``rx_buffer_size``
        Bytes the host lets occupy GRBL's serial RX buffer (127 for GRBL 1.1's
        128-byte buffer; larger for grblHAL).
    ``status_interval``
        Seconds between ``?`` status polls (the doc recommends at most 5 Hz).
    ``response_timeout``
        Silence, with lines in flight, after which a :class:`CommunicationTimeout`
        is reported; without ``Bf:`` also how long GRBL must sit ``Idle`` before
        unanswered lines are reconciled.
    ``max_line_length``
        GRBL's line buffer (``LINE_BUFFER_SIZE``, 80): a line with more than
        ``max_line_length - 1`` characters after GRBL drops blanks is refused
        locally, as GRBL would answer ``error:11``.
    ``handshake_timeout``
        Seconds to wait for the welcome banner before sending Ctrl-X again.
    ``queue_length``
        Lines the core takes in before :meth:`wants_lines` turns false.

    Job lines are numbered from 1 in :meth:`send_line` order since the core was
    created (``FirmwareError.job_line``); :attr:`acked` counts those answered
    ``ok`` or ``error:N`` or refused locally, so progress reaches the end even
    when GRBL rejects a line.  ``ALARM:N`` gives an :class:`Alarm` only.  A
    banner after the handshake that the core did not cause gives
    :class:`FirmwareReset` and drops the queued job lines with those in flight:
    GRBL has forgotten its modal state, so the job must not carry on.  After
    :meth:`emergency_stop` the core is not :attr:`ready` until GRBL's banner and
    a status report arrive, then :class:`ControllerReady` is sent again.
    """

    firmware = "grbl"

    def __init__(
        self,
        *,
        rx_buffer_size: int = 127,
        status_interval: float = 0.2,
        response_timeout: float = 10.0,
        max_line_length: int = 80,
        handshake_timeout: float = 2.5,
        queue_length: int = 32,
    ) -> None:
        if rx_buffer_size < 2 or max_line_length < 2 or queue_length < 1:
            raise ValueError("rx_buffer_size, max_line_length and queue_length are too small")
        if min(status_interval, response_timeout, handshake_timeout) <= 0:
            raise ValueError("status_interval, response_timeout and handshake_timeout must be > 0")
        self._rx_size = rx_buffer_size
        self._interval = status_interval
        self._timeout = response_timeout
        self._max_line = max_line_length
        self._handshake_timeout = handshake_timeout
        self._queue_length = queue_length

        self._state = LinkState.CLOSED
        self._queue: deque[_Line] = deque()
        self._sent: deque[_Line] = deque()  # in flight, oldest first
        self._rx_used = 0
        self._sent_seq = 0
        self._job_lines = 0
        self._acked = 0
        self._errors = 0
        self._realtime = bytearray()
        self._poll_wanted = False
        # (time written, lines written before, every line answered when written)
        self._polls: deque[tuple[float, int, bool]] = deque()
        self._finishing = False  # finish_motion() asked; waiting for an Idle report
        self._next_poll = 0.0
        self._events: list[ProtocolEvent] = []  # raised outside receive()/tick()
        self._partial = b""
        self._last_rx = 0.0
        self._last_reply = 0.0
        self._waiting_since = 0.0
        self._silence_reported = False
        self._reset_at: float | None = None
        self._confirm_since = 0.0
        self._drain: _Drain | None = None
        self._reset_expected = False
        self._banner = ""
        self._version = ""
        self._wco: tuple[float, ...] | None = None
        self._overrides: tuple[int, int, int] | None = None
        self._rx_capacity = 0
        self._planner_capacity = 0
        self._last_status: GrblStatus | None = None

    # -- state -----------------------------------------------------------------

    def _enter(self, state: LinkState) -> None:
        if state not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"GRBL link cannot go from {self._state.value} to {state.value}")
        self._state = state

    def _soft_reset(self, now: float | None) -> None:
        """Ctrl-X: GRBL flushes its buffers and prints the banner (commands.md)."""
        if self._state is not LinkState.RESETTING:
            self._enter(LinkState.RESETTING)
        self._realtime = bytearray((Realtime.SOFT_RESET,))
        self._poll_wanted = False
        self._polls.clear()
        self._reset_at = now
        self._drain = None
        self._finishing = False
        self._reset_expected = False

    # -- ControllerProtocol ----------------------------------------------------

    def start(self, now: float) -> None:
        self._last_rx = now
        self._soft_reset(now)

    def send_line(self, line: str) -> None:
        self._job_lines += 1
        self._enqueue(line, self._job_lines, None)

    def send_command(self, line: str) -> None:
        self._enqueue(line, 0, [])

    def _enqueue(self, text: str, job_line: int, response: list[str] | None) -> None:
        problem = ""
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raw = b""
            problem = "contains non-ASCII characters, which GRBL reads as override commands"
        if not problem and len(raw.translate(None, _REALTIME_CHARS)) != len(raw):
            problem = "contains ? ! ~ or a line break, which GRBL acts on as real-time commands"
        if not problem and len(raw) >= self._max_line:
            if len(raw.translate(None, _BLANKS)) >= self._max_line:
                problem = f"is longer than GRBL's {self._max_line - 1}-character line buffer"
            elif len(raw) + 1 > self._rx_size:
                problem = f"does not fit GRBL's {self._rx_size}-byte receive buffer"
        if problem:
            self._reject(text, job_line, response, problem)
            return
        entry = _Line(text, raw + b"\n", job_line, response)
        if response is not None and text[:1] == "$":
            # $x=, $Nx=, $I=, $RST= write EEPROM; $J= is a jog, not a write.
            entry.exclusive = "=" in text and not text.upper().startswith("$J=")
        for m in _SPECIAL_WORD.finditer(text):
            if m.group(1) == "4":
                p = _P_WORD.search(text)
                entry.dwell = float(p.group(1)) if p else 0.0
            else:
                entry.exclusive = True
        self._queue.append(entry)

    def _reject(self, text: str, job_line: int, response: list[str] | None, problem: str) -> None:
        self._errors += 1
        if response is not None:
            self._events.append(CommandDone(text, False, (f"not sent: the command {problem}",)))
            return
        self._acked += 1
        code = 11 if "line buffer" in problem else None
        self._events.append(
            FirmwareError(f"Line {job_line} not sent: it {problem}", code, False, job_line)
        )
        self._events.append(LinesAcked(1, self._acked))

    def finish_motion(self) -> None:
        """Poll ``?`` until a report to a query written after the last ``ok`` says ``Idle``."""
        self._finishing = True
        self._poll_wanted = True

    def wants_lines(self) -> bool:
        return len(self._queue) < self._queue_length

    def discard_queued(self) -> int:
        kept = deque(line for line in self._queue if line.response is not None)
        dropped = len(self._queue) - len(kept)
        self._queue = kept
        return dropped

    def emergency_stop(self) -> None:
        """Soft reset (Ctrl-X) at the front of the output; every queued and
        in-flight line is dropped (GRBL flushes its buffers on reset)."""
        why = "emergency stop: GRBL was reset"
        self._drop_in_flight(why)
        for line in self._queue:
            if line.response is not None:
                self._events.append(CommandDone(line.text, False, (why,)))
        self._queue.clear()
        if self._state is LinkState.CLOSED:
            self._realtime = bytearray((Realtime.SOFT_RESET,))
        else:
            self._soft_reset(None)

    def _drop_in_flight(self, why: str) -> None:
        """Forget the lines GRBL flushed; commands among them are answered as failed."""
        for line in self._sent:
            if line.response is not None:
                self._events.append(CommandDone(line.text, False, (*line.response, why)))
        self._sent.clear()
        self._rx_used = 0
        self._drain = None

    def data_to_send(self, now: float) -> bytes:
        out = self._realtime
        self._realtime = bytearray()
        if self._poll_wanted and self._state in (LinkState.CONFIRMING, LinkState.READY):
            self._poll_wanted = False
            out.append(Realtime.STATUS_REPORT)
            answered = not self._sent and not self._queue
            self._polls.append((now, self._sent_seq, answered))
        if self._state is LinkState.READY and self._queue:
            self._fill(out, now)
        return bytes(out)

    def _fill(self, out: bytearray, now: float) -> None:
        queue, sent = self._queue, self._sent
        if not sent:
            self._waiting_since = now
        elif sent[-1].exclusive:
            return
        room = self._rx_size - self._rx_used
        seq = self._sent_seq
        while queue:
            line = queue[0]
            size = len(line.data)
            if size > room or (line.exclusive and sent):
                break
            queue.popleft()
            line.seq = seq
            seq += 1
            sent.append(line)
            room -= size
            out += line.data
            if line.exclusive:
                break
        self._sent_seq = seq
        self._rx_used = self._rx_size - room

    # -- replies ---------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[ProtocolEvent]:
        events = self._take_events()
        if not data:
            return events
        self._last_rx = now
        self._silence_reported = False
        lines = (self._partial + data).split(b"\n") if self._partial else data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > _MAX_PARTIAL:
            events.append(UnparsedLine(self._partial.decode("utf-8", "replace")))
            self._partial = b""
        acks = 0
        sent = self._sent
        for raw in lines:
            raw = raw.strip()
            if raw == b"ok" and sent:  # the hot path: one per job line
                line = sent.popleft()
                self._rx_used -= len(line.data)
                self._last_reply = now
                self._drain = None
                if line.response is None:
                    acks += 1
                    continue
                self._flush_acks(events, acks)
                acks = 0
                events.append(CommandDone(line.text, True, tuple(line.response)))
            elif raw:
                self._flush_acks(events, acks)
                acks = 0
                self._on_line(raw, now, events)
        self._flush_acks(events, acks)
        return events

    def _flush_acks(self, events: list[ProtocolEvent], count: int) -> None:
        if count:
            self._acked += count
            events.append(LinesAcked(count, self._acked))

    def _take_events(self) -> list[ProtocolEvent]:
        events, self._events = self._events, []
        return events

    def _on_line(self, raw: bytes, now: float, events: list[ProtocolEvent]) -> None:
        if raw.startswith(b"ok") and len(raw) <= 3:
            self._on_reply(None, now, events)  # "ok" with its '\r' garbled
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            events.append(UnparsedLine(raw.decode("utf-8", "replace")))
            return
        first = text[0]
        if first == "e" and text.startswith("error:"):
            self._on_reply(text[6:].strip(), now, events)
        elif first == "<":
            self._on_status(text, now, events)
        elif first == "[":
            self._on_feedback(text, events)
        elif first == "$" and "=" in text:
            self._collect(text, "feedback", events)
        elif first == ">":
            self._on_startup_line(text, events)
        elif first == "A" and text.startswith("ALARM:"):
            code = text[6:].strip()
            number = int(code) if code.isdigit() else None
            # Alarm alone, not also a fatal FirmwareError: the adapter would report it twice.
            events.append(Alarm(number if number is not None else 0, alarm_message(number)))
        elif (version := parse_banner(text)) is not None:
            self._on_banner(text, version, events)
        else:
            events.append(UnparsedLine(text))

    def _on_reply(self, error: str | None, now: float, events: list[ProtocolEvent]) -> None:
        """``ok`` (``error`` None) or ``error:<error>`` for the oldest line in flight."""
        code = int(error) if error is not None and error.isdigit() else None
        meaning = f"error:{error} {error_message(code)}"
        if not self._sent:
            if self._state is LinkState.READY:
                if error is not None:
                    self._errors += 1
                    events.append(FirmwareError(meaning, code))
                else:
                    events.append(UnparsedLine("ok (no line was waiting for it)"))
            return  # stale replies to lines flushed by a reset
        line = self._sent.popleft()
        self._rx_used -= len(line.data)
        self._last_reply = now
        self._drain = None
        if error is None:
            if line.response is None:
                self._flush_acks(events, 1)
            else:
                events.append(CommandDone(line.text, True, tuple(line.response)))
            return
        self._errors += 1
        if line.response is None:
            message = f"Line {line.job_line} rejected: {meaning} ({line.text})"
            events.append(FirmwareError(message, code, False, line.job_line))
            self._flush_acks(events, 1)
        else:
            events.append(CommandDone(line.text, False, (*line.response, meaning)))

    def _collect(
        self, text: str, kind: Literal["feedback", "msg"], events: list[ProtocolEvent]
    ) -> None:
        """Output printed before a command's ``ok`` belongs to that command."""
        head = self._sent[0] if self._sent else None
        if head is not None and head.response is not None:
            head.response.append(text)
            if kind == "feedback":
                return
        events.append(FirmwareMessage(kind, text))

    def _on_feedback(self, text: str, events: list[ProtocolEvent]) -> None:
        inner = text[1:-1] if text.endswith("]") else text[1:]
        tag, _, body = inner.partition(":")
        if tag == "MSG":
            if body in ("Disabled", "Restoring defaults"):
                self._reset_expected = True  # $C off and $RST= reset GRBL (commands.md)
            self._collect(body, "msg", events)
            return
        if tag == "OPT":
            opts = body.split(",")
            if len(opts) >= 3 and opts[1].isdigit() and opts[2].isdigit():
                self._planner_capacity = max(self._planner_capacity, int(opts[1]))
                self._rx_capacity = max(self._rx_capacity, int(opts[2]))
        self._collect(inner, "feedback", events)

    def _on_startup_line(self, text: str, events: list[ProtocolEvent]) -> None:
        """``>G54G20:ok`` / ``>G54G20:error:N``: GRBL ran a stored startup line."""
        body, sep, code = text[1:].rpartition(":error:")
        if sep:
            number = int(code) if code.isdigit() else None
            events.append(
                FirmwareError(
                    f"Startup line {body!r} failed: error:{code} {error_message(number)}", number
                )
            )
        else:
            events.append(
                FirmwareMessage("info", f"startup line ran: {text[1:].removesuffix(':ok')}")
            )

    def _on_banner(self, text: str, version: str, events: list[ProtocolEvent]) -> None:
        self._banner, self._version = text, version
        self._wco = self._overrides = None  # GRBL resends both after a reset
        self._drain = None
        if self._state is LinkState.RESETTING:
            # This banner may be a power-on banner printed before our Ctrl-X
            # arrived: only a report to a '?' written after it proves the reset done.
            self._enter(LinkState.CONFIRMING)
            self._confirm_since = self._last_rx
            self._poll_wanted = True
            self._next_poll = self._last_rx + self._interval
        elif self._state is LinkState.READY:
            if self._reset_expected:
                self._reset_expected = False
                self._drop_in_flight("GRBL reset itself after $C or $RST=")
                events.extend(self._take_events())
                return
            lost = sum(1 for line in self._sent if line.response is None)
            self._drop_in_flight("GRBL reset")
            dropped = self.discard_queued()  # the job cannot go on; console commands can
            events.extend(self._take_events())
            events.append(FirmwareReset(text))
            events.append(
                FirmwareMessage(
                    "info",
                    f"GRBL restarted: {lost} line(s) in flight lost, {dropped} queued line(s) "
                    "dropped; the job cannot continue",
                )
            )

    def _on_status(self, text: str, now: float, events: list[ProtocolEvent]) -> None:
        status = parse_status_report(text)
        if status is None:
            events.append(UnparsedLine(text))
            return
        status = self._complete(status)
        self._last_status = status
        while self._polls and now - self._polls[0][0] > self._timeout:
            self._polls.popleft()
        poll = self._polls.popleft() if self._polls else None
        mark = poll[1] if poll is not None else None
        events.append(status)
        if self._finishing and poll is not None and poll[2] and self._stopped(status):
            # GRBL starts the cycle before it prints the ok of a line it planned
            # (protocol_auto_cycle_start), so Idle after the last ok means the
            # planner ran dry.
            self._finishing = False
            events.append(MotionFinished())
        if self._state is LinkState.CONFIRMING and mark is not None:
            self._enter(LinkState.READY)
            self._next_poll = now + self._interval
            caps = {"banner": self._banner, "state": status.state}
            if status.planner_free is not None and status.rx_free is not None:
                caps["planner_blocks"] = str(status.planner_free)
                caps["rx_buffer"] = str(status.rx_free)
            events.append(ControllerReady(self.firmware, self._version, caps))
        elif self._state is LinkState.READY:
            self._check_drained(status, mark, now, events)

    def _stopped(self, s: GrblStatus) -> bool:
        """``Idle`` with no planner block left (when ``Bf:`` says so)."""
        if s.state != "Idle":
            return False
        return s.planner_free is None or s.planner_free >= self._planner_capacity

    def _complete(self, s: GrblStatus) -> GrblStatus:
        """Add the last known WCO/Ov and the position GRBL did not send (WPos = MPos - WCO)."""
        if s.wco is not None:
            self._wco = s.wco
        if s.overrides is not None:
            self._overrides = s.overrides
        if s.planner_free is not None and s.rx_free is not None:
            self._planner_capacity = max(self._planner_capacity, s.planner_free)
            self._rx_capacity = max(self._rx_capacity, s.rx_free)
        wco, mpos, wpos = self._wco, s.mpos, s.wpos
        if wco is not None and mpos is not None and wpos is None and len(wco) == len(mpos):
            wpos = tuple(round(m - o, 4) for m, o in zip(mpos, wco, strict=True))
        elif wco is not None and wpos is not None and mpos is None and len(wco) == len(wpos):
            mpos = tuple(round(w + o, 4) for w, o in zip(wpos, wco, strict=True))
        return GrblStatus(
            s.state, s.substate, mpos, wpos, wco, s.feed, s.spindle, s.planner_free,
            s.rx_free, s.line_number, self._overrides, s.pins,
        )  # fmt: skip

    # -- reconciliation (see the module docstring) -----------------------------

    def _check_drained(
        self, s: GrblStatus, mark: int | None, now: float, events: list[ProtocolEvent]
    ) -> None:
        drained = s.state == "Idle" and (
            s.rx_free is None
            or (
                s.planner_free is not None
                and s.planner_free > 0
                and s.rx_free >= max(self._rx_capacity, self._rx_size)
                and s.planner_free >= self._planner_capacity
            )
        )
        if not drained or not self._sent:
            self._drain = None
            return
        if mark is None:
            return  # an unsolicited report proves nothing about our lines
        drain = self._drain
        if drain is None or self._sent[0].seq >= drain.mark:
            self._drain = _Drain(now, mark, s.rx_free is None)
            return
        # A second qualifying report: the proof needs only time now.
        drain.without_bf |= s.rx_free is None
        lines = [line for line in self._sent if line.seq < drain.mark]
        if drain.without_bf:
            wait = self._timeout
        else:
            dwell = max(line.dwell for line in lines)
            wait = max(_DRAIN_SETTLE, dwell + _DWELL_MARGIN if dwell else 0.0)
        if now - drain.since < wait:
            return
        self._drain = None
        acks = 0
        for line in lines:
            self._sent.popleft()
            self._rx_used -= len(line.data)
            if line.response is None:
                acks += 1
            else:
                events.append(CommandDone(line.text, False, (*line.response, "reply lost")))
        self._flush_acks(events, acks)
        proof = "RX buffer and planner empty" if not drain.without_bf else "no reply"
        events.append(
            CommunicationTimeout(
                now - max(self._last_reply, self._waiting_since),
                f"{len(lines)} line(s) treated as acknowledged: GRBL is Idle with {proof}, "
                "so it consumed them and their 'ok' was lost on the serial line",
            )
        )

    # -- time ------------------------------------------------------------------

    def tick(self, now: float) -> list[ProtocolEvent]:
        events = self._take_events()
        state = self._state
        if state is LinkState.RESETTING:
            if self._reset_at is None:
                self._reset_at = now
            elif now - self._reset_at >= self._handshake_timeout:
                events.append(
                    CommunicationTimeout(
                        now - self._reset_at,
                        "no GRBL welcome banner; sent soft reset (Ctrl-X) again: check the "
                        "port, the baud rate (115200) and the controller's power",
                    )
                )
                self._soft_reset(now)
        elif state is LinkState.CONFIRMING:
            if now - self._confirm_since >= self._handshake_timeout:
                events.append(
                    CommunicationTimeout(
                        now - self._confirm_since,
                        "GRBL printed its banner but answers no status query; sent Ctrl-X again",
                    )
                )
                self._soft_reset(now)
            elif now >= self._next_poll:
                self._poll(now)
        elif state is LinkState.READY:
            if now >= self._next_poll:
                self._poll(now)
            silent = now - max(self._last_rx, self._waiting_since)
            if self._sent and not self._silence_reported and silent >= self._timeout:
                self._silence_reported = True
                events.append(
                    CommunicationTimeout(
                        silent,
                        f"GRBL has sent nothing with {len(self._sent)} line(s) in flight; "
                        "still polling with '?': check the USB cable and the controller",
                    )
                )
        return events

    def _poll(self, now: float) -> None:
        self._poll_wanted = True
        self._next_poll = now + self._interval

    # -- real-time commands ----------------------------------------------------

    def realtime(self, command: Realtime) -> None:
        """Send one real-time byte ahead of every queued line (never counted)."""
        if command is Realtime.SOFT_RESET:
            self.emergency_stop()
        elif command is Realtime.STATUS_REPORT:
            self._poll_wanted = True
        else:
            self._realtime.append(command)

    def feed_hold(self) -> None:
        """``!``: decelerate to a stop and hold (state ``Hold:0`` when stopped)."""
        self.realtime(Realtime.FEED_HOLD)

    def cycle_start(self) -> None:
        """``~``: resume from a feed hold, a closed safety door or ``M0``."""
        self.realtime(Realtime.CYCLE_START)

    def status_query(self) -> None:
        """``?``: ask for a status report now (polling also happens from :meth:`tick`)."""
        self.realtime(Realtime.STATUS_REPORT)

    def feed_override(self, kind: OverrideStep) -> None:
        """Feed override: back to 100 % or change by +-10 % / +-1 % (10-200 %)."""
        self.realtime(FEED_OVERRIDES[kind])

    def spindle_override(self, kind: OverrideStep) -> None:
        """Spindle (laser power) override: back to 100 % or change by +-10 % / +-1 %."""
        self.realtime(SPINDLE_OVERRIDES[kind])

    def rapid_override(self, kind: RapidLevel) -> None:
        """Rapid override: 100 %, 50 % or 25 % of the G0 rate."""
        self.realtime(RAPID_OVERRIDES[kind])

    # -- properties ------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._state is LinkState.READY

    @property
    def link_state(self) -> LinkState:
        return self._state

    @property
    def version(self) -> str:
        """``"Grbl 1.1h"`` from the last banner; "" before one arrived."""
        return self._version

    @property
    def last_status(self) -> GrblStatus | None:
        return self._last_status

    @property
    def bytes_in_flight(self) -> int:
        return self._rx_used

    @property
    def planned(self) -> int | None:
        s = self._last_status
        if s is None or s.planner_free is None or not self._planner_capacity:
            return None
        return max(0, self._planner_capacity - s.planner_free)

    @property
    def rx_used(self) -> int:
        """Bytes the host counts as sitting in GRBL's RX buffer (never > rx_buffer_size)."""
        return self._rx_used

    @property
    def acked(self) -> int:
        """Job lines answered (``ok`` or ``error:N``) or refused locally."""
        return self._acked

    @property
    def in_flight(self) -> int:
        return len(self._sent)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def resends(self) -> int:
        return 0

    @property
    def errors(self) -> int:
        """``error:N`` replies (job lines and commands) plus lines refused locally."""
        return self._errors
