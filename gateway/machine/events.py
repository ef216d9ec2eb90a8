"""Events the machine capability publishes on the bus."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.bus import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineStatus(Event):
    """A full snapshot, published whenever something a screen would show changes
    (at most a few times a second).  ``telemetry`` retains it as ``state``."""

    topic = "state"
    machine_id: str
    state: str  # disconnected | connecting | idle | printing | paused | error | estop
    firmware: str
    firmware_version: str = ""
    job: dict[str, Any] | None = None  # JobRecord.as_dict() plus progress, or None
    temperatures: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    position: dict[str, float] = field(default_factory=dict)  # GRBL MPos / WPos
    grbl_state: str = ""
    message: str = ""  # last error or firmware message worth showing


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStarted(Event):
    topic = "job_started"
    job_id: int
    file: str
    lines: int
    estimated_seconds: float | None
    filament_mm: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobProgress(Event):
    """Throttled progress (about once a second)."""

    topic = "job_progress"
    job_id: int
    lines_done: int
    lines_total: int
    bytes_done: int
    bytes_total: int
    fraction: float
    elapsed: float
    eta_seconds: float | None
    z: float | None = None  # current Z height, for layer-change timelapse


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPaused(Event):
    topic = "job_paused"
    job_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResumed(Event):
    topic = "job_resumed"
    job_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFinishing(Event):
    """Every line was accepted; the machine is still executing its planned moves.
    The job is not over (and power must stay on) until :class:`JobFinished`."""

    topic = "job_finishing"
    job_id: int
    file: str
    lines_done: int


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFinished(Event):
    """A job ended: ``outcome`` is completed | cancelled | failed | estop.

    ``completed`` is published only once the machine has stopped moving."""

    topic = "job_finished"
    job_id: int
    file: str
    outcome: str
    lines_done: int
    seconds: float
    resends: int
    errors: int
    reason: str = ""
    filament_mm: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerChanged(Event):
    """Z rose to a new height during a job (timelapse frames are taken here)."""

    job_id: int
    z: float
    layer: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineError(Event):
    topic = "error"
    message: str
    code: int | None = None
    fatal: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class EmergencyStop(Event):
    """E-stop was sent to the controller; the access capability cuts the relay."""

    topic = "estop"
    origin: str
