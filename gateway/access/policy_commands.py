"""The access policy's commands: presence, grant levels, bookings, lapsing inductions.

They are registered on the command router like the access service's own, so
they answer the web API, MQTT (``<prefix>/cmd/<name>`` through the telemetry
capability) and the CLI alike:

- ``presence`` ``{member_id, event: in|out, source}``: a door reader or a nearby
  gateway says who is around (:mod:`gateway.access.presence_feed`).
- ``choose_grant_level`` ``{level}``: the trainer in session picks the level
  their next induction grants (the kiosk's level picker).
- ``book`` ``{member_id, start, end}``, ``cancel_booking`` ``{id}``, ``bookings``.
- ``lapsing`` ``{days}``: members whose induction here lapses within ``days``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from gateway.access import session as core
from gateway.access.bookings import BookingError, in_range
from gateway.access.presence_feed import (
    PresenceError,
    Sighting,
    parse_announcement,
    session_event,
)
from gateway.access.store import AccessStore
from gateway.commands import CommandError, CommandRequest, CommandRouter

if TYPE_CHECKING:
    from gateway.access.service import AccessService

MAX_LAPSING_DAYS = 3650


def _when(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise CommandError(
            "bad_args", f"{name} must be an ISO 8601 date-time, e.g. 2026-12-01T13:00"
        )
    try:
        parsed = datetime.fromisoformat(value)
        parsed = parsed if parsed.tzinfo else parsed.astimezone()
    except (ValueError, OverflowError):
        raise CommandError(
            "bad_args", f"{name} {value[:40]!r} is not an ISO 8601 date-time"
        ) from None
    if not in_range(parsed):
        raise CommandError("bad_args", f"{name} is out of range (years 1970 to 9000)")
    return parsed


def register_policy_commands(service: AccessService, commands: CommandRouter) -> None:
    async def presence(request: CommandRequest) -> dict[str, Any]:
        service._require_running()
        try:
            said = parse_announcement(request.args)
        except PresenceError as err:
            raise CommandError("bad_args", str(err)) from None
        cfg = service.config.policy
        gateway = said.source != "door"
        if gateway and said.source not in cfg.nearby_gateways:
            raise CommandError(
                "unknown_source",
                f"presence from {said.source!r} is ignored: add it to "
                "access.policy.nearby_gateways, or send source = 'door'",
            )
        now = time.monotonic()
        if said.event == "out":
            if gateway and session_event(request.args):
                return {"noted": False, "why": "a session ending elsewhere is not leaving"}
            service._feed(core.PresenceLeft(said.member_id, now))
            return {"noted": True, "member_id": said.member_id, "present": False}
        member = service._effective.by_id(said.member_id)
        if member is None:
            raise CommandError(
                "unknown_member", f"member {said.member_id!r} is not in the access list"
            )
        supervises = service.policy.can_supervise(member, datetime.now(UTC))
        ttl = cfg.supervision_window if gateway else cfg.space_presence
        sighting = Sighting(member.id, member.name, supervises, now + ttl, said.source)
        service._feed(core.PresenceSeen(sighting, now))
        return {"noted": True, "member_id": member.id, "present": True, "can_supervise": supervises}

    async def choose_grant_level(request: CommandRequest) -> dict[str, Any]:
        service._require_running()
        try:
            level, rank, supervised = service.policy.level_choice(str(request.args.get("level")))
        except ValueError as err:
            raise CommandError("bad_args", str(err)) from None
        snap = service.machine.snapshot
        trainer = snap.trainer
        if trainer is None or snap.session is None or snap.session.member_id != trainer.trainer_id:
            raise CommandError(
                "no_trainer", "A trainer must badge in first; then pick the level to grant."
            )
        service._feed(core.GrantLevelChosen(level, rank, supervised, time.monotonic()))
        return service.status()

    async def book(request: CommandRequest) -> dict[str, Any]:
        service._require_running()
        member_id = request.args.get("member_id")
        if not isinstance(member_id, str) or not member_id:
            raise CommandError("bad_args", "book needs member_id, start and end")
        start = _when(request.args.get("start"), "start")
        end = _when(request.args.get("end"), "end")
        made_by = f"{request.origin}:{request.actor or 'admin'}"
        try:
            booking = service.policy.new_booking(service._effective, member_id, start, end, made_by)
        except BookingError as err:
            raise CommandError("booking_conflict", str(err)) from None
        service.policy.add_local(booking)
        service._write(partial(AccessStore.save_booking, booking=booking, made_by=made_by))
        service._publish_next_booking()
        return {"booking": booking.as_dict()}

    async def cancel_booking(request: CommandRequest) -> dict[str, Any]:
        service._require_running()
        booking_id = str(request.args.get("id") or "")
        if not service.policy.remove_local(booking_id):
            raise CommandError(
                "not_found",
                f"no booking {booking_id!r} made here; bookings from the access list are "
                "changed in the membership system",
            )
        service._write(partial(AccessStore.delete_booking, booking_id=booking_id))
        service._publish_next_booking()
        return {"cancelled": booking_id}

    async def bookings(request: CommandRequest) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "bookings": [b.as_dict() for b in service.policy.all() if b.end > now],
            "next": service.policy.next_booking(now),
            "set_aside": service.policy.ignored_bookings,
        }

    async def lapsing(request: CommandRequest) -> dict[str, Any]:
        raw = request.args.get("days", 30)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_LAPSING_DAYS:
            raise CommandError(
                "bad_args", f"days must be a whole number from 0 to {MAX_LAPSING_DAYS}"
            )
        days = raw
        now = datetime.now(UTC)
        rows = await asyncio.to_thread(service.policy.lapsing, service._effective, now, days)
        return {"rule": service.config.policy.expiry.rule, "days": days, "members": rows}

    for name, handler in (
        ("presence", presence),
        ("choose_grant_level", choose_grant_level),
        ("book", book),
        ("cancel_booking", cancel_booking),
        ("bookings", bookings),
        ("lapsing", lapsing),
    ):
        commands.register(name, handler)
