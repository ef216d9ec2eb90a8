"""The space's policy applied to an access decision (pure: the time is passed in).

:func:`~gateway.access.members.decide` answers "is this a member in good
standing, inducted here?".  :func:`judge` then applies this machine's policy,
in the order a member can act on:

1. **Induction expiry** (:mod:`gateway.access.expiry`): a lapsed induction is
   refused with rule ``induction_lapsed`` and the date and reason; within the
   warning period the grant carries a ``notice`` for the screen.
2. **Bookings** (:mod:`gateway.access.bookings`): during a booking in force,
   anyone but the booker (and maintainers) is refused with rule ``booked``;
   the booker's grant says so (``booked``), so they can take the machine
   over from a member still in session there.
3. **Tiers**: the grant carries the member's level, its rank, whether it needs
   supervision and whether the member can supervise; the session state
   machine enforces supervision and lone-working, which depend on who is
   present (:mod:`gateway.access.session`).

Trainers and maintainers are exempt from expiry (they renew others' inductions
and keep the machine going); maintainers are exempt from bookings too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from gateway.access import expiry
from gateway.access.bookings import BookingBook, clock
from gateway.access.members import Decision, Denied, Role
from gateway.access.policy_config import PolicyConfig
from gateway.access.tiers import Tiers


@dataclass(frozen=True, slots=True)
class MachinePolicy:
    """Everything :func:`judge` needs about this machine besides the decision."""

    machine_id: str
    machine_label: str
    config: PolicyConfig
    tiers: Tiers
    bookings: BookingBook
    used_bookings: frozenset[str] = frozenset()
    tz: tzinfo | None = None


def judge(
    decision: Decision,
    policy: MachinePolicy,
    now: datetime,
    last_used: datetime | None,
) -> Decision:
    """The decision after this machine's policy.  ``last_used``: the member's last
    session on this machine recorded by this gateway (for the disuse rule)."""
    if isinstance(decision, Denied):
        return decision
    member, role = decision.member, decision.role
    induction = member.induction_on(policy.machine_id)
    notice = None
    if role < Role.TRAINER:
        verdict = expiry.evaluate(policy.config.expiry, induction, last_used, now)
        if verdict.lapsed:
            return Denied(
                "induction_lapsed",
                expiry.denial(policy.config.expiry, verdict, member.name, policy.machine_label),
                member,
            )
        notice = expiry.notice(policy.config.expiry, verdict, policy.machine_label, now)
    booking = policy.bookings.current(now, policy.used_bookings, policy.config.booking_grace)
    if role < Role.MAINTAINER and booking is not None and booking.member_id != member.id:
        return Denied(
            "booked",
            f"Booked for {booking.member_name} until {clock(booking.end, policy.tz)}. "
            "Please come back then.",
            member,
        )
    tiers = policy.tiers
    level = tiers.level_of(role, induction.level)
    return replace(
        decision,
        level=level,
        rank=tiers.rank(level),
        supervised=tiers.needs_supervision(level) and role < Role.TRAINER,
        can_supervise=tiers.can_supervise(level) or role >= Role.TRAINER,
        notice=notice,
        booked=booking is not None and booking.member_id == member.id,
    )

