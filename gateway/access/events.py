"""Events the access capability publishes (and the one it receives) on the bus.

Events with a ``topic`` go out on MQTT as ``event/<topic>`` and to the web UI's
live stream, so their fields stay JSON-friendly and never include a badge UID
or hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.bus import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(Event):
    topic = "session_started"
    session_id: str
    member_id: str
    member_name: str
    role: str
    inducted_by: str | None = None
    level: str | None = None
    supervisor_id: str | None = None
    supervisor_name: str | None = None
    notice: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded(Event):
    """``reason``: badge_out | idle_timeout | max_session | lockout | interlock | estop |
    shutdown | takeover | handover (to a supervised member) | booked (the member whose
    booking had started took over) | supervisor_left |
    revoked (a new access list no longer admits the member) | admin_cut.  ``duration`` is
    in seconds; ``message`` says why for the screen when the reason alone does not."""

    topic = "session_ended"
    session_id: str
    member_id: str
    reason: str
    duration: float
    jobs: int
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessDenied(Event):
    """A badge was refused; ``reason`` as in :data:`gateway.access.session.RefusalReason`,
    or ``rate_limited``."""

    topic = "access_denied"
    reason: str
    message: str
    member_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayChanged(Event):
    topic = "relay"
    on: bool
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LockoutChanged(Event):
    topic = "lockout"
    active: bool
    reason: str | None
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InductionRecorded(Event):
    """A trainer granted an induction at the machine.  It reaches the membership system
    over MQTT (``event/induction``, from the telemetry outbox) and, if configured, the
    grant webhook; ``level`` is None for the machine's default level."""

    topic = "induction"
    trainer_id: str
    member_id: str
    machine_id: str
    level: str | None = None
    trainer_name: str | None = None
    member_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InductionsPending(Event):
    """The inductions granted here that no access list has shown yet, re-sent at start-up
    and every ``access.policy.grants.resend_interval`` while there are any, so a
    membership system that missed an ``induction`` event still gets them.  Each entry:
    ``id``, ``trainer_id``, ``member_id``, ``machine_id``, ``level``, ``at``."""

    topic = "inductions_pending"
    machine_id: str
    inductions: tuple[dict[str, object], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisionChanged(Event):
    """A supervised session's supervisor changed or left (``ends_in`` s of grace left)."""

    topic = "supervision"
    member_id: str
    supervisor_id: str | None
    supervisor_name: str | None
    message: str
    ends_in: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NextBooking(Event):
    """The booking in force or the next one on this machine changed (all None: none)."""

    topic = "next_booking"
    machine_id: str
    booking_id: str | None
    member_name: str | None
    start: str | None
    end: str | None
    in_force: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessListUpdated(Event):
    """A source delivered a list: applied (``ok``) or refused with ``error``."""

    topic = "access_list"
    source: str
    members: int
    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessState(Event):
    """A full snapshot for screens, published whenever any of it changes."""

    state: str  # locked | authorised | in_use | ending | lockout
    relay_on: bool
    member_id: str | None
    member_name: str | None
    job_running: bool
    lockout_reason: str | None
    interlocks_tripped: tuple[str, ...]
    last_denial: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessListReceived(Event):
    """The raw access list, from a retained MQTT topic (published by telemetry).

    The MQTT topic it came from is ``mqtt_topic``: a field named ``topic`` would
    shadow :attr:`Event.topic` and send the list (raw UIDs and all) back out as an
    event.  It has no ``topic`` of its own, so it never leaves the daemon.
    """

    payload: bytes
    mqtt_topic: str
