"""How long a silent Marlin is given before the host probes it (pure, no clock).

:class:`~gateway.machine.marlin.MarlinProtocol` probes with a numbered
``N<next> M105`` when lines are in flight and nothing comes back; the probe is
safe whatever happened (see :mod:`gateway.machine.marlin_recovery`), so the
only question is when.  A fixed 10 s stalls a print for 10 s on every lost
``ok``; too short a wait only costs a spare ``M105``.  :class:`ProbeTiming`
learns the answer from the link itself:

* three times the longest of the last 32 gaps between replies, plus 0.2 s,
  and at least 0.4 s; while the last ``ok N P B`` said ``P0`` (planner full,
  so each ``ok`` waits for a move to end) at least 1.5 s;
* once the firmware has shown ``busy:`` keepalives (``HOST_KEEPALIVE_FEATURE``,
  every 2 s by default: any command that blocks longer says ``busy:
  processing``), never more than 1.5 keepalive intervals plus 0.5 s;
* a heating, homing, probing, dwell, ``M400`` or user pause in flight waits
  for that keepalive, or ``response_timeout`` on a board that has shown none,
  and the time such a command took is not taken as a gap of the link;
* each probe left unanswered doubles the wait for the next (0.4, 0.8, 1.6 s
  ...), so a board silently busy gets a few ``M105`` in its RX buffer, never a
  flood.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["LONG_COMMANDS", "MIN_PROBE", "ProbeTiming", "is_long"]

# Commands that legitimately hold their ok for a long time (heating, homing,
# probing, dwell, waiting for moves, user pauses).
LONG_COMMANDS = frozenset(
    {"M109", "M190", "M191", "G28", "G29", "G4", "M400", "M303", "M600", "M0", "M1",
     "G76", "M48", "G34", "G35", "M226", "G12", "M125", "M24"}
)  # fmt: skip
MIN_PROBE = 0.4  # seconds: the quickest a silent link is probed
_GAP_FACTOR = 3.0  # times the longest recent gap between replies
_GAP_MARGIN = 0.2
_FULL_PLANNER_PROBE = 1.5  # seconds, while the last ok said P0 (oks paced by motion)
_KEEPALIVE_DEFAULT = 2.0  # Marlin's DEFAULT_KEEPALIVE_INTERVAL, until measured
_LONG_GAP = 0.3  # a gap at least this long, with a long command answered, is not the link's


def is_long(text: str) -> bool:
    """The command (cleaned line text) may hold its ``ok`` for a long time."""
    return text.split(" ", 1)[0] in LONG_COMMANDS


class ProbeTiming:
    """What the link has shown, and the wait before the next probe it implies."""

    __slots__ = ("_busy_at", "_gaps", "keepalive", "planner_full", "probes_out")

    def __init__(self) -> None:
        self._gaps: deque[float] = deque(maxlen=32)
        self._busy_at = -1.0
        #: Seconds between ``busy:`` keepalives; None until the firmware sent one.
        self.keepalive: float | None = None
        #: The last ``ok N P B`` said ``P0``.
        self.planner_full = False
        #: Probes sent since the last reply that made progress.
        self.probes_out = 0

    def replied(self, gap: float, long_answered: bool) -> None:
        """A reply made progress ``gap`` seconds after the previous one."""
        self.probes_out = 0
        if gap < _LONG_GAP or not long_answered:
            self._gaps.append(gap)

    def busy(self, now: float) -> None:
        """A ``busy:`` keepalive arrived."""
        if self._busy_at >= 0.0 and 0.5 <= now - self._busy_at <= 10.0:
            self.keepalive = now - self._busy_at
        elif self.keepalive is None:
            self.keepalive = _KEEPALIVE_DEFAULT
        self._busy_at = now

    def wait(self, in_flight: Iterable[str], response_timeout: float) -> float:
        """Seconds of silence, with the ``in_flight`` lines, before a probe."""
        keepalive = self.keepalive
        alive = response_timeout if keepalive is None else keepalive * 1.5 + 0.5
        if any(is_long(text) for text in in_flight):
            return min(response_timeout, alive)
        quick = max(MIN_PROBE, _GAP_FACTOR * max(self._gaps, default=0.0) + _GAP_MARGIN)
        if self.planner_full:
            quick = max(quick, _FULL_PLANNER_PROBE)
        quick *= 2.0**self.probes_out
        return min(response_timeout, alive, quick)
