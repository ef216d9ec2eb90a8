"""The Marlin core's fast paths: the replies that make up nearly all of a job.

Pure, no clock: the methods of :class:`FastAcks` are part of
:class:`~gateway.machine.marlin.MarlinProtocol` (its base class), split out so
the general reply path in ``marlin.py`` stays readable.  Each does for its
one kind of reply exactly what the general path does, without its dispatch;
property tests in ``tests/machine/test_marlin.py`` hold them to it.

On a Pi the wake-up around each reply costs more than the protocol work, and
the work done cold (after a sleep, with the caches taken by other processes)
costs several times what it costs in a tight loop: measured here, 7 us for an
``ok`` hot, 42 us after a 2 ms sleep.  So a line should touch as little as can be.
"""

from __future__ import annotations

import re
from collections import deque
from itertools import islice
from typing import TYPE_CHECKING

from gateway.machine.marlin_lines import MAX_SLOTS, Kind, Line, State
from gateway.machine.marlin_probe import ProbeTiming
from gateway.machine.marlin_wire import format_line
from gateway.machine.protocol import LinesAcked, ProtocolEvent

__all__ = ["OK_NPB", "FastAcks"]

#: ``ok N<n> P<p> B<b>`` exactly as Marlin prints it, nothing else.
OK_NPB = re.compile(rb"ok N(\d+) P(\d+) B(\d+)\r?")
#: What one read holds while an ADVANCED_OK job streams: whole ``ok N P B`` lines only.
_ALL_NPB = re.compile(rb"(?:ok N\d+ P\d+ B\d+\r?\n)+")
_AHEAD = 8  # lines fast_ok frames at once


class FastAcks:
    """A bare ``ok`` in one-per-``ok`` streaming, and ``ok N P B`` with ADVANCED_OK.

    The attributes declared here are the core's, set by
    :meth:`MarlinProtocol._reset_link <gateway.machine.marlin.MarlinProtocol._reset_link>`
    and its constructor, and described there.
    """

    _state: State
    _advanced: bool
    _rx: bytearray
    _events: list[ProtocolEvent]
    _system: deque[Line]
    _pending: deque[Line]
    _in_flight: list[Line]
    _history: dict[int, Line]
    _history_size: int
    _flight_bytes: int
    _next_n: int
    _send_n: int
    _acked_n: int
    _proven_n: int
    _acked: int
    _unreported: int
    _ahead: dict[int, tuple[Line, bytes]]
    _last_progress: float
    _timing: ProbeTiming
    _planner_free: int
    _planner_size: int
    _slots: int
    _after_line_error: bool
    _after_unknown: bool
    _paired_resend: int
    _recover_n: int
    _probe_n: int
    _resend_due: float

    if TYPE_CHECKING:

        def _confirm(self, n: int, now: float, events: list[ProtocolEvent]) -> None: ...

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
            self._advanced
            or self._system
            or len(self._in_flight) != 1
            or not self._pending
            or not self._steady()
        ):
            return None
        done = self._in_flight[0]
        n = self._next_n
        nxt = self._pending[0]
        if (
            done.kind is not Kind.JOB
            or nxt.kind is not Kind.JOB
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
        ahead = self._ahead.pop(n, None)
        if ahead is not None and ahead[0] is nxt:
            wire = ahead[1]
        else:
            # Number and frame the next few queued lines at once, as they will go
            # if nothing comes between (a command or probe would take a number:
            # then the line found here differs and is framed again).
            ahead_n = n
            self._ahead = ahead_map = {}
            for line in islice(self._pending, _AHEAD):
                ahead_map[ahead_n] = (line, format_line(ahead_n, line.text))
                ahead_n += 1
            wire = ahead_map.pop(n)[1]
        self._pending.popleft()
        nxt.n, nxt.wire = n, wire
        history = self._history
        history[n] = nxt
        history.pop(n - self._history_size, None)
        self._next_n = self._send_n = n + 1
        self._in_flight = [nxt]
        self._flight_bytes = len(wire)
        self._last_progress = now
        return wire

    def fast_npb(self, data: bytes, now: float) -> bool:
        """The common case of ADVANCED_OK streaming, in one step: ``data`` (the whole of
        what was read) is nothing but ``ok N P B`` replies acknowledging, in order, job
        lines in flight.  Returns False, having changed nothing, when anything else is
        going on (handshake, recovery, a command or poll among the lines, a partial
        reply, a long move answered): then :meth:`receive` must be given the same bytes.

        Same bookkeeping as :meth:`receive` takes for those replies, reply by reply,
        without its split, dispatch and per-reply events; the acknowledged lines are
        reported, summed, with the next events (as :meth:`fast_ok`'s are).  The caller
        then asks :meth:`data_to_send` for the lines the freed window lets out.
        """
        if (
            not self._advanced
            or now - self._last_progress >= 0.3
            or not self._steady()
            or _ALL_NPB.fullmatch(data) is None
        ):
            return False
        replies = OK_NPB.findall(data)
        acked_n = self._acked_n
        last = acked_n
        for reply in replies:
            n = int(reply[0])
            if n <= last:
                return False
            last = n
        if last >= self._next_n:
            return False
        history = self._history
        lines = []
        for k in range(acked_n + 1, last + 1):
            line = history.get(k)
            if line is None or line.done or line.kind is not Kind.JOB:
                return False
            lines.append(line)
        # As _on_npb and _confirm would, reply by reply.
        timing = self._timing
        for n_text, p_text, b_text in replies:
            self._note_planner(int(p_text), int(b_text))
            n = int(n_text)
            if n > self._proven_n:
                self._proven_n = n
            timing.replied(now - self._last_progress, False)
            self._last_progress = now
        for line in lines:
            line.done = True
        self._acked += len(lines)
        self._unreported += len(lines)
        self._acked_through(last)
        return True

    def _acked_through(self, n: int) -> None:
        """Lines up to ``n`` are acknowledged: nothing before ``n + 1`` is sent again,
        and they leave the lines in flight (and their bytes the RX window)."""
        self._acked_n = n
        if self._send_n <= n:
            self._send_n = n + 1
        flight = self._in_flight
        if flight:
            kept = [line for line in flight if line.n > n]
            if len(kept) != len(flight):
                self._in_flight = kept
                size = 0
                for line in kept:
                    size += len(line.wire)
                self._flight_bytes = size

    def _steady(self) -> bool:
        """Nothing but streaming is going on, as both fast paths need: the link is
        ready, no reply is half read, no events wait, no error or recovery is open."""
        return (
            self._state is State.READY
            and not self._rx
            and not self._events
            and not self._after_line_error
            and not self._after_unknown
            and self._recover_n < 0
            and self._probe_n < 0
            and self._resend_due < 0.0
            and self._paired_resend < 0
        )

    def _report_fast(self, events: list[ProtocolEvent]) -> None:
        events.insert(0, LinesAcked(self._unreported, self._acked))
        self._unreported = 0

    def _note_planner(self, p: int, b: int) -> None:
        """What an ``ok`` with ``P``/``B`` says: ADVANCED_OK is on, the planner has
        ``p`` blocks free (the most ever seen is its size), ``b + 1`` commands fit."""
        self._advanced = True
        self._timing.planner_full = p == 0
        self._planner_free = p
        if p > self._planner_size:
            self._planner_size = p
        if b + 1 > self._slots:
            self._slots = min(b + 1, MAX_SLOTS)

    def _on_npb(self, n: int, p: int, b: int, now: float, events: list[ProtocolEvent]) -> None:
        """``ok N<n> P<p> B<b>``, ADVANCED_OK's acknowledgement and nearly every reply
        of a job, read by one pattern in :meth:`receive`: what :meth:`_handle` and
        :meth:`_on_ok` do for it, without their general dispatch."""
        self._after_line_error = False
        self._paired_resend = -1
        self._after_unknown = False
        if self._state is State.NEW or self._state is State.HALTED:
            return
        self._note_planner(p, b)
        if n < self._next_n:
            if n > self._proven_n:
                self._proven_n = n
            self._confirm(n, now, events)
