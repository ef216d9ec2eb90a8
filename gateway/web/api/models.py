"""The typed answers of the HTTP API, so ``/openapi.json`` tells clients what they get.

Each model lists the fields a client can rely on.  They are open (``extra="allow"``):
a capability that adds a field to its status passes it through unchanged, and the
schema says more fields may appear.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- the machine and its current job ----------------------------------------------------


class CurrentJob(Open):
    """The running (or last) job with its progress."""

    id: int
    file: str
    state: str = Field(description="queued | running | paused | completed | cancelled | ...")
    lines_total: int
    lines_done: int
    bytes_total: int
    bytes_done: int
    fraction: float = Field(description="0..1 of the lines done")
    elapsed: float = Field(description="Seconds running, pauses excluded")
    eta_seconds: float | None
    estimated_seconds: float | None
    filament_mm: float | None
    resends: int
    errors: int
    reason: str
    started_at: float | None
    ended_at: float | None
    origin: str = Field(default="", description="Where it was started: kiosk, web, mqtt, cli...")


class MachineStatusOut(Open):
    """The machine now: state, current job, temperatures (Marlin) or position (GRBL)."""

    machine_id: str
    name: str
    kind: str
    state: str = Field(description="disconnected | connecting | idle | running | paused | error")
    firmware: str
    firmware_version: str
    job: CurrentJob | None
    queue: list[str]
    temperatures: dict[str, tuple[float, float | None]] = Field(
        description="Sensor (T0, B, ...) -> [actual, target] in °C"
    )
    position: dict[str, float]
    grbl_state: str
    fault: str
    message: str
    powered: bool


class MachineStateReply(Open):
    state: str


# -- access -----------------------------------------------------------------------------


class SessionNow(Open):
    id: str | None
    member_id: str
    member_name: str
    role: str
    since: str | None
    jobs: int
    idle_seconds: float


class Ending(Open):
    member_name: str
    waiting_for_job: bool
    relay_off_in: float | None


class Lockout(Open):
    reason: str
    by: str


class AccessListFacts(Open):
    members: int
    generated_at: str | None
    source: str | None
    last_error: str | None


class AccessNow(Open):
    """The access capability now: who is badged in, the relay, the lockout."""

    enabled: bool
    running: bool
    machine_id: str
    state: str = Field(description="locked | authorised | in_use | ending | lockout")
    relay_on: bool
    session: SessionNow | None
    ending: Ending | None
    job_running: bool
    lockout: Lockout | None
    interlocks_tripped: list[str]
    last_denial: str | None
    rate_limited_for: float | None
    access_list: AccessListFacts
    readers: list[str]
    pending_inductions: int


class RefreshReply(Open):
    refreshing: bool
    source: str
    message: str | None = None


class BadgePresented(Open):
    presented: bool
    reader: str


class SessionOut(Open):
    id: str
    member_id: str
    member_name: str
    role: str
    machine_id: str
    started_at: float
    ended_at: float | None
    duration: float | None
    end_reason: str | None
    jobs: int
    job_seconds: float
    filament_mm: float
    last_seen: float | None


class UsageOut(Open):
    member_id: str
    member_name: str
    machine_id: str
    sessions: int
    powered_seconds: float
    job_seconds: float
    filament_mm: float


# -- job history ------------------------------------------------------------------------


class JobRecordOut(Open):
    """One past job, with who ran it and how it came in."""

    id: int
    file: str
    state: str
    queued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    seconds: float | None = None
    lines_total: int | None = None
    lines_done: int | None = None
    resends: int | None = None
    errors: int | None = None
    reason: str | None = None
    estimated_seconds: float | None = None
    filament_mm: float | None = None
    origin: str | None = Field(default=None, description="kiosk, web, mqtt, cli, ...")
    member_name: str | None = Field(
        default=None, description="The member badged in when it started, if any"
    )


# -- files --------------------------------------------------------------------------------


class Extents(Open):
    min: dict[str, float] = Field(description="Lowest x, y, z in mm")
    max: dict[str, float] = Field(description="Highest x, y, z in mm")


class FeedRates(Open):
    min: float
    max: float


class FileAnalysis(Open):
    """What a file does, read without running it (``gateway analyze``).

    Fields are optional: a file analysed by an older version may lack newer ones.
    """

    lines: int | None = None
    skipped_lines: int | None = None
    moves: int | None = None
    extents: Extents | None = None
    print_extents: Extents | None = None
    travel_mm: float | None = None
    work_mm: float | None = None
    filament_mm: float | None = None
    filament_g: float | None = None
    layers: int | None = None
    estimated_seconds: float | None = None
    feed_rates: FeedRates | None = None
