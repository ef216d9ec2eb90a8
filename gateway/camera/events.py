"""Events the camera capability publishes on the bus (telemetry sends them to MQTT)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.bus import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraAlert(Event):
    """An alert was raised (``active``) or cleared.

    ``kind``: camera_lost | frozen | black | stall | motion_while_locked.
    """

    topic = "camera_alert"
    kind: str
    message: str
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelapseRendered(Event):
    """A job's timelapse video is ready; ``url`` is its path on the web API."""

    topic = "timelapse"
    job_id: int
    frames: int
    size_bytes: int
    url: str
