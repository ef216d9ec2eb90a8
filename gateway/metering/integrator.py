"""Energy from a meter's samples: integrated power, cross-checked against its counter.

The model, in the order a reviewer asks about it:

1. Each good sample carries the power (W) and, when the meter has one, its
   energy counter (Wh).  Energy between two good samples is the trapezoid of
   their powers: the measured figure, finer than the counter's 1 Wh steps.
2. A sample that is absurd (not a number, negative power, above ``max_power_w``)
   is rejected and counted like a failed read (timeout, CRC error, unplugged).
3. An interval is *estimated*, never silently invented, when it is longer than
   ``max_gap`` (30 s by default), when a read failed or was rejected inside it,
   or when the counter reset or wrapped inside it.  Across a long gap the
   counter's delta is used when it is trustworthy (the meter kept counting while
   we could not read it); otherwise the trapezoid of the two ends.
4. The counter is a cross-check: over the intervals where both are good, the
   integrated and counted energy are summed; :attr:`EnergyIntegrator.mismatch`
   says when they differ by more than ``tolerance`` (5 %) plus 2 Wh (the
   counter's resolution at both ends).
5. A counter that goes down is a reset (PZEM function 0x42, a power cut on some
   meters), unless it went from the top of its range to the bottom: then it
   wrapped, and the delta is taken across the wrap.

Pure: no clock, no I/O.  Times are seconds on any monotonic scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: The PZEM-004T's energy register is 32 bits of Wh.
PZEM_COUNTER_WRAP = 2**32


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: ``t`` in seconds, ``power_w``, and the meter's counter if it has one."""

    t: float
    power_w: float
    energy_wh: float | None = None


@dataclass(frozen=True, slots=True)
class Interval:
    """Energy between two good samples; ``reason`` says why it is estimated."""

    t0: float
    t1: float
    wh: float
    mean_w: float
    estimated: bool = False
    #: gap | read_failed | rejected | counter_reset | counter_wrap | counter_jump
    reason: str | None = None

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0


@dataclass
class IntegratorStats:
    samples: int = 0
    rejected: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    resets: int = 0
    counter_jumps: int = 0  # deltas larger than max power could count
    wraps: int = 0
    estimated_intervals: int = 0
    estimated_seconds: float = 0.0
    integrated_wh: float = 0.0  # over intervals where the counter agreed to be compared
    counted_wh: float = 0.0


class EnergyIntegrator:
    """Feed :meth:`add` good or bad samples and :meth:`failed` for failed reads."""

    def __init__(
        self,
        *,
        max_gap: float = 30.0,
        max_power_w: float = 23_000.0,
        counter_wrap_wh: float = PZEM_COUNTER_WRAP,
        tolerance: float = 0.05,
    ) -> None:
        if max_gap <= 0 or max_power_w <= 0 or counter_wrap_wh <= 0:
            raise ValueError("max_gap, max_power_w and counter_wrap_wh must be positive")
        self.max_gap = max_gap
        self.max_power_w = max_power_w
        self.counter_wrap_wh = counter_wrap_wh
        self.tolerance = tolerance
        self.stats = IntegratorStats()
        self.total_wh = 0.0
        self._last: Sample | None = None
        self._trouble: str | None = None  # why the interval now open is estimated

    @property
    def last(self) -> Sample | None:
        return self._last

    def failed(self, reason: str) -> None:
        """A read failed (``timeout``, ``crc``, ``unplugged``...): counted, interval estimated."""
        self.stats.failures[reason] = self.stats.failures.get(reason, 0) + 1
        if self._trouble is None:
            self._trouble = "read_failed"

    def plausible(self, sample: Sample) -> bool:
        p = sample.power_w
        if not math.isfinite(p) or p < 0 or p > self.max_power_w:
            return False
        e = sample.energy_wh
        return e is None or (math.isfinite(e) and e >= 0)

    def add(self, sample: Sample) -> Interval | None:
        """Take a sample; return the interval it closes, if any."""
        if not self.plausible(sample):
            self.stats.rejected += 1
            if self._trouble is None:
                self._trouble = "rejected"
            return None
        last = self._last
        if last is not None and sample.t <= last.t:
            return None  # out of order or repeated: the earlier one stands
        self.stats.samples += 1
        self._last = sample
        if last is None:
            self._trouble = None
            return None
        dt = sample.t - last.t
        reason = self._trouble
        self._trouble = None
        counted, counter_note = self._counter_delta(last, sample, dt)
        if counter_note is not None and reason is None:
            reason = counter_note
        trapezoid = (last.power_w + sample.power_w) / 2.0 * dt / 3600.0
        if dt > self.max_gap:
            reason = "gap"
            wh = counted if counted is not None else trapezoid
        else:
            wh = trapezoid
            if reason is None and counted is not None:
                self.stats.integrated_wh += trapezoid
                self.stats.counted_wh += counted
        estimated = reason is not None
        if estimated:
            self.stats.estimated_intervals += 1
            self.stats.estimated_seconds += dt
        self.total_wh += wh
        return Interval(last.t, sample.t, wh, wh * 3600.0 / dt, estimated, reason)

    def _counter_delta(self, a: Sample, b: Sample, dt: float) -> tuple[float | None, str | None]:
        if a.energy_wh is None or b.energy_wh is None:
            return None, None
        delta = b.energy_wh - a.energy_wh
        note = None
        if delta < 0:
            top, bottom = 0.9 * self.counter_wrap_wh, 0.1 * self.counter_wrap_wh
            if a.energy_wh >= top and b.energy_wh <= bottom:
                self.stats.wraps += 1
                delta += self.counter_wrap_wh
                note = "counter_wrap"
            else:
                self.stats.resets += 1
                return None, "counter_reset"
        # More than the meter's maximum power could have counted (+1 Wh of resolution):
        # a corrupted register or a swapped meter, not energy.
        if delta > self.max_power_w * dt / 3600.0 + 1.0:
            self.stats.counter_jumps += 1
            return None, "counter_jump"
        return delta, note

    @property
    def mismatch(self) -> bool:
        """True when the counter and the integrated power disagree beyond tolerance."""
        i, c = self.stats.integrated_wh, self.stats.counted_wh
        return abs(i - c) > self.tolerance * max(i, c) + 2.0
