"""The access state machine: badges, jobs, interlocks and lockouts in; relay and records out.

Pure: no I/O, no clock, no tasks.  Every input carries ``at``, monotonic seconds
supplied by the service; :func:`transition` returns the next :class:`Snapshot`
and a list of effects for the service to carry out (switch the relay, show an
indicator, write a record, publish an event).

States::

    LOCKED      relay off; waiting for a badge
    AUTHORISED  relay on, a member's session is open, no job running
    IN_USE      relay on, a session is open and a job is running
    ENDING      the session has ended but the relay is held on, either until the
                running job finishes or for the grace period (so a member who
                badged out by mistake can badge straight back in)
    LOCKOUT     maintenance lockout, relay off; only a maintainer may badge in

Rules, in the order a reviewer will ask about them:

- Safety inputs (interlock tripped, e-stop, lockout set) and shutdown cut the
  relay at once and close any session, whatever else is going on.  While an
  interlock is tripped nobody can start a session.
- A member badging again ends their own session (``badge_out``).  The session
  also ends after ``idle_timeout`` without a job and after ``max_session``.
  If a job is running, ``rules.badge_out == "after_job"`` holds the relay on
  until the job ends (the idle timeout never fires during a job); with
  ``"immediately"`` the relay goes off at once.  With no job running the relay
  stays on for ``grace_period`` after the session ends (never under lockout).
- A different authorised member badging while a session is open is refused
  with "machine in use by X": sessions are never taken from a member.  During
  the grace period (no job) any authorised member may start a new session; while
  a finished session's job is still running, only that session's member may
  badge back in.
- Induction: a trainer (or maintainer) badge opens the trainer's own session and
  starts a ``trainer_window``.  Within it, the badge of a member who is not
  inducted on this machine records an induction and hands the machine over: the
  trainer's session closes with ``takeover`` and the new member's session opens.
  This needs a free machine: no job running, no lockout, no interlock tripped,
  and no session other than the trainer's own.
- Lockout: only a maintainer's badge opens a session.  Clearing the lockout does
  not end a maintainer's session; it simply stops restricting new ones.
- Rate limit: after ``denied_rate_limit`` refusals within ``denied_window``
  seconds, further badges are refused with "too many attempts" without the
  decision being looked at, until the oldest refusal leaves the window.
- Presence: a job may start or resume only while a member is in session at the
  machine (:func:`may_start`); from outside the kiosk ``rules.remote_start``
  may forbid it (``never``) or, explicitly, relax it (``always``).  A job that
  starts with nobody in session anyway (the member badged out between the check
  and the start) is stopped (``StopJob``) and never holds the relay: only a job
  started in a session (``job_member``) keeps power on after that session ends.
- Live re-check: when a new access list no longer admits the session's member
  (suspended, expired, not inducted), the session ends with reason ``revoked``
  by the job rule: no new job may start, a running job finishes under
  ``badge_out`` (with no job the relay goes off at once, without grace).  An
  admin's ``CutNow`` cuts the relay at once, job or not.
- A job finishing after its session ended that is paused is not finishing: if
  nobody badges in to resume it within ``idle_timeout``, the relay goes off
  (``paused_unattended``) rather than hold a stalled machine powered for ever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from gateway.access.config import MachineRules, RemoteStart
from gateway.access.members import Decision, Denied, Granted, Member, Role


class State(StrEnum):
    LOCKED = "locked"
    AUTHORISED = "authorised"
    IN_USE = "in_use"
    ENDING = "ending"
    LOCKOUT = "lockout"


RELAY_ON_STATES = frozenset({State.AUTHORISED, State.IN_USE, State.ENDING})

IndicatorKind = Literal["locked", "authorised", "in_use", "denied", "lockout", "off"]
BuzzPattern = Literal["granted", "denied", "warning", "induction"]
CloseReason = Literal[
    "badge_out",
    "idle_timeout",
    "max_session",
    "lockout",
    "interlock",
    "estop",
    "shutdown",
    "takeover",
    "revoked",
    "admin_cut",
]
RefusalReason = Literal[
    "unknown_badge",
    "not_inducted",
    "expired",
    "not_yet_valid",
    "suspended",
    "locked_out",
    "in_use",
    "interlock",
]


# -- inputs --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadgePresented:
    """A badge was read and :func:`~gateway.access.members.decide` judged it."""

    decision: Decision
    at: float


@dataclass(frozen=True, slots=True)
class BadgeOut:
    """End the current session as if its member had badged again (``badge_out`` command)."""

    at: float


@dataclass(frozen=True, slots=True)
class JobStarted:
    at: float


@dataclass(frozen=True, slots=True)
class JobEnded:
    at: float


@dataclass(frozen=True, slots=True)
class JobPaused:
    at: float


@dataclass(frozen=True, slots=True)
class JobResumed:
    at: float


@dataclass(frozen=True, slots=True)
class Tick:
    at: float


@dataclass(frozen=True, slots=True)
class InterlockTripped:
    name: str
    kind: str  # lid | door | estop
    at: float


@dataclass(frozen=True, slots=True)
class InterlockCleared:
    name: str
    at: float


@dataclass(frozen=True, slots=True)
class EStop:
    at: float


@dataclass(frozen=True, slots=True)
class LockoutSet:
    reason: str
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class LockoutCleared:
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class Shutdown:
    at: float


@dataclass(frozen=True, slots=True)
class MemberRevoked:
    """A new access list no longer admits ``member_id`` here; ``message`` says why."""

    member_id: str
    reason: str  # suspended | expired | not_yet_valid | not_inducted | unknown_badge | ...
    message: str
    at: float


@dataclass(frozen=True, slots=True)
class CutNow:
    """An admin cuts the power at once, even under a running job."""

    by: str
    at: float


Input = (
    BadgePresented
    | BadgeOut
    | JobStarted
    | JobEnded
    | JobPaused
    | JobResumed
    | Tick
    | InterlockTripped
    | InterlockCleared
    | EStop
    | LockoutSet
    | LockoutCleared
    | Shutdown
    | MemberRevoked
    | CutNow
)

# -- effects -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayOn:
    reason: str


@dataclass(frozen=True, slots=True)
class RelayOff:
    reason: str


@dataclass(frozen=True, slots=True)
class ShowIndicator:
    kind: IndicatorKind


@dataclass(frozen=True, slots=True)
class Buzz:
    pattern: BuzzPattern


@dataclass(frozen=True, slots=True)
class SessionOpened:
    member_id: str
    member_name: str
    role: Role
    inducted_by: str | None = None


@dataclass(frozen=True, slots=True)
class SessionClosed:
    member_id: str
    member_name: str
    reason: CloseReason
    duration: float
    jobs: int
    message: str = ""  # for the screen and the records, when the reason needs one


@dataclass(frozen=True, slots=True)
class StopJob:
    """Stop the running job: it started with no member in session."""

    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A badge was refused; ``message`` is for the screen.  Never carries the badge."""

    reason: RefusalReason
    message: str
    member_id: str | None


@dataclass(frozen=True, slots=True)
class InductionRecorded:
    trainer_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class RateLimited:
    retry_after: float
    message: str


@dataclass(frozen=True, slots=True)
class LockoutUpdated:
    active: bool
    reason: str | None
    by: str


Effect = (
    RelayOn
    | RelayOff
    | ShowIndicator
    | Buzz
    | SessionOpened
    | SessionClosed
    | Refused
    | InductionRecorded
    | RateLimited
    | LockoutUpdated
    | StopJob
)

# -- the snapshot -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveSession:
    member_id: str
    member_name: str
    role: Role
    started_at: float
    last_activity: float
    jobs: int = 0


@dataclass(frozen=True, slots=True)
class Lockout:
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class TrainerWindow:
    trainer_id: str
    until: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the machine knows.  ``session`` is set exactly in AUTHORISED and
    IN_USE; ``previous`` is the ended session whose relay ENDING is holding."""

    state: State = State.LOCKED
    session: ActiveSession | None = None
    previous: ActiveSession | None = None
    job_running: bool = False
    grace_until: float | None = None
    lockout: Lockout | None = None
    tripped: frozenset[str] = frozenset()
    trainer: TrainerWindow | None = None
    denials: tuple[float, ...] = ()
    #: The member whose session the running job started in; None if it started with
    #: nobody in session (it is being stopped) or no job is running.
    job_member: str | None = None
    #: When the running job was paused; None while it runs (or no job).
    paused_since: float | None = None

    @property
    def relay_on(self) -> bool:
        return self.state in RELAY_ON_STATES

    @property
    def indicator(self) -> IndicatorKind:
        match self.state:
            case State.LOCKED:
                return "locked"
            case State.AUTHORISED:
                return "authorised"
            case State.IN_USE:
                return "in_use"
            case State.ENDING:
                return "in_use" if self.job_running else "authorised"
            case State.LOCKOUT:
                return "lockout"


Result = tuple[Snapshot, list[Effect]]

# -- the transition function ------------------------------------------------------


def transition(s: Snapshot, event: Input, rules: MachineRules) -> Result:
    """The one transition function: the next snapshot and the effects to carry out."""
    match event:
        case BadgePresented(decision=decision, at=at):
            new, effects = _badge(s, decision, at, rules)
        case BadgeOut(at=at):
            new, effects = _end(s, "badge_out", at, rules) if s.session else (s, [])
        case JobStarted():
            new, effects = _job_started(s, rules)
        case JobEnded(at=at):
            new, effects = _job_ended(s, at)
        case JobPaused(at=at):
            new, effects = (replace(s, paused_since=at), []) if s.job_running else (s, [])
        case JobResumed():
            new, effects = replace(s, paused_since=None), []
        case Tick(at=at):
            new, effects = _tick(s, at, rules)
        case InterlockTripped(name=name, kind=kind, at=at):
            reason: CloseReason = "estop" if kind == "estop" else "interlock"
            new, effects = _cut(replace(s, tripped=s.tripped | {name}), reason, at)
        case InterlockCleared(name=name):
            new, effects = replace(s, tripped=s.tripped - {name}), []
        case EStop(at=at):
            # The controller aborts its job on e-stop; no JobEnded may follow.
            stopped = replace(s, job_running=False, job_member=None, paused_since=None)
            new, effects = _cut(stopped, "estop", at)
        case LockoutSet(reason=reason_text, by=by, at=at):
            locked = replace(s, lockout=Lockout(reason_text, by), trainer=None)
            new, effects = _cut(locked, "lockout", at)
            effects.append(LockoutUpdated(True, reason_text, by))
        case LockoutCleared(by=by):
            if s.lockout is None:
                new, effects = s, []
            else:
                state = State.LOCKED if s.state is State.LOCKOUT else s.state
                new, effects = (
                    replace(s, lockout=None, state=state),
                    [LockoutUpdated(False, None, by)],
                )
        case Shutdown(at=at):
            new, effects = _cut(s, "shutdown", at)
        case MemberRevoked(member_id=member_id, message=message, at=at):
            new, effects = _revoke(s, member_id, message, at, rules)
        case CutNow(at=at):
            new, effects = _cut(s, "admin_cut", at)
    if new.indicator != s.indicator:
        effects.append(ShowIndicator(new.indicator))
    return new, effects


def _resting(s: Snapshot) -> State:
    return State.LOCKOUT if s.lockout is not None else State.LOCKED


def _closed(session: ActiveSession, reason: CloseReason, at: float) -> SessionClosed:
    return SessionClosed(
        session.member_id,
        session.member_name,
        reason,
        max(0.0, at - session.started_at),
        session.jobs,
    )


def _cut(s: Snapshot, reason: CloseReason, at: float) -> Result:
    """Safety: relay off now, session closed, whatever is running."""
    effects: list[Effect] = []
    if s.relay_on:
        effects.append(RelayOff(reason))
    if s.session is not None:
        effects.append(_closed(s.session, reason, at))
    if effects and reason != "shutdown":
        effects.append(Buzz("warning"))
    return replace(s, state=_resting(s), session=None, previous=None, grace_until=None), effects


def _hold_for_job(s: Snapshot, at: float) -> Snapshot:
    """The session ended under a running job: ENDING holds the relay until it ends.  A
    paused job's unattended time starts now."""
    return replace(
        s,
        state=State.ENDING,
        session=None,
        previous=s.session,
        grace_until=None,
        paused_since=None if s.paused_since is None else at,
    )


def _end(s: Snapshot, reason: CloseReason, at: float, rules: MachineRules) -> Result:
    """A normal end (badge-out, idle, max session): the relay may be held."""
    assert s.session is not None
    closed = _closed(s.session, reason, at)
    if s.job_running and rules.badge_out == "after_job":
        return _hold_for_job(s, at), [closed]
    if not s.job_running and rules.grace_period > 0 and s.lockout is None:
        return replace(
            s,
            state=State.ENDING,
            session=None,
            previous=s.session,
            grace_until=at + rules.grace_period,
        ), [closed]
    return replace(s, state=_resting(s), session=None, previous=None, grace_until=None), [
        RelayOff(reason),
        closed,
    ]


def _refuse(
    s: Snapshot, reason: RefusalReason, message: str, member_id: str | None, at: float
) -> Result:
    return replace(s, denials=(*s.denials, at)), [
        Refused(reason, message, member_id),
        ShowIndicator("denied"),
        Buzz("denied"),
    ]


def _badge(s: Snapshot, decision: Decision, at: float, rules: MachineRules) -> Result:
    recent = tuple(t for t in s.denials if at - t < rules.denied_window)
    s = replace(s, denials=recent)
    if len(recent) >= rules.denied_rate_limit:
        wait = recent[-rules.denied_rate_limit] + rules.denied_window - at
        return s, [
            RateLimited(wait, f"Too many attempts, wait {math.ceil(wait)} s"),
            ShowIndicator("denied"),
            Buzz("denied"),
        ]
    match decision:
        case Denied(reason="not_inducted", member=Member() as member) if (
            s.trainer is not None and at <= s.trainer.until
        ):
            return _induct(s, member, at, rules)
        case Denied(reason=reason, message=message, member=member):
            return _refuse(s, reason, message, member.id if member else None, at)
        case Granted(member=member, role=role):
            return _granted(s, member, role, at, rules)


def _free_for_new_session(s: Snapshot, member: Member, role: Role, at: float) -> Result | None:
    """A refusal if nobody new may start now, else None."""
    if s.tripped:
        names = ", ".join(sorted(s.tripped))
        return _refuse(s, "interlock", f"Close the {names} before starting.", member.id, at)
    if s.lockout is not None and role < Role.MAINTAINER:
        return _refuse(
            s,
            "locked_out",
            f"Machine locked out: {s.lockout.reason}. Only a maintainer can use it.",
            member.id,
            at,
        )
    return None


def _granted(s: Snapshot, member: Member, role: Role, at: float, rules: MachineRules) -> Result:
    if s.session is not None:
        if s.session.member_id == member.id:
            return _end(s, "badge_out", at, rules)
        return _refuse(
            s,
            "in_use",
            f"Machine in use by {s.session.member_name}. Ask them to badge out.",
            member.id,
            at,
        )
    if (refusal := _free_for_new_session(s, member, role, at)) is not None:
        return refusal
    if (
        s.state is State.ENDING
        and s.job_running
        and s.previous is not None
        and s.previous.member_id != member.id
    ):
        return _refuse(
            s,
            "in_use",
            f"Finishing {s.previous.member_name}'s job. Badge again when it ends.",
            member.id,
            at,
        )
    return _open(s, member, role, at, rules)


def _open(
    s: Snapshot,
    member: Member,
    role: Role,
    at: float,
    rules: MachineRules,
    inducted_by: str | None = None,
) -> Result:
    effects: list[Effect] = []
    if not s.relay_on:
        effects.append(RelayOn("induction" if inducted_by else "session"))
    effects.append(SessionOpened(member.id, member.name, role, inducted_by))
    effects.append(Buzz("induction" if inducted_by else "granted"))
    trainer = TrainerWindow(member.id, at + rules.trainer_window) if role >= Role.TRAINER else None
    # A member badging in while a job runs is present for it and takes it on.
    return replace(
        s,
        state=State.IN_USE if s.job_running else State.AUTHORISED,
        session=ActiveSession(member.id, member.name, role, at, at),
        previous=None,
        grace_until=None,
        trainer=trainer,
        job_member=member.id if s.job_running else None,
    ), effects


def _induct(s: Snapshot, member: Member, at: float, rules: MachineRules) -> Result:
    assert s.trainer is not None
    trainer_id = s.trainer.trainer_id
    if (refusal := _free_for_new_session(s, member, Role.USER, at)) is not None:
        return refusal
    if s.job_running or (s.session is not None and s.session.member_id != trainer_id):
        return _refuse(s, "in_use", "The machine is busy. Induct when it is free.", member.id, at)
    effects: list[Effect] = [InductionRecorded(trainer_id, member.id)]
    if s.session is not None:
        effects.append(_closed(s.session, "takeover", at))
    new, opened = _open(s, member, Role.USER, at, rules, inducted_by=trainer_id)
    return new, effects + opened


NO_MEMBER_FOR_JOB = (
    "Nobody is badged in at the machine, so the job was stopped. "
    "Badge in at the machine first, then start the job."
)


def _job_started(s: Snapshot, rules: MachineRules) -> Result:
    if s.job_running:
        return s, []
    s = replace(s, job_running=True, paused_since=None)
    match s.state:
        case State.AUTHORISED:
            assert s.session is not None
            session = replace(s.session, jobs=s.session.jobs + 1)
            return replace(
                s, state=State.IN_USE, session=session, job_member=session.member_id
            ), []
        case State.ENDING if rules.remote_start == "always":
            # Explicitly relaxed: a remote start in the grace period holds the relay
            # until its job ends.
            return replace(s, grace_until=None, job_member=None), []
        case _:
            # Nobody in session: the presence rule was bypassed or raced (the member
            # badged out between the check and the start).  The job is stopped, and
            # it never extends the grace period.
            return replace(s, job_member=None), [StopJob(NO_MEMBER_FOR_JOB)]


def _job_ended(s: Snapshot, at: float) -> Result:
    if not s.job_running:
        return s, []
    s = replace(s, job_running=False, job_member=None, paused_since=None)
    match s.state:
        case State.IN_USE:
            assert s.session is not None
            return replace(
                s, state=State.AUTHORISED, session=replace(s.session, last_activity=at)
            ), []
        case State.ENDING if s.grace_until is None:
            return replace(s, state=_resting(s), previous=None), [RelayOff("job_finished")]
        case _:
            # ENDING with a grace period running: the relay waits for it as before.
            return s, []


def _revoke(s: Snapshot, member_id: str, message: str, at: float, rules: MachineRules) -> Result:
    """The access list no longer admits ``member_id``: end their session by the job rule."""
    if s.session is not None and s.session.member_id == member_id:
        closed = replace(_closed(s.session, "revoked", at), message=message)
        if s.job_running and rules.badge_out == "after_job":
            return _hold_for_job(s, at), [closed]
        return replace(s, state=_resting(s), session=None, previous=None, grace_until=None), [
            RelayOff("revoked"),
            closed,
            Buzz("warning"),
        ]
    if (
        s.state is State.ENDING
        and s.previous is not None
        and s.previous.member_id == member_id
        and s.grace_until is not None
    ):
        # No grace period for a member who may no longer use the machine (a job started
        # in it, with nobody in session, is being stopped and holds nothing).
        return replace(s, state=_resting(s), previous=None, grace_until=None), [
            RelayOff("revoked")
        ]
    return s, []


def _tick(s: Snapshot, at: float, rules: MachineRules) -> Result:
    if s.trainer is not None and at > s.trainer.until:
        s = replace(s, trainer=None)
    if s.denials and at - s.denials[-1] >= rules.denied_window:
        s = replace(s, denials=())
    match s.state:
        case State.AUTHORISED | State.IN_USE:
            assert s.session is not None
            if at - s.session.started_at >= rules.max_session:
                return _end(s, "max_session", at, rules)
            if not s.job_running and at - s.session.last_activity >= rules.idle_timeout:
                return _end(s, "idle_timeout", at, rules)
        case State.ENDING:
            # A job started with nobody in session (being stopped) never extends it.
            if s.grace_until is not None and at >= s.grace_until:
                return replace(s, state=_resting(s), previous=None, grace_until=None), [
                    RelayOff("grace_period_over")
                ]
            if s.paused_since is not None and at - s.paused_since >= rules.idle_timeout:
                return replace(s, state=_resting(s), previous=None, grace_until=None), [
                    RelayOff("paused_unattended")
                ]
        case _:
            pass
    return s, []


# -- the presence rule for starting or resuming a job ----------------------------------


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


class AccessMachine:
    """The state machine with its rules, for the service: feed inputs, get effects."""

    def __init__(self, rules: MachineRules, *, lockout: Lockout | None = None) -> None:
        self.rules = rules
        self.snapshot = Snapshot(state=State.LOCKOUT if lockout else State.LOCKED, lockout=lockout)

    def handle(self, event: Input) -> list[Effect]:
        self.snapshot, effects = transition(self.snapshot, event, self.rules)
        return effects

    @property
    def state(self) -> State:
        return self.snapshot.state

    @property
    def relay_on(self) -> bool:
        return self.snapshot.relay_on

    def retry_after(self, at: float) -> float | None:
        """Seconds until badges are evaluated again, or None when not rate-limited."""
        recent = [t for t in self.snapshot.denials if at - t < self.rules.denied_window]
        if len(recent) < self.rules.denied_rate_limit:
            return None
        return recent[-self.rules.denied_rate_limit] + self.rules.denied_window - at
