"""Live re-check: does a new access list still admit the member in session?  (Pure.)

The service asks this whenever a list arrives and once a minute; a
:class:`Revocation` becomes a :class:`~gateway.access.session.MemberRevoked`
input, which ends the session by the job rule.  A member whose level was
lowered to one that needs supervision (:func:`supervised_now`) is not revoked:
their session becomes supervised (``LevelLowered``) and ends only if no
supervisor turns up within the grace.  The member is judged by the
same :func:`~gateway.access.members.decide` a badge gets, so every rule a badge
is refused by (suspension, validity dates, induction, and whatever policy is
added there) ends an open session too.  Refusals that are about the moment
rather than the member (the machine being in use, a rate limit) are not here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from gateway.access.members import AccessList, Decision, Denied, Granted, decide

#: Refusals that end an open session when a new list brings them.  ``locked_out``
#: means a maintainer's session under lockout whose member is no longer a maintainer.
REVOKING_REASONS = frozenset(
    {
        "unknown_badge",
        "suspended",
        "expired",
        "not_yet_valid",
        "not_inducted",
        "locked_out",
        # The access policy's: an induction the list shows as lapsed.  A booking never
        # revokes a session already open, so ``booked`` is not here.
        "induction_lapsed",
    }
)

_PROBE = "0" * 64


@dataclass(frozen=True, slots=True)
class Revocation:
    reason: str  # one of REVOKING_REASONS
    message: str  # for the screen, as the member's badge would be refused


def revocation(
    access_list: AccessList,
    member_id: str,
    member_name: str,
    machine_id: str,
    now: datetime,
    lockout: str | None,
    policy: Callable[[Decision], Decision] | None = None,
) -> Revocation | None:
    """Why ``access_list`` no longer admits ``member_id`` on ``machine_id`` at ``now``,
    or None if it still does.  ``policy``: the machine's access policy applied to the
    decision (:meth:`gateway.access.policy_state.PolicyState.judge`)."""
    decision = _judged(access_list, member_id, machine_id, now, lockout, policy)
    if decision is None:
        return Revocation(
            "unknown_badge",
            f"{member_name}, you are no longer in the access list. Please speak to staff.",
        )
    if isinstance(decision, Denied) and decision.reason in REVOKING_REASONS:
        return Revocation(decision.reason, decision.message)
    return None


def supervised_now(
    access_list: AccessList,
    member_id: str,
    machine_id: str,
    now: datetime,
    lockout: str | None,
    policy: Callable[[Decision], Decision] | None = None,
) -> Granted | None:
    """The member's grant when ``access_list`` admits them only with a supervisor present
    (a level lowered mid-session), else None."""
    decision = _judged(access_list, member_id, machine_id, now, lockout, policy)
    return decision if isinstance(decision, Granted) and decision.supervised else None


def _judged(
    access_list: AccessList,
    member_id: str,
    machine_id: str,
    now: datetime,
    lockout: str | None,
    policy: Callable[[Decision], Decision] | None,
) -> Decision | None:
    """The decision a badge of ``member_id`` would get now; None if not in the list."""
    member = access_list.by_id(member_id)
    if member is None:
        return None
    # On a list of just this member (badges themselves do not matter: a member whose
    # card was replaced is still the same member).
    alone = AccessList([replace(member, badge_hashes=frozenset({_PROBE}))])
    decision = decide(alone, _PROBE, machine_id, now, lockout)
    return policy(decision) if policy is not None else decision
