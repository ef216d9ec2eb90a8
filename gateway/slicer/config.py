"""Configuration of slicer uploads, member keys and held jobs (``[slicer]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SlicerConfig(BaseModel):
    """How members' own uploads reach the machine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    release: Literal["badge", "session"] = Field(
        default="badge",
        description=(
            "badge: a held job starts only when its member taps start on the touchscreen; "
            "session: it starts at once if its member is badged in at upload time"
        ),
    )
    hold_hours: float = Field(
        default=24.0, gt=0, le=24 * 30, description="Hours a held job waits before it expires"
    )
    pairing_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="Seconds a slicer's pairing request waits"
    )
    build_volume: tuple[float, float, float] | None = Field(
        default=None, description="Usable X, Y, Z in mm; files moving outside it do not 'fit'"
    )
    zeroconf: bool = Field(
        default=True,
        description="Advertise _octoprint._tcp and _http._tcp on the LAN (only when the web "
        "server listens on a non-loopback address)",
    )
    usb_root: Path | None = Field(
        default=None,
        description="Folder where USB sticks are mounted (udisks2: /media/<user>); "
        "in simulation mode a folder whose sub-folders are the sticks",
    )
