"""Supervision and lone working during a session (pure: times are passed in).

Called by :mod:`gateway.access.session` whenever presence changes or time passes.
Each function returns the next snapshot, the effects, and whether the session must
now end; the session module ends it by the job rule (``supervisor_left`` or
``alone``), so this module never decides what happens to the relay.

- :func:`watch`: a supervised session keeps a supervisor; once one is supervising,
  only their leaving (badging off here, announced out) ends it.  Another
  supervisor present or arriving takes over.  With none, the member is warned
  and the session ends ``supervision_grace`` seconds later.
- :func:`company`: under lone working, a member left alone in the space (the
  last other sighting left or ran out) is warned likewise, and the warning is
  withdrawn when someone turns up.
"""

from __future__ import annotations

import math
from dataclasses import replace

from gateway.access.session_types import (
    Buzz,
    Effect,
    SessionPolicy,
    Snapshot,
    SupervisionChanged,
)

#: The next snapshot, its effects, and whether the session must end now.
Verdict = tuple[Snapshot, list[Effect], bool]


def watch(
    s: Snapshot,
    at: float,
    policy: SessionPolicy,
    prefer: str | None = None,
    why: str | None = None,
) -> Verdict:
    """Keep a supervised session's supervisor current after presence changed.

    ``prefer``: a member who just badged here and takes over supervising.  ``why``:
    the warning's first sentence when there is none (by default: who left)."""
    session = s.session
    if session is None or not session.supervised:
        return s, [], False
    if prefer is not None:
        found = s.presence.seen.get(prefer)
    elif session.supervisor_id is not None and session.supervisor_id in s.presence.seen:
        return s, [], False  # still here: once supervising, only leaving ends it
    else:
        found = s.presence.supervisor(at, excluding=session.member_id)
    if found is not None:
        if found.member_id == session.supervisor_id and s.supervision_lost_at is None:
            return s, [], False
        watched = replace(session, supervisor_id=found.member_id, supervisor_name=found.name)
        return (
            replace(s, session=watched, supervision_lost_at=None),
            [
                SupervisionChanged(
                    session.member_id,
                    found.member_id,
                    found.name,
                    f"{found.name} is supervising.",
                    None,
                )
            ],
            False,
        )
    if s.supervision_lost_at is not None:
        return s, [], False
    gone = session.supervisor_name or "Your supervisor"
    grace = policy.supervision_grace
    if grace <= 0:
        return s, [], True
    after = " (a running job finishes first)" if s.job_running else ""
    message = (
        f"{why or gone + ' has left.'} Without a supervisor your session ends in "
        f"{math.ceil(grace)} s{after}. Ask someone with a higher induction to badge in."
    )
    alone = replace(session, supervisor_id=None, supervisor_name=None)
    return (
        replace(s, session=alone, supervision_lost_at=at),
        [SupervisionChanged(session.member_id, None, None, message, grace), Buzz("warning")],
        False,
    )


def lowered(
    s: Snapshot, member_id: str, level: str | None, at: float, policy: SessionPolicy
) -> Verdict:
    """The member in session now holds a ``level`` that needs a supervisor: the session
    becomes supervised, and is watched as if its supervisor had just left (kept with a
    supervisor present, else warned and ended ``supervision_grace`` seconds later)."""
    session = s.session
    if session is None or session.member_id != member_id or session.supervised:
        return s, [], False
    watched = replace(
        session, level=level, supervised=True, can_supervise=False, supervisor_id=None
    )
    why = f"Your induction is now {level or 'supervised'}: it needs a supervisor present."
    return watch(replace(s, session=watched, supervision_lost_at=None), at, policy, why=why)


def company(s: Snapshot, at: float, policy: SessionPolicy) -> Verdict:
    """Lone working during a session: warn when the member is left alone in the space,
    and ask for the end (``alone``) ``supervision_grace`` seconds later."""
    session = s.session
    if session is None or not policy.lone_working:
        return s, [], False
    alone = s.presence.others(at, excluding=session.member_id) < 1
    if not alone:
        if s.alone_since is None:
            return s, [], False
        back = SupervisionChanged(
            session.member_id,
            session.supervisor_id,
            session.supervisor_name,
            "Someone else is in the space again.",
            None,
        )
        return replace(s, alone_since=None), [back], False
    grace = policy.supervision_grace
    if s.alone_since is not None:
        if at - s.alone_since >= grace:
            return s, [], True
        return s, [], False
    if grace <= 0:
        return s, [], True
    after = " (a running job finishes first)" if s.job_running else ""
    message = (
        "You are now alone in the space and this machine needs two members: your session "
        f"ends in {math.ceil(grace)} s{after} unless someone else badges in."
    )
    warning = SupervisionChanged(
        session.member_id, session.supervisor_id, session.supervisor_name, message, grace
    )
    return replace(s, alone_since=at), [warning, Buzz("warning")], False
