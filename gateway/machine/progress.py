"""Progress and time left from what the machine has *executed* (pure: no I/O, no clock).

An ``ok`` means a line was planned, not run: Marlin's and GRBL's planners hold
up to ~16 moves, seconds of motion, and heating or homing holds a line for
minutes.  So the line the machine is really at is the last acknowledged one
minus the moves still waiting in its planner (``P`` of Marlin's ``ok N P B``,
``Bf:`` of GRBL's status report), and never less than it was before.

Lines take very different times (a travel across the bed, a 0.1 mm infill
segment, a heat-up), so progress is measured in *machine seconds*: a
:class:`TimeProfile` holds the analysis' estimated time at every ``step``-th
line (the same planner model as :mod:`gateway.machine.analysis`).  The time left
is the profile's remaining seconds times the *pace*, wall seconds per profile
second, measured over the recent past of the job (so a long heat-up at the
start, which the profile cannot know, stops weighing once the machine moves).
Time the model cannot know (heating, homing, a user pause) shows as a line
that takes far longer than its paced estimate; it is left out of the pace.
Between updates the time left counts down with the clock for a moment, never
through a stall; progress never goes backwards.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field

from gateway.machine.analysis import _Machine

_PACE_WINDOW = 5.0  # seconds of wall time the pace is measured over (at least)
_PACE_SHARE = 0.25  # ... or this share of the time elapsed, whichever is longer
_MIN_WORK = 0.5  # profile seconds a pace sample must span to count
_SAMPLE_EVERY = 0.25  # wall seconds between pace samples
_STALL_FACTOR = 2.0  # a step taking this many times its paced estimate ...
_STALL_SLACK = 1.0  # ... plus this many seconds is a stall (heating, homing, a wait)
_COUNTDOWN = 2.0  # seconds the time left may count down without news


@dataclass(frozen=True, slots=True)
class TimeProfile:
    """Estimated machine seconds before line ``i * step`` (1-based lines) in ``marks``."""

    step: int
    marks: tuple[float, ...]  # marks[0] == 0.0: before the first line
    lines: int

    @property
    def total(self) -> float:
        return self.marks[-1]

    def seconds_at(self, line: int) -> float:
        """Estimated seconds to run the first ``line`` lines (interpolated)."""
        if line <= 0:
            return 0.0
        if line >= self.lines:
            return self.total
        i, rest = divmod(line, self.step)
        low = self.marks[i]
        if rest == 0 or i + 1 >= len(self.marks):
            return low
        high = self.marks[i + 1]
        span = min(self.step, self.lines - i * self.step)
        return low + (high - low) * rest / span

    def line_at(self, seconds: float) -> int:
        """The first line whose estimated time reaches ``seconds`` (inverse of the above)."""
        i = bisect_right(self.marks, seconds)
        return min(self.lines, i * self.step)


def profile_lines(
    lines: Iterable[str], count: int, *, firmware: str = "marlin", marks: int = 2000
) -> TimeProfile:
    """Build a :class:`TimeProfile` of ``count`` cleaned (prepared) lines.

    The analysis planner runs a move once 16 more are queued, so its clock lags
    the lines by up to 16 moves, which matters where a few long moves follow
    many short ones; each mark adds the moves still queued at their cruise speed.
    """
    count = max(count, 1)
    step = max(1, -(-count // max(1, marks)))
    machine = _Machine(firmware, 1000.0, None)
    feed = machine.feed_line
    planner = machine.planner
    out = [0.0]
    i = 0
    for i, raw in enumerate(lines, 1):
        s = raw.strip()
        if s:
            with suppress(ValueError, ArithmeticError):
                feed(s)  # a line the model cannot read takes no time in it
        if i % step == 0:
            queued = sum(b[0] / math.sqrt(b[1]) for b in planner.blocks if b[1] > 0.0)
            out.append(max(out[-1], planner.seconds + queued))
    planner.stop()
    if i % step or i == 0:
        out.append(max(out[-1], planner.seconds))
    else:
        out[-1] = max(out[-2] if len(out) > 1 else 0.0, planner.seconds)
    return TimeProfile(step=step, marks=tuple(out), lines=max(i, 1))


@dataclass
class ProgressClock:
    """Monotonic progress and a paced time left for one job.

    Feed it with :meth:`update` (the line the machine has executed, and the
    job's elapsed running seconds); read :meth:`fraction` and :meth:`eta`.
    Without a profile, lines stand in for time, scaled to ``estimated_seconds``
    when there is one.
    """

    lines_total: int
    estimated_seconds: float | None = None
    profile: TimeProfile | None = None
    executed: int = 0
    _work: float = 0.0
    _updated_at: float = 0.0
    _advanced_at: float = 0.0
    _stalled: float = 0.0  # wall seconds spent in stalls, left out of the pace
    _pace: float | None = None
    _samples: deque[tuple[float, float]] = field(default_factory=deque)

    def total_work(self) -> float:
        if self.profile is not None and self.profile.total > 0:
            return self.profile.total
        if self.estimated_seconds:
            return self.estimated_seconds
        return float(max(1, self.lines_total))

    def work_at(self, line: int) -> float:
        if self.profile is not None and self.profile.total > 0:
            return self.profile.seconds_at(line)
        return self.total_work() * min(1.0, line / max(1, self.lines_total))

    def update(self, executed: int, elapsed: float) -> None:
        """The machine has run ``executed`` lines after ``elapsed`` running seconds."""
        executed = min(max(executed, 0), self.lines_total)
        if executed > self.executed:
            work = self.work_at(executed)
            # Time the model cannot know (a heat-up, homing, a pause for the
            # user) is a stall: it is left out of the pace, which is about motion.
            gap = elapsed - self._advanced_at
            expected = (work - self._work) * (self._pace or 1.0)
            if gap > _STALL_FACTOR * expected + _STALL_SLACK:
                self._stalled += gap - expected
            self.executed, self._work, self._advanced_at = executed, work, elapsed
        self._updated_at = elapsed
        moving = elapsed - self._stalled - max(0.0, elapsed - self._advanced_at)
        samples = self._samples
        if not samples or moving - samples[-1][0] >= _SAMPLE_EVERY:
            samples.append((moving, self._work))
        window = max(_PACE_WINDOW, _PACE_SHARE * moving)
        while len(samples) > 2 and moving - samples[1][0] >= window:
            samples.popleft()
        first_t, first_w = samples[0]
        if self._work - first_w >= _MIN_WORK and moving > first_t:
            self._pace = (moving - first_t) / (self._work - first_w)

    def use_profile(self, profile: TimeProfile) -> None:
        """The profile is ready (it is built while the job starts): measure in it."""
        old_total = self.total_work()
        self.profile = profile
        self._work = self.work_at(self.executed)
        # Both measure machine seconds (the estimate is the same model's total),
        # so the pace carries over, rescaled, and the samples start again.
        if self._pace is not None and profile.total > 0 and old_total > 0:
            self._pace *= old_total / profile.total
        self._samples.clear()

    def finish(self) -> None:
        """Every line ran (the controller proved the machine stopped)."""
        self.executed = self.lines_total
        self._work = self.total_work()

    def fraction(self) -> float:
        total = self.total_work()
        return 1.0 if total <= 0 else min(1.0, self._work / total)

    def eta(self, elapsed: float) -> float | None:
        """Seconds left, counting down with ``elapsed`` between updates."""
        remaining = self.total_work() - self._work
        if remaining <= 0:
            return 0.0
        pace = self._pace
        if pace is None:
            if self.profile is None and not self.estimated_seconds:
                return None  # neither a model nor an observed rate yet
            pace = 1.0  # trust the analysis until the machine has shown its pace
        # Count down between updates, but not through a stall: a heat-up must not
        # drive the time left to zero and then jump back.
        since = min(_COUNTDOWN, max(0.0, elapsed - self._updated_at))
        return max(0.0, remaining * pace - since)
