"""The typed answers of ``/api/slicer/*``: members' held jobs, slicer keys, pairings,
the library's owners and USB sticks, so ``/openapi.json`` tells clients what they get.

Open models (``extra="allow"``) as in :mod:`gateway.web.api.models`: a field the slicer
capability adds later passes through, and the schema says more may appear.
"""

from __future__ import annotations

from pydantic import Field

from gateway.web.api.models import CurrentJob, Extents, Open

# -- held jobs ------------------------------------------------------------------------------


class HeldJobOut(Open):
    """A job sent by a member, waiting for them to badge in and start it (or its end)."""

    id: int
    file: str = Field(description="The file's name in the machine's library")
    display_name: str = Field(description="The file's name as the member wrote it")
    member_id: str
    member_name: str
    held_for: str = Field(description="The member's short name for the screen, e.g. 'Ada L.'")
    door: str = Field(description="How it came in: slicer | web | usb | cli")
    uploaded_at: float
    expires_at: float = Field(description="When it stops waiting and expires (Unix time)")
    state: str = Field(description="held | started | cancelled | expired")
    released_by: str | None = Field(description="The member who started it, if started")
    ended_at: float | None


class HeldJobView(HeldJobOut):
    """A held job with what its file does, for the touchscreen's list."""

    estimated_seconds: float | None
    filament_mm: float | None
    extents: Extents | None = Field(description="Where the file moves to, travel included")
    print_extents: Extents | None = Field(description="Where it prints or cuts")
    fits: bool | None = Field(
        description="Whether every position lies in [slicer] build_volume (null: unknown)"
    )


class HeldList(Open):
    held: list[HeldJobView]
    session_member: str | None = Field(description="The badged-in member's id, if any")


class MyHeld(Open):
    """A member's own held jobs (the key's member)."""

    member_id: str
    held: list[HeldJobView]


class HoldOutcome(HeldJobOut):
    """A held job after a start tap or a hold: ``started`` with the machine's job, or
    still waiting for its member."""

    started: bool
    job: CurrentJob | None = Field(default=None, description="The machine's job, once started")


# -- keys and pairings ----------------------------------------------------------------------


class MemberKeyOut(Open):
    """A member's slicer key's record; the secret itself is never kept."""

    member_id: str
    member_name: str
    label: str = Field(description="kiosk, admin, or the paired app's name (e.g. Cura)")
    created_at: float
    created_by: str
    last_used_at: float | None


class NewMemberKey(MemberKeyOut):
    key: str = Field(description="The secret: shown in this answer only")


class KeyList(Open):
    keys: list[MemberKeyOut]


class MyKey(Open):
    """The badged-in member's new key, once, as text and as a QR code."""

    key: str = Field(description="The secret: shown in this answer only")
    member_name: str
    qr_svg: str = Field(description="The key as an SVG QR code")


class KeysRevoked(Open):
    member_id: str
    revoked: int = Field(description="How many keys stopped working")


class PairingOut(Open):
    token: str
    app: str = Field(description="The slicer's name as it asked, e.g. Cura")
    waiting: int = Field(description="Seconds since it asked")


class PairingList(Open):
    pairings: list[PairingOut]


class PairingDecided(Open):
    app: str
    approved: bool
    member_id: str | None = Field(default=None, description="Whose key the app received")


# -- usage, owners, USB sticks ----------------------------------------------------------------


class SlicerUsageRow(Open):
    """One member's jobs through one door."""

    member_id: str
    member_name: str
    door: str
    jobs_held: int
    jobs_started: int
    jobs_expired: int
    jobs_cancelled: int
    last_upload_at: float | None


class HeldJobRecord(HeldJobOut):
    machine_job_id: int | None = Field(description="The machine's job id, once started")


class SlicerUsage(Open):
    usage: list[SlicerUsageRow]
    jobs: list[HeldJobRecord] = Field(description="Held jobs, newest first")


class FileOwner(Open):
    display_name: str
    member_id: str
    member_name: str
    door: str
    uploaded_at: float


class FileOwners(Open):
    owners: dict[str, FileOwner] = Field(description="Library file name -> who put it there")


class StickFileOut(Open):
    volume: str
    path: str = Field(description="Relative to the stick")
    name: str
    size: int


class UsbFiles(Open):
    configured: bool = Field(description="Whether USB sticks are set up ([slicer] usb_root)")
    mounted: bool
    volumes: list[str] = Field(default_factory=list)
    files: list[StickFileOut]


class StickSimulated(Open):
    plugged: str | None = Field(default=None, description="The stick plugged in")
    unplugged: bool | None = Field(default=None, description="Whether a stick was pulled out")
