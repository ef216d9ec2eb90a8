"""Events the metering capability publishes: its public contract.

Amounts are decimal strings (``"1.85"``) with their ``currency``; energy in Wh,
times in seconds, material in grams.  ``estimated`` says that part of the
energy was not measured (a gap, a failed read, a counter reset).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.bus import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUsageClosed(Event):
    """A session ended; what it used and cost.  The ledger records it."""

    topic = "session_usage"
    session_id: str
    member_id: str
    member_name: str
    role: str
    inducted_by: str | None
    started: float
    ended: float
    reason: str
    powered_seconds: float
    busy_seconds: float
    idle_seconds: float
    energy_wh: float
    estimated: bool
    grams: float
    jobs: tuple[tuple[int, str], ...]
    cost: str
    currency: str
    free_minutes: float


@dataclass(frozen=True, slots=True, kw_only=True)
class JobUsageClosed(Event):
    """A job ended; what it used.  Billed through its session; the ledger records it."""

    topic = "job_usage"
    job_id: int
    file: str
    outcome: str
    started: float
    ended: float
    busy_seconds: float
    energy_wh: float
    estimated: bool
    grams: float
    lines_done: int
    lines_total: int
    session_id: str | None
    member_id: str | None
    cost: str
    currency: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageUpdated(Event):
    """The running session's usage so far (at most every 10 s while a session runs)."""

    topic = "usage"
    session_id: str
    minutes: float
    energy_wh: float
    grams: float
    cost: str
    currency: str
    text: str
    estimated: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterProblem(Event):
    """A meter read failed or was rejected (once per outage or change of cause; every
    failure is counted in ``GET /api/metering/usage``).  The session goes on."""

    topic = "meter_problem"
    reason: str
    message: str
    count: int
