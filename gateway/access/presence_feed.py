"""Who is around: members seen at this machine, at nearby gateways, or by a door reader
(pure: times are the service's monotonic seconds).

Supervision and the lone-working rule both ask "who else is here?".  Each
sighting holds for a time-to-live: a badge at this machine or a session at a
configured nearby gateway for ``supervision_window``, a door reader's "in" for
``space_presence``.  An explicit "out" (a door reader, or a supervisor
badging off at this machine) removes the member at once.

Sightings from outside arrive as the ``presence`` command (over MQTT
``<prefix>/cmd/presence`` through the telemetry capability, or the admin API)
with a body :func:`parse_announcement` checks::

    {"member_id": "m-17", "event": "in" | "out", "source": "door" | "<gateway id>"}

Another gateway's ``event/session_started`` payload is accepted as the
command's ``args`` as it is (its ``type`` names the event, its ``machine_id``
the source), so a small relay (Node-RED, a script) only wraps it:
``{"request_id": <its event_id>, "args": <the payload>}``.  A session ending
there is not the member leaving the space; their sighting simply runs out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.access.errors import AccessError


class PresenceError(AccessError):
    """A presence announcement is malformed or from a source this machine ignores."""


@dataclass(frozen=True, slots=True)
class Sighting:
    member_id: str
    name: str
    can_supervise: bool
    until: float
    where: str


@dataclass(frozen=True, slots=True)
class Presence:
    """Current sightings by member id; immutable, each change returns a new one."""

    seen: Mapping[str, Sighting] = field(default_factory=dict)

    def add(self, s: Sighting) -> Presence:
        old = self.seen.get(s.member_id)
        if old is not None and old.until > s.until and old.can_supervise >= s.can_supervise:
            return self
        return Presence({**self.seen, s.member_id: s})

    def remove(self, member_id: str) -> Presence:
        if member_id not in self.seen:
            return self
        return Presence({k: v for k, v in self.seen.items() if k != member_id})

    def prune(self, at: float, keep: str | None = None) -> Presence:
        """Drop sightings that ran out, except ``keep`` (a supervisor at work)."""
        if all(s.until > at or k == keep for k, s in self.seen.items()):
            return self
        return Presence({k: v for k, v in self.seen.items() if v.until > at or k == keep})

    def supervisor(self, at: float, excluding: str) -> Sighting | None:
        """Someone present who can supervise, longest-staying first."""
        found = [
            s
            for s in self.seen.values()
            if s.can_supervise and s.until > at and s.member_id != excluding
        ]
        return max(found, key=lambda s: (s.until, s.member_id)) if found else None

    def others(self, at: float, excluding: str) -> int:
        return sum(1 for s in self.seen.values() if s.until > at and s.member_id != excluding)

    def present(self, member_id: str, at: float) -> bool:
        s = self.seen.get(member_id)
        return s is not None and s.until > at


@dataclass(frozen=True, slots=True)
class Announcement:
    member_id: str
    event: Literal["in", "out"]
    source: str


_EVENTS: dict[str, Literal["in", "out"]] = {
    "in": "in",
    "out": "out",
    "session_started": "in",
    "session_ended": "out",
}


def parse_announcement(args: Mapping[str, Any]) -> Announcement:
    """Validate a ``presence`` command's arguments."""
    member_id = args.get("member_id")
    if not isinstance(member_id, str) or not member_id.strip() or len(member_id) > 64:
        raise PresenceError("presence needs member_id (the member's id in the access list)")
    event = args.get("event", args.get("type"))
    if not isinstance(event, str) or event not in _EVENTS:
        raise PresenceError(
            "presence needs event = 'in' or 'out' (or a gateway's 'session_started' / "
            "'session_ended')"
        )
    source = args.get("source", args.get("machine_id"))
    if not isinstance(source, str) or not source.strip() or len(source) > 64:
        raise PresenceError("presence needs source: 'door' or the announcing gateway's machine id")
    return Announcement(member_id.strip(), _EVENTS[event], source.strip())


def session_event(args: Mapping[str, Any]) -> bool:
    """Is this another gateway's session event (rather than a door's in/out)?"""
    return args.get("event", args.get("type")) in ("session_started", "session_ended")
