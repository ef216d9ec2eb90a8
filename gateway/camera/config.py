"""Configuration of the camera capability (the ``[camera]`` section).

The lead's :class:`gateway.config.GatewayConfig` holds it as ``camera: CameraConfig``;
subsections are ``[camera.timelapse]`` and ``[camera.alerts]``.  Every value is
validated once at start-up and the models are frozen.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimelapseConfig(_Section):
    """Per-job timelapse: frames taken while a job runs, an MP4 made after it ends."""

    mode: Literal["layer", "interval", "off"] = Field(
        default="layer",
        description="layer: a frame at each layer change (printers); "
        "interval: a frame every interval_s seconds (lasers, CNC); off: none",
    )
    interval_s: float = Field(default=10.0, ge=0.2, le=3600.0)
    render: bool = Field(default=True, description="Make an MP4 with ffmpeg when the job ends")
    render_fps: int = Field(default=24, ge=1, le=60, description="Frame rate of the MP4")
    render_timeout_s: float = Field(default=900.0, gt=0, description="Give ffmpeg up to this")
    keep_frames: bool = Field(
        default=False, description="Keep the JPEG frames after the MP4 is made (uses more disk)"
    )
    max_disk_mb: float = Field(
        default=2000.0, gt=0, description="All timelapses together; the oldest go first"
    )
    max_age_days: float = Field(default=30.0, gt=0, description="Timelapses older are removed")


class AlertsConfig(_Section):
    """Camera health and what the camera sees, checked on a small grey thumbnail."""

    enabled: bool = True
    sample_interval_s: float = Field(
        default=1.0, ge=0.05, le=60.0, description="How often a frame is measured"
    )
    lost_after_s: float = Field(default=10.0, gt=0, description="No frames this long: lost")
    frozen_after_s: float = Field(
        default=15.0, gt=0, description="Identical frames this long: frozen"
    )
    black_threshold: float = Field(
        default=12.0, ge=0, le=255, description="Mean luma (0-255) below which a frame is black"
    )
    black_after_s: float = Field(default=10.0, gt=0, description="Black this long: alert")
    pixel_threshold: int = Field(
        default=24, ge=1, le=254, description="Luma change that counts a thumbnail pixel as moved"
    )
    motion_threshold: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description="Fraction of thumbnail pixels that must change between samples for motion",
    )
    stall_minutes: float = Field(
        default=10.0, ge=0, description="No motion this long while a job runs; 0 turns it off"
    )
    motion_while_locked_minutes: float = Field(
        default=2.0,
        ge=0,
        description="Motion this long while the machine is locked and idle; 0 turns it off",
    )
    motion_gap_s: float = Field(
        default=30.0, gt=0, description="A pause in motion longer than this ends an episode"
    )


class CameraConfig(_Section):
    """The camera beside the machine: live view, snapshots, timelapses and alerts."""

    enabled: bool = False
    backend: Literal["picamera2", "synthetic"] = Field(
        default="picamera2",
        description="picamera2: the Pi's CSI camera or a USB webcam libcamera supports; "
        "synthetic: a moving test pattern (simulation, tests)",
    )
    camera_num: int = Field(
        default=0, ge=0, le=7, description="Index in `rpicam-hello --list-cameras`"
    )
    width: int = Field(default=640, ge=160, le=1920)
    height: int = Field(default=480, ge=120, le=1080)
    fps: float = Field(default=15.0, ge=1.0, le=30.0)
    jpeg_quality: int = Field(default=80, ge=10, le=95)
    hflip: bool = False
    vflip: bool = False
    max_viewers: int = Field(
        default=8, ge=1, le=64, description="Live streams at once (Wi-Fi bandwidth is the limit)"
    )
    reopen_after_s: float = Field(
        default=60.0, gt=0, description="Reopen the camera after this long without a frame"
    )
    max_snapshots: int = Field(default=100, ge=1, le=100_000)
    timelapse: TimelapseConfig = TimelapseConfig()
    alerts: AlertsConfig = AlertsConfig()

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even (the camera's encoder works on pairs of pixels)")
        return value

    @model_validator(mode="after")
    def _reopen_after_lost(self) -> CameraConfig:
        if self.reopen_after_s < self.alerts.lost_after_s:
            raise ValueError(
                "reopen_after_s must be at least alerts.lost_after_s, "
                "so the camera_lost alert is raised before the camera is reopened"
            )
        return self
