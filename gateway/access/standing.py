"""A member's standing in the access list, for other capabilities.  (Pure.)

Other capabilities ask it through the read-only ``member_standing`` command: the
slicer capability refuses a *suspended* member's key, while a member who is merely
not inducted here, expired or not yet valid may still send jobs (they cannot badge
in, so nothing of theirs starts).  The member is judged by the same
:func:`~gateway.access.members.decide` a badge gets, without the lockout (which is
about the machine, not the member), so the two never disagree.  Only the standing
leaves the capability; a suspension's reason stays with the membership records.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from gateway.access.members import AccessList, Denied, decide

#: ``active``: the list admits the member here now.  ``unknown``: not in the list
#: (or no list yet); the rest as the badge refusals of the same name.
Standing = Literal["active", "suspended", "expired", "not_yet_valid", "not_inducted", "unknown"]

_PROBE = "0" * 64


def standing(access_list: AccessList, member_id: str, machine_id: str, now: datetime) -> Standing:
    """How ``access_list`` regards ``member_id`` on ``machine_id`` at ``now``."""
    member = access_list.by_id(member_id)
    if member is None:
        return "unknown"
    # A list of just this member, badged with a probe: badges do not matter here.
    alone = AccessList([replace(member, badge_hashes=frozenset({_PROBE}))])
    decision = decide(alone, _PROBE, machine_id, now, None)
    if not isinstance(decision, Denied):
        return "active"
    match decision.reason:
        case "suspended" | "expired" | "not_yet_valid" | "not_inducted":
            return decision.reason
        case _:  # unknown_badge, locked_out: not possible without a lockout, by the probe
            return "unknown"
