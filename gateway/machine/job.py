"""The job state machine and its progress arithmetic (pure: no I/O, clock passed in).

::

    queued ──start──▶ running ──pause──▶ paused
       │               │  ▲               │
       │               │  └────resume─────┘
       └─cancel─▶ cancelled ◀──cancel─────┤
                       running ─finish─▶ finishing ─complete─▶ completed
    running/paused/finishing ─fail─▶ failed    running/paused/finishing ─estop─▶ estop

``finishing``: every line was acknowledged but the machine is still working
through its planner (Marlin and GRBL answer ``ok`` when a move is *planned*,
up to ~16 moves ahead).  The job completes only when the controller proves it
stopped moving, so the relay rule ("cut power after the job") waits for it.

Terminal states never change again; a job that failed (an unplugged port, a
firmware halt) is never resumed by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.machine.errors import MachineError
from gateway.machine.progress import ProgressClock


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHING = "finishing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    ESTOP = "estop"


class JobAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    FINISH = "finish"
    CANCEL = "cancel"
    COMPLETE = "complete"
    FAIL = "fail"
    ESTOP = "estop"


#: The machine may be moving for the job: power must stay on.
ACTIVE = frozenset({JobState.RUNNING, JobState.PAUSED, JobState.FINISHING})
TERMINAL = frozenset({JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED, JobState.ESTOP})

_S, _A = JobState, JobAction
TRANSITIONS: dict[tuple[JobState, JobAction], JobState] = {
    (_S.QUEUED, _A.START): _S.RUNNING,
    (_S.QUEUED, _A.CANCEL): _S.CANCELLED,
    (_S.RUNNING, _A.PAUSE): _S.PAUSED,
    (_S.RUNNING, _A.CANCEL): _S.CANCELLED,
    (_S.RUNNING, _A.FINISH): _S.FINISHING,
    (_S.RUNNING, _A.FAIL): _S.FAILED,
    (_S.RUNNING, _A.ESTOP): _S.ESTOP,
    (_S.FINISHING, _A.COMPLETE): _S.COMPLETED,
    (_S.FINISHING, _A.CANCEL): _S.CANCELLED,
    (_S.FINISHING, _A.FAIL): _S.FAILED,
    (_S.FINISHING, _A.ESTOP): _S.ESTOP,
    (_S.PAUSED, _A.RESUME): _S.RUNNING,
    (_S.PAUSED, _A.CANCEL): _S.CANCELLED,
    (_S.PAUSED, _A.FAIL): _S.FAILED,
    (_S.PAUSED, _A.ESTOP): _S.ESTOP,
}


class JobStateError(MachineError):
    """The action does not apply to the job in its current state."""


@dataclass
class Job:
    """One run of one prepared file.  Times: ``*_at`` wall clock, ``mono`` monotonic."""

    id: int
    file: str
    lines_total: int
    bytes_total: int
    estimated_seconds: float | None = None
    filament_mm: float | None = None
    state: JobState = JobState.QUEUED
    lines_sent: int = 0
    lines_done: int = 0
    bytes_done: int = 0
    resends: int = 0
    errors: int = 0
    reason: str = ""
    queued_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    started_mono: float | None = None
    paused_mono: float | None = None
    paused_total: float = 0.0
    ended_mono: float | None = None
    z: float | None = None
    history: list[tuple[JobState, JobState]] = field(default_factory=list)
    #: What the machine has executed (not just accepted); drives fraction and eta.
    progress: ProgressClock | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def apply(self, action: JobAction, *, now: float, mono: float, reason: str = "") -> JobState:
        """Move to the next state or raise :class:`JobStateError`."""
        target = TRANSITIONS.get((self.state, action))
        if target is None:
            raise JobStateError(
                f"cannot {action.value} job {self.id} ({self.file}): it is {self.state.value}"
            )
        match action:
            case JobAction.START:
                self.started_at, self.started_mono = now, mono
            case JobAction.PAUSE:
                self.paused_mono = mono
            case JobAction.RESUME:
                if self.paused_mono is not None:
                    self.paused_total += mono - self.paused_mono
                self.paused_mono = None
            case _:
                pass
        if target in TERMINAL:
            if self.paused_mono is not None:
                self.paused_total += mono - self.paused_mono
                self.paused_mono = None
            self.ended_at, self.ended_mono = now, mono
            self.reason = reason or self.reason
        self.history.append((self.state, target))
        self.state = target
        return target

    def elapsed(self, mono: float) -> float:
        """Seconds spent running (pauses excluded)."""
        if self.started_mono is None:
            return 0.0
        end = self.ended_mono if self.ended_mono is not None else mono
        paused = self.paused_total
        if self.paused_mono is not None:
            paused += end - self.paused_mono
        return max(0.0, end - self.started_mono - paused)

    def fraction(self) -> float:
        if self.state is JobState.COMPLETED:
            return 1.0
        if self.progress is not None:
            return self.progress.fraction()
        if self.lines_total <= 0:
            return 0.0
        return min(1.0, self.lines_done / self.lines_total)

    def eta(self, mono: float) -> float | None:
        """Seconds left.

        With :attr:`progress`, from what the machine executed (see
        :mod:`gateway.machine.progress`).  Otherwise it blends the analysis'
        estimate with what the machine really does: the
        estimate's remaining share is scaled by how fast the done share went
        compared with the estimate.  Without an estimate, the observed line rate.
        """
        if self.finished:
            return 0.0
        if self.progress is not None:
            return self.progress.eta(self.elapsed(mono))
        frac = self.fraction()
        elapsed = self.elapsed(mono)
        if self.estimated_seconds:
            remaining_est = self.estimated_seconds * (1.0 - frac)
            expected_so_far = self.estimated_seconds * frac
            if elapsed > 5.0 and expected_so_far > 1.0:
                return remaining_est * (elapsed / expected_so_far)
            return remaining_est
        if frac <= 0.0 or elapsed <= 0.0:
            return None
        return elapsed * (1.0 - frac) / frac

    def as_dict(self, mono: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "file": self.file,
            "state": self.state.value,
            "lines_total": self.lines_total,
            "lines_done": self.lines_done,
            "lines_executed": (
                self.progress.executed if self.progress is not None else self.lines_done
            ),
            "bytes_total": self.bytes_total,
            "bytes_done": self.bytes_done,
            "fraction": round(self.fraction(), 4),
            "elapsed": round(self.elapsed(mono), 1),
            "eta_seconds": None if (e := self.eta(mono)) is None else round(e, 1),
            "estimated_seconds": self.estimated_seconds,
            "filament_mm": self.filament_mm,
            "resends": self.resends,
            "errors": self.errors,
            "reason": self.reason,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }
