"""Configuration of resuming interrupted jobs (the ``[resume]`` section).

The lead's :class:`gateway.config.GatewayConfig` holds it as ``resume: ResumeConfig``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ResumeConfig(BaseModel):
    """How progress is kept for a resume, and how the resume preamble moves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(default=True, description="Keep a checkpoint and offer resumes")
    checkpoint_interval_s: float = Field(
        default=0.5,
        ge=0.05,
        le=60.0,
        description="Write the last confirmed line at most this often (and at each new layer)",
    )
    lift_mm: float = Field(
        default=2.0, ge=0.0, le=50.0, description="Printers: raise the nozzle before homing X/Y"
    )
    travel_feed: float = Field(
        default=3000.0, gt=0, le=100_000.0, description="mm/min of the preamble's XY travel"
    )
    z_feed: float = Field(
        default=600.0, gt=0, le=100_000.0, description="mm/min of the preamble's Z moves"
    )
    spin_up_s: float = Field(
        default=4.0, ge=0.0, le=120.0, description="GRBL: dwell after starting the spindle"
    )
    clearance_mm: float = Field(
        default=5.0, ge=0.0, le=200.0, description="GRBL: least travel height above the work"
    )
