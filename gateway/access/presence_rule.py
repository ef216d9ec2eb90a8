"""The presence rule for starting or resuming a job (pure).

A job starts or resumes only while a member is in session at the machine; a
token caller away from it is refused under ``remote_start = "never"`` and, under
``"always"``, allowed while the relay is on with nobody in session.  Asked by the
access service for every start, resume and console command
(:meth:`~gateway.access.service.AccessService` ``authorise_start``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.access.config import MachineRules, RemoteStart
from gateway.access.session_types import Snapshot


@dataclass(frozen=True, slots=True)
class StartAllowed:
    """A job may start or resume; ``member_id`` is the member present (None only under
    ``remote_start = "always"`` with nobody in session)."""

    member_id: str | None
    member_name: str | None


StartRefusal = Literal["no_session", "remote_start_off"]


@dataclass(frozen=True, slots=True)
class StartRefused:
    reason: StartRefusal
    message: str


NO_SESSION_MESSAGE = (
    "Nobody is badged in at this machine: badge in at the machine first, then start the job."
)


def may_start(s: Snapshot, rules: MachineRules, *, at_machine: bool) -> StartAllowed | StartRefused:
    """May a job start or resume now?  ``at_machine``: asked from the kiosk itself.

    A member must be in session (not merely the relay held by a grace period or a
    finishing job).  ``remote_start`` applies only to callers away from the machine.
    """
    remote: RemoteStart = rules.remote_start
    if s.session is not None:
        if not at_machine and remote == "never":
            return StartRefused(
                "remote_start_off",
                "Jobs on this machine start only from its touchscreen "
                '(access.rules.remote_start = "never"): start it there.',
            )
        return StartAllowed(s.session.member_id, s.session.member_name)
    if not at_machine and remote == "always" and s.relay_on:
        return StartAllowed(None, None)
    return StartRefused("no_session", NO_SESSION_MESSAGE)
