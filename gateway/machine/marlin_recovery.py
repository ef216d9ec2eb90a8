"""How the Marlin core recovers: resend requests, line errors, lost replies.

Pure, no clock: the methods of :class:`LinkRecovery` are part of
:class:`~gateway.machine.marlin.MarlinProtocol` (its base class), split out so
the rules below sit next to the code that keeps them.  Lines, window and
history are the core's (:mod:`gateway.machine.marlin_lines`).

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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.machine.marlin_lines import NUMBERED, Kind, Line, State
from gateway.machine.marlin_probe import ProbeTiming
from gateway.machine.marlin_wire import format_line, is_fatal, line_error
from gateway.machine.protocol import (
    CommunicationTimeout,
    FirmwareError,
    ProtocolEvent,
    ResendRequested,
)

__all__ = ["LinkRecovery"]

_RESEND_WAIT = 0.25  # seconds a line error without a line number waits for its Resend


class LinkRecovery:
    """Resend requests, line errors and probes after silence, for the Marlin core.

    The attributes declared here are the core's line window and counters, set
    by :meth:`MarlinProtocol._reset_link
    <gateway.machine.marlin.MarlinProtocol._reset_link>` and described there;
    the recovery's own are set by :meth:`_reset_recovery`.
    """

    _state: State
    _out: bytearray
    _history: dict[int, Line]
    _history_size: int
    _in_flight: list[Line]
    _flight_bytes: int
    _next_n: int
    _send_n: int
    _acked_n: int
    _proven_n: int
    _advanced: bool
    _slots: int
    _last_progress: float  # last acknowledgement, resend request or sign of life
    _errors: int

    if TYPE_CHECKING:  # defined by MarlinProtocol

        def _confirm(self, n: int, now: float, events: list[ProtocolEvent]) -> None: ...
        def _restart(self, now: float, events: list[ProtocolEvent]) -> None: ...
        def _halt(self, events: list[ProtocolEvent]) -> None: ...
        def _note_output(self, text: str, *, failed: bool = False) -> None: ...
        def _resend_sync(self, now: float) -> None: ...

    def _reset_recovery(self) -> None:
        """Forget any recovery under way (new session or board restart)."""
        self._recover_n = -1  # line re-sent alone after a resend request
        self._allowance = 0  # identical requests still expected from lines in transit
        self._after_line_error = False  # the next bare ``ok`` ends an Error/Resend triple
        self._paired_resend = -1  # ``Resend`` expected right after an ``Error``
        self._probe_n = -1  # the M105 sent after the last timeout, while unanswered
        self._resend_due = -1.0  # probe then if the Resend of a line error does not come
        self._probe_refused = False  # a line error without number came after the probe
        self._timing = ProbeTiming()  # what the link has shown: when to probe

    # -- resend requests -----------------------------------------------------------

    def _on_resend(self, number: int, now: float, events: list[ProtocolEvent]) -> None:
        state = self._state
        if state is State.NEW or state is State.HALTED:
            return
        self._last_progress = now
        self._resend_due = -1.0
        if state is State.SYNC:
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

    # -- line errors -----------------------------------------------------------------

    def _on_error(self, text: str, now: float, events: list[ProtocolEvent]) -> None:
        body = (text[6:] if text.startswith("Error:") else text[2:]).strip()
        refused, last = line_error(body)
        if refused:
            self._after_line_error = True
            if last is not None:
                self._paired_resend = last + 1
                self._on_resend(last + 1, now, events)
            elif self._state in NUMBERED and (self._recover_n < 0 or self._probe_n >= 0):
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
        jobs = (line.job_index for line in self._in_flight if line.kind == Kind.JOB)
        job_line = next(jobs, None)
        self._errors += 1
        self._note_output(text, failed=True)
        events.append(FirmwareError(body, fatal=fatal, job_line=job_line))
        if fatal and self._state is not State.NEW:
            self._halt(events)

    # -- lost replies ----------------------------------------------------------------

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
        if refused and last is not None and last.kind == Kind.POLL and last in self._in_flight:
            # The newest line is a probe Marlin refused: send it again rather than
            # spend a new number on each try (a long run of refused probes would
            # push the line Marlin wants out of the history).  After silence a
            # new number is needed: a copy of a probe Marlin took is dropped.
            n = last.n
            self._out += last.wire
        else:
            n = self._next_n
            line = Line("M105", Kind.POLL)
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
