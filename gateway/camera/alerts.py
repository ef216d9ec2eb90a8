"""What the camera's pictures say, as alerts: a pure core, fed statistics and times.

:class:`AlertMonitor` never reads a clock or a camera.  The camera service feeds
it :class:`FrameStats` (from :mod:`gateway.camera.frames`), the machine's job
phase and the access capability's lock state, and calls :meth:`AlertMonitor.tick`
with the monotonic time; each call returns the alerts that were raised or
cleared, which the service publishes as :class:`~gateway.camera.events.CameraAlert`.

Each alert is inactive or active; this table is its whole state machine:

===================== ====================================================================
alert                 active while
===================== ====================================================================
camera_lost           no frame for ``lost_after_s``
frozen                identical frames (same digest) for ``frozen_after_s``, camera not lost
black                 mean luma below ``black_threshold`` for ``black_after_s``, not lost
stall                 a job runs, the camera is healthy, and no motion for ``stall_minutes``
motion_while_locked   locked and no job, camera healthy, and motion for
                      ``motion_while_locked_minutes`` (pauses up to ``motion_gap_s``)
===================== ====================================================================

"Healthy" means none of the first three is active; the two motion alerts only
count healthy time, so a camera that was frozen for an hour does not report a
stall the moment it recovers.  "Locked" comes from the access capability; when
it has said nothing (no access control on this machine), "no job" stands in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from gateway.bus import Event
from gateway.camera.config import AlertsConfig
from gateway.machine.events import (
    JobFinished,
    JobPaused,
    JobResumed,
    JobStarted,
    MachineStatus,
)


class AlertKind(StrEnum):
    CAMERA_LOST = "camera_lost"
    FROZEN = "frozen"
    BLACK = "black"
    STALL = "stall"
    MOTION_WHILE_LOCKED = "motion_while_locked"


#: The alerts that say the camera itself is unwell.
CAMERA_FAULTS = frozenset({AlertKind.CAMERA_LOST, AlertKind.FROZEN, AlertKind.BLACK})

CLEARED: dict[AlertKind, str] = {
    AlertKind.CAMERA_LOST: "the camera delivers pictures again",
    AlertKind.FROZEN: "the camera's picture changes again",
    AlertKind.BLACK: "the camera's picture is no longer black",
    AlertKind.STALL: "movement seen again, or the job is no longer running",
    AlertKind.MOTION_WHILE_LOCKED: "the movement stopped, or the machine is in use",
}


class JobPhase(StrEnum):
    NONE = "none"
    RUNNING = "running"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class FrameStats:
    """One measured frame: ``at`` is when it arrived (monotonic seconds)."""

    at: float
    mean_luma: float  # 0-255
    digest: bytes  # equal digests mean byte-identical frames
    motion: float  # fraction of thumbnail pixels changed since the previous measured frame


@dataclass(frozen=True, slots=True)
class AlertChange:
    kind: AlertKind
    active: bool
    message: str


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 600 else f"{seconds / 60:.0f} min"


class AlertMonitor:
    """Turns frame statistics, the job phase and the lock state into alert changes."""

    def __init__(self, config: AlertsConfig, now: float) -> None:
        self.config = config
        self._now = now
        self._started = now
        self._last_frame: float | None = None
        self._digest: bytes | None = None
        self._same_since = now  # first frame of the current run of identical frames
        self._dark_since: float | None = None
        self._motion_since: float | None = None  # start of the current motion episode
        self._last_motion: float | None = None
        self._job = JobPhase.NONE
        self._job_since = now
        self._locked: bool | None = None
        self._locked_since = now
        self._healthy_since: float | None = now
        self._active: dict[AlertKind, str] = {}

    # ------------------------------------------------------------------ inputs

    @property
    def active(self) -> dict[AlertKind, str]:
        """The active alerts and the message each was raised with."""
        return dict(self._active)

    @property
    def job(self) -> JobPhase:
        return self._job

    @property
    def locked(self) -> bool | None:
        return self._locked

    def observe(self, stats: FrameStats) -> list[AlertChange]:
        """A frame was measured."""
        c = self.config
        at = stats.at
        if stats.digest != self._digest:
            self._digest = stats.digest
            self._same_since = at
        if stats.mean_luma < c.black_threshold:
            if self._dark_since is None:
                self._dark_since = at
        else:
            self._dark_since = None
        if stats.motion >= c.motion_threshold:
            if self._last_motion is None or at - self._last_motion > c.motion_gap_s:
                self._motion_since = at
            self._last_motion = at
        self._last_frame = at
        return self._evaluate(at)

    def set_job(self, phase: JobPhase, now: float) -> list[AlertChange]:
        """The machine's job phase changed (or was repeated)."""
        if phase is not self._job:
            self._job = phase
            self._job_since = now
        return self._evaluate(now)

    def set_locked(self, locked: bool | None, now: float) -> list[AlertChange]:
        """The access capability says the machine is locked (or not; None: no access control)."""
        if locked != self._locked:
            self._locked = locked
            self._locked_since = now
        return self._evaluate(now)

    def tick(self, now: float) -> list[AlertChange]:
        """Time passed; alerts that depend on time alone change here."""
        return self._evaluate(now)

    # ------------------------------------------------------------------ the table

    def _locked_idle_since(self) -> float | None:
        """Since when the machine has been locked with no job, or None if it is not."""
        if self._job is not JobPhase.NONE:
            return None
        if self._locked is None:
            return self._job_since
        if not self._locked:
            return None
        return max(self._locked_since, self._job_since)

    def _camera_faults(self, now: float) -> dict[AlertKind, str]:
        c = self.config
        quiet = now - (self._last_frame if self._last_frame is not None else self._started)
        if quiet >= c.lost_after_s:
            return {
                AlertKind.CAMERA_LOST: f"no picture from the camera for {quiet:.0f} s; check its "
                "cable and `rpicam-hello --list-cameras`, or the gateway log for its error"
            }
        faults: dict[AlertKind, str] = {}
        last = self._last_frame
        if last is not None and last - self._same_since >= c.frozen_after_s:
            faults[AlertKind.FROZEN] = (
                f"the camera has sent the same picture for {last - self._same_since:.0f} s; "
                "it has probably hung: restart the gateway or reseat the camera"
            )
        if last is not None and self._dark_since is not None:
            dark = last - self._dark_since
            if dark >= c.black_after_s:
                faults[AlertKind.BLACK] = (
                    f"the camera's picture has been black for {dark:.0f} s; "
                    "check the lens cap, the light, and that the camera is not covered"
                )
        return faults

    def _evaluate(self, now: float) -> list[AlertChange]:
        c = self.config
        now = self._now = max(self._now, now)
        want = self._camera_faults(now)
        if want:
            self._healthy_since = None
        elif self._healthy_since is None:
            self._healthy_since = now
        healthy_since = self._healthy_since
        if healthy_since is not None:
            if c.stall_minutes > 0 and self._job is JobPhase.RUNNING:
                last_motion = self._last_motion if self._last_motion is not None else -math.inf
                still = now - max(self._job_since, healthy_since, last_motion)
                if still >= c.stall_minutes * 60:
                    want[AlertKind.STALL] = (
                        f"nothing has moved in view for {_minutes(still)} while the job runs; "
                        "check the machine (stalled, jammed or finished early)"
                    )
            idle_since = self._locked_idle_since()
            if (
                c.motion_while_locked_minutes > 0
                and idle_since is not None
                and self._last_motion is not None
                and self._motion_since is not None
                and now - self._last_motion <= c.motion_gap_s
            ):
                moving = self._last_motion - max(self._motion_since, idle_since, healthy_since)
                if moving >= c.motion_while_locked_minutes * 60:
                    want[AlertKind.MOTION_WHILE_LOCKED] = (
                        f"movement in view for {_minutes(moving)} while the machine is locked "
                        "and idle; someone may be using it without badging in, or check for fire"
                    )
        changes: list[AlertChange] = []
        for kind in AlertKind:
            message = want.get(kind)
            if message is not None and kind not in self._active:
                self._active[kind] = message
                changes.append(AlertChange(kind, True, message))
            elif message is None and kind in self._active:
                del self._active[kind]
                changes.append(AlertChange(kind, False, CLEARED[kind]))
        return changes


def job_phase(event: Event, current: JobPhase) -> JobPhase:
    """The job phase a machine event announces (``current`` if it says nothing about it)."""
    match event:
        case JobStarted() | JobResumed():
            return JobPhase.RUNNING
        case JobPaused():
            return JobPhase.PAUSED
        case JobFinished():
            return JobPhase.NONE
        case MachineStatus(state=state):
            if state in ("running", "printing"):
                return JobPhase.RUNNING
            if state == "paused":
                return JobPhase.PAUSED
            return JobPhase.NONE
    return current
