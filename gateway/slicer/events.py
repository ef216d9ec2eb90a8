"""Events the slicer capability publishes: its public contract with screens and MQTT."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.bus import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldJobsChanged(Event):
    """A job was held, started, cancelled or expired; ``held`` is how many now wait."""

    topic = "held_jobs"
    held: int
    change: str  # held | started | cancelled | expired
    file: str
    member_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PairingRequested(Event):
    """A slicer asked for a key; a badged-in member approves it on the touchscreen."""

    topic = "pairing_requested"
    app: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UsbChanged(Event):
    """A USB stick was plugged in or pulled out."""

    topic = "usb"
    mounted: bool
    volume: str
