"""What the access service does for the policy: grants recorded and pushed, supervision
changes announced, the next booking published, the policy's part of the status, and
the live re-check of the member in session against each new list.

Functions of the running :class:`~gateway.access.service.AccessService`, kept here so the
service module stays about badges, the relay and records.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from gateway.access import session as core
from gateway.access.events import InductionRecorded, NextBooking, SupervisionChanged
from gateway.access.members import Decision, Denied
from gateway.access.presence_feed import Sighting
from gateway.access.recheck import revocation, supervised_now
from gateway.access.store import AccessStore

if TYPE_CHECKING:
    from gateway.access.service import AccessService

log = logging.getLogger(__name__)


def induction_recorded(service: AccessService, effect: core.InductionRecorded) -> None:
    """Count the grant here at once, queue it for the membership system, announce it."""
    machine_id, member_id, trainer_id = service.machine_id, effect.member_id, effect.trainer_id
    log.info(
        "induction on %s: %s by trainer %s at level %s",
        machine_id,
        member_id,
        trainer_id,
        effect.level or "default",
    )
    service.policy.grant(member_id, effect.level, datetime.now(UTC))
    service._effective = service._list.with_inductions(machine_id, service.policy.grants)
    service._write(
        partial(
            AccessStore.record_induction,
            trainer_id=trainer_id,
            member_id=member_id,
            at=datetime.now(UTC).timestamp(),
            level=effect.level,
        )
    )
    service._pusher.wake()
    trainer, member = service._list.by_id(trainer_id), service._list.by_id(member_id)
    service.bus.publish(
        InductionRecorded(
            trainer_id=trainer_id,
            member_id=member_id,
            machine_id=machine_id,
            level=effect.level,
            trainer_name=trainer.name if trainer else None,
            member_name=member.name if member else None,
        )
    )


def note_booked_supervisor(service: AccessService, decision: Decision, now: float) -> None:
    """Someone refused only because the machine is booked is still at it: if they can
    supervise, they count for the booker (a supervised member's booking needs them)."""
    if not isinstance(decision, Denied) or decision.reason != "booked" or not decision.member:
        return
    member = decision.member
    if service.policy.can_supervise(member, datetime.now(UTC)):
        until = now + service.config.policy.supervision_window
        sighting = Sighting(member.id, member.name, True, until, "here")
        service._feed(core.PresenceSeen(sighting, now))


def supervision_changed(service: AccessService, effect: core.SupervisionChanged) -> None:
    log.info("supervision of %s: %s", effect.member_id, effect.message)
    event = SupervisionChanged(
        member_id=effect.member_id,
        supervisor_id=effect.supervisor_id,
        supervisor_name=effect.supervisor_name,
        message=effect.message,
        ends_in=effect.ends_in,
    )
    service._supervision = event
    service.bus.publish(event)


def publish_next_booking(service: AccessService) -> None:
    """Publish :class:`NextBooking` when the booking in force or the next one changes."""
    now = datetime.now(UTC)
    b = service.policy.upcoming(now)
    event = NextBooking(
        machine_id=service.machine_id,
        booking_id=b.id if b else None,
        member_name=b.member_name if b else None,
        start=b.start.isoformat() if b else None,
        end=b.end.isoformat() if b else None,
        in_force=b is not None and b.covers(now),
    )
    last = service._next_booking
    if last is None or (last.booking_id, last.in_force, last.end) != (
        event.booking_id,
        event.in_force,
        event.end,
    ):
        service._next_booking = event
        service.bus.publish(event)


def status(service: AccessService, now: float) -> dict[str, Any]:
    """The policy's part of :meth:`AccessService.status`, for screens."""
    snap = service.machine.snapshot
    session = snap.session
    trainer = snap.trainer
    lost = snap.supervision_lost_at
    policy = service.config.policy
    wall = datetime.now(UTC)
    booking = service.policy.next_booking(wall)
    return {
        "level": session.level if session else None,
        "supervised": bool(session and session.supervised),
        "supervisor": session.supervisor_name if session else None,
        "supervision_ends_in": None
        if lost is None
        else round(max(0.0, lost + policy.supervision_grace - now), 1),
        "supervision_message": service._supervision.message if service._supervision else None,
        "notice": service._notice,
        "next_booking": booking,
        "booking_note": booking_note(booking, session.member_id if session else None, wall),
        "levels": list(service.policy.tiers.names),
        "grant_window": None
        if trainer is None or session is None or session.member_id != trainer.trainer_id
        else {
            "level": trainer.level,
            "seconds_left": round(max(0.0, trainer.until - now), 1),
        },
        "lone_working": policy.lone_working,
    }


#: How long before another member's booking the member in session is told of it.
BOOKING_WARNING = timedelta(minutes=30)


def booking_note(
    booking: dict[str, Any] | None, member_id: str | None, now: datetime
) -> str | None:
    """What the member in session should know of someone else's booking: that it has
    started (the booker may take the machine over), or that it starts soon."""
    if booking is None or member_id is None or booking["member_id"] == member_id:
        return None
    who, start, end = booking["member_name"], booking["start_clock"], booking["end_clock"]
    if booking["in_force"]:
        return (
            f"{who}'s booking has started ({start}\u2013{end}): "
            "the machine is theirs when they badge in."
        )
    if datetime.fromisoformat(booking["start"]) - now <= BOOKING_WARNING:
        return f"{who} has booked this machine from {start}: finish before then."
    return None


def mark_confirmed(store: AccessStore, *, machine_id: str, members: set[str]) -> None:
    """Inductions granted here that the membership system's list now shows (store thread)."""
    ids = [
        i.id
        for i in store.unsynced_inductions()
        if i.machine_id == machine_id and i.member_id in members
    ]
    store.mark_inductions_synced(ids)


# -- live re-check -------------------------------------------------------------------------


def recheck(service: AccessService) -> None:
    """End the session of a member the access list no longer admits, by the job rule;
    make it supervised if the list lowered their level to one that needs it."""
    snap = service.machine.snapshot
    active = snap.session or (snap.previous if snap.state is core.State.ENDING else None)
    if active is None:
        return
    now = datetime.now(UTC)
    lockout = snap.lockout.reason if snap.lockout else None

    def policy(decision: Decision) -> Decision:
        return service.policy.judge(decision, now)

    members, member_id = service._effective, active.member_id
    revoked = revocation(
        members, member_id, active.member_name, service.machine_id, now, lockout, policy=policy
    )
    if revoked is None:
        session = snap.session
        if session is None or session.member_id != member_id or session.supervised:
            return
        grant = supervised_now(members, member_id, service.machine_id, now, lockout, policy=policy)
        if grant is not None:
            log.warning("%s's level is now %s: it needs a supervisor", member_id, grant.level)
            service._feed(core.LevelLowered(member_id, grant.level, time.monotonic()))
        return
    reason, message = revoked.reason, revoked.message
    if snap.session is None and snap.grace_until is None:
        return  # their job finishes under its rule; nothing more to end
    log.warning(
        "the new access list no longer admits %s (%s): ending their session", member_id, reason
    )
    service._last_denial = message
    service._write(
        partial(AccessStore.record_denial, reason=reason, at=time.time(), member_id=member_id)
    )
    service._feed(core.MemberRevoked(member_id, reason, message, time.monotonic()))
