"""Usage accounting per session and per job: time, energy and material.

Rules:

1. A session runs from ``SessionStarted`` to ``SessionEnded``; its whole length
   is *powered* time (the relay is on while a member holds a session).  Without
   the access capability there are no sessions, and jobs are still accounted.
2. *Busy* time, with ``busy_source = "jobs"``: a job running and not paused.
   With ``"power"`` (machines without jobs: a lathe, a saw): the parts of energy
   intervals whose mean power is at or above ``busy_threshold_w``.
   *Idle* time is powered minus busy.
3. Energy intervals (from :mod:`gateway.metering.integrator`) are shared out to
   the session and the job in proportion to how much of the interval they
   overlap; an estimated interval makes the session (and job) estimated.
4. Material: the file's filament (its analysis) times the fraction of its lines
   actually executed, times grams per millimetre of the configured filament.
5. A job that is still open when its session ends stays open and is billed on
   its own record; the session lists it with outcome ``running``.

Pure: no clock, no I/O; times come in with the events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

BusySource = Literal["jobs", "power"]


def grams_per_mm(diameter_mm: float, density_g_cm3: float) -> float:
    """Weight of one millimetre of filament: cross-section (mm²) times density (mg/mm³)."""
    return math.pi * (diameter_mm / 2.0) ** 2 * density_g_cm3 / 1000.0


@dataclass(frozen=True, slots=True)
class JobUsage:
    job_id: int
    file: str
    started: float
    ended: float | None
    outcome: str  # running | completed | cancelled | failed | estop | interrupted
    busy_seconds: float
    energy_wh: float
    estimated: bool
    grams: float
    lines_done: int
    lines_total: int
    session_id: str | None
    member_id: str | None


@dataclass(frozen=True, slots=True)
class SessionUsage:
    session_id: str
    member_id: str
    member_name: str
    role: str
    inducted_by: str | None
    started: float
    ended: float | None
    reason: str | None
    powered_seconds: float
    busy_seconds: float
    energy_wh: float
    estimated: bool
    grams: float
    jobs: tuple[tuple[int, str], ...]  # (job id, outcome)

    @property
    def idle_seconds(self) -> float:
        return max(0.0, self.powered_seconds - self.busy_seconds)


@dataclass
class _Job:
    job_id: int
    file: str
    started: float
    lines_total: int
    filament_mm: float | None
    session_id: str | None
    member_id: str | None
    paused: bool = False
    busy: float = 0.0
    wh: float = 0.0
    estimated: bool = False
    lines_done: int = 0


@dataclass
class _Session:
    started_event: tuple[str, str, str, str, str | None]
    started: float
    powered: float = 0.0
    busy: float = 0.0
    wh: float = 0.0
    estimated: bool = False
    grams: float = 0.0
    jobs: dict[int, str] = field(default_factory=dict)


class UsageBook:
    """Feed it events and energy intervals in time order; it returns closed records."""

    def __init__(
        self,
        *,
        busy_source: BusySource = "jobs",
        busy_threshold_w: float = 50.0,
        grams_per_mm: float = 0.0,
    ) -> None:
        self.busy_source = busy_source
        self.busy_threshold_w = busy_threshold_w
        self.grams_per_mm = grams_per_mm
        self._t: float | None = None
        self._session: _Session | None = None
        self._job: _Job | None = None

    # ------------------------------------------------------------------ time

    def advance(self, t: float) -> None:
        """Account the time up to ``t`` (powered, and busy while a job runs)."""
        if self._t is None or t <= self._t:
            self._t = t if self._t is None else max(self._t, t)
            return
        dt = t - self._t
        self._t = t
        job_busy = self._job is not None and not self._job.paused
        if self._session is not None:
            self._session.powered += dt
            if self.busy_source == "jobs" and job_busy:
                self._session.busy += dt
        if self._job is not None and job_busy and self.busy_source == "jobs":
            self._job.busy += dt

    # ------------------------------------------------------------------ sessions

    def session_started(
        self,
        t: float,
        *,
        session_id: str,
        member_id: str,
        member_name: str,
        role: str,
        inducted_by: str | None = None,
    ) -> SessionUsage | None:
        """Open a session; a session still open (a takeover) is closed first and returned."""
        closed = self.session_ended(t, reason="takeover") if self._session is not None else None
        self.advance(t)
        self._session = _Session((session_id, member_id, member_name, role, inducted_by), t)
        if self._job is not None:
            self._session.jobs[self._job.job_id] = "running"
        return closed

    def session_ended(self, t: float, *, reason: str) -> SessionUsage | None:
        self.advance(t)
        s = self._session
        if s is None:
            return None
        self._session = None
        return self._session_view(s, ended=t, reason=reason)

    def _session_view(
        self, s: _Session, *, ended: float | None, reason: str | None
    ) -> SessionUsage:
        session_id, member_id, member_name, role, inducted_by = s.started_event
        grams = s.grams
        if self._job is not None and self._job.session_id == session_id:
            grams += self._job_grams(self._job)
        return SessionUsage(
            session_id=session_id,
            member_id=member_id,
            member_name=member_name,
            role=role,
            inducted_by=inducted_by,
            started=s.started,
            ended=ended,
            reason=reason,
            powered_seconds=s.powered,
            busy_seconds=min(s.busy, s.powered),
            energy_wh=s.wh,
            estimated=s.estimated,
            grams=grams,
            jobs=tuple(s.jobs.items()),
        )

    # ------------------------------------------------------------------ jobs

    def job_started(
        self, t: float, *, job_id: int, file: str, lines: int, filament_mm: float | None
    ) -> JobUsage | None:
        """Open a job; one still open (its end was never seen) is closed as ``failed``."""
        closed = None
        if self._job is not None:
            closed = self.job_finished(
                t, job_id=self._job.job_id, outcome="failed", lines_done=self._job.lines_done
            )
        self.advance(t)
        s = self._session
        self._job = _Job(
            job_id=job_id,
            file=file,
            started=t,
            lines_total=max(0, lines),
            filament_mm=filament_mm,
            session_id=s.started_event[0] if s is not None else None,
            member_id=s.started_event[1] if s is not None else None,
        )
        if s is not None:
            s.jobs[job_id] = "running"
        return closed

    def job_paused(self, t: float, *, job_id: int, paused: bool = True) -> None:
        self.advance(t)
        if self._job is not None and self._job.job_id == job_id:
            self._job.paused = paused

    def job_progress(self, t: float, *, job_id: int, lines_done: int) -> None:
        self.advance(t)
        if self._job is not None and self._job.job_id == job_id:
            self._job.lines_done = max(self._job.lines_done, lines_done)

    def job_finished(
        self, t: float, *, job_id: int, outcome: str, lines_done: int
    ) -> JobUsage | None:
        self.advance(t)
        j = self._job
        if j is None or j.job_id != job_id:
            return None
        j.lines_done = max(j.lines_done, lines_done)
        self._job = None
        grams = self._job_grams(j)
        s = self._session
        if s is not None and j.session_id == s.started_event[0]:
            s.jobs[job_id] = outcome
            s.grams += grams
        return self._job_view(j, ended=t, outcome=outcome)

    def _job_grams(self, j: _Job) -> float:
        if not j.filament_mm or j.lines_total <= 0 or j.filament_mm < 0:
            return 0.0
        fraction = min(1.0, j.lines_done / j.lines_total)
        return j.filament_mm * fraction * self.grams_per_mm

    def _job_view(self, j: _Job, *, ended: float | None, outcome: str) -> JobUsage:
        return JobUsage(
            job_id=j.job_id,
            file=j.file,
            started=j.started,
            ended=ended,
            outcome=outcome,
            busy_seconds=j.busy,
            energy_wh=j.wh,
            estimated=j.estimated,
            grams=self._job_grams(j),
            lines_done=j.lines_done,
            lines_total=j.lines_total,
            session_id=j.session_id,
            member_id=j.member_id,
        )

    # ------------------------------------------------------------------ energy

    def energy(self, t0: float, t1: float, wh: float, *, estimated: bool = False) -> None:
        """Share an energy interval out to the open session and job by overlap."""
        if t1 <= t0:
            return
        self.advance(t1)
        mean_w = wh * 3600.0 / (t1 - t0)
        s, j = self._session, self._job
        if s is not None:
            part = _overlap(t0, t1, s.started)
            s.wh += wh * part
            s.estimated = s.estimated or (estimated and part > 0)
            if self.busy_source == "power" and mean_w >= self.busy_threshold_w:
                s.busy += (t1 - t0) * part
        if j is not None:
            part = _overlap(t0, t1, j.started)
            j.wh += wh * part
            j.estimated = j.estimated or (estimated and part > 0)
            if self.busy_source == "power" and mean_w >= self.busy_threshold_w:
                j.busy += (t1 - t0) * part

    # ------------------------------------------------------------------ views

    def current_session(self) -> SessionUsage | None:
        s = self._session
        return None if s is None else self._session_view(s, ended=None, reason=None)

    def current_job(self) -> JobUsage | None:
        j = self._job
        return None if j is None else replace(self._job_view(j, ended=None, outcome="running"))


def _overlap(t0: float, t1: float, since: float) -> float:
    """The fraction of [t0, t1] at or after ``since``."""
    if since <= t0:
        return 1.0
    if since >= t1:
        return 0.0
    return (t1 - since) / (t1 - t0)
