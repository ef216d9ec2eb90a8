"""Who may open a session now (pure): the refusals a granted badge can still meet.

Shared by the ways a session opens in :mod:`gateway.access.session` (a badge on a
free machine, a booker taking over): an interlock open or a lockout, and the
company a session needs (a supervisor for a supervised level, someone else in
the space under lone working).
"""

from __future__ import annotations

from dataclasses import replace

from gateway.access.members import Granted, Member, Role
from gateway.access.presence_feed import Sighting
from gateway.access.session_types import (
    Buzz,
    RefusalReason,
    Refused,
    Result,
    SessionPolicy,
    ShowIndicator,
    Snapshot,
)


def refuse(
    s: Snapshot, reason: RefusalReason, message: str, member_id: str | None, at: float
) -> Result:
    """A badge refused: counted for the rate limit, shown and buzzed."""
    return replace(s, denials=(*s.denials, at)), [
        Refused(reason, message, member_id),
        ShowIndicator("denied"),
        Buzz("denied"),
    ]


def free_for_new_session(s: Snapshot, member: Member, role: Role, at: float) -> Result | None:
    """A refusal if nobody new may start now, else None."""
    if s.tripped:
        names = ", ".join(sorted(s.tripped))
        return refuse(s, "interlock", f"Close the {names} before starting.", member.id, at)
    if s.lockout is not None and role < Role.MAINTAINER:
        return refuse(
            s,
            "locked_out",
            f"Machine locked out: {s.lockout.reason}. Only a maintainer can use it.",
            member.id,
            at,
        )
    return None


def needed_company(
    s: Snapshot, g: Granted, at: float, policy: SessionPolicy
) -> tuple[Sighting | None, Result | None]:
    """Who a new session needs around: the supervisor a supervised member must have
    present, and someone else in the space under lone working.  (supervisor, None),
    or (None, the refusal)."""
    member = g.member
    supervisor = None
    if g.supervised:
        supervisor = s.presence.supervisor(at, excluding=member.id)
        if supervisor is None:
            return None, refuse(
                s,
                "needs_supervision",
                f"{member.name}, your {g.level or 'supervised'} induction needs a supervisor: "
                "a member with a higher induction must badge in here first.",
                member.id,
                at,
            )
    if policy.lone_working and s.presence.others(at, excluding=member.id) < 1:
        return None, refuse(
            s,
            "lone_working",
            f"{member.name}, this machine needs two members in the space. "
            "Ask someone to badge in at the door or here first.",
            member.id,
            at,
        )
    return supervisor, None
