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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from gateway.access.config import MachineRules
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


Input = (
    BadgePresented
    | BadgeOut
    | JobStarted
    | JobEnded
    | Tick
    | InterlockTripped
    | InterlockCleared
    | EStop
    | LockoutSet
    | LockoutCleared
    | Shutdown
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
            new, effects = _job_started(s)
        case JobEnded(at=at):
            new, effects = _job_ended(s, at)
        case Tick(at=at):
            new, effects = _tick(s, at, rules)
        case InterlockTripped(name=name, kind=kind, at=at):
            reason: CloseReason = "estop" if kind == "estop" else "interlock"
            new, effects = _cut(replace(s, tripped=s.tripped | {name}), reason, at)
        case InterlockCleared(name=name):
            new, effects = replace(s, tripped=s.tripped - {name}), []
        case EStop(at=at):
            # The controller aborts its job on e-stop; no JobEnded may follow.
            new, effects = _cut(replace(s, job_running=False), "estop", at)
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


def _end(s: Snapshot, reason: CloseReason, at: float, rules: MachineRules) -> Result:
    """A normal end (badge-out, idle, max session): the relay may be held."""
    assert s.session is not None
    closed = _closed(s.session, reason, at)
    if s.job_running and rules.badge_out == "after_job":
        return replace(s, state=State.ENDING, session=None, previous=s.session, grace_until=None), [
            closed
        ]
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
    return replace(
        s,
        state=State.IN_USE if s.job_running else State.AUTHORISED,
        session=ActiveSession(member.id, member.name, role, at, at),
        previous=None,
        grace_until=None,
        trainer=trainer,
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


def _job_started(s: Snapshot) -> Result:
    if s.job_running:
        return s, []
    s = replace(s, job_running=True)
    match s.state:
        case State.AUTHORISED:
            assert s.session is not None
            session = replace(s.session, jobs=s.session.jobs + 1)
            return replace(s, state=State.IN_USE, session=session), []
        case State.ENDING:
            # Started during the grace period: the relay now waits for the job.
            return replace(s, grace_until=None), []
        case _:
            return s, []


def _job_ended(s: Snapshot, at: float) -> Result:
    if not s.job_running:
        return s, []
    s = replace(s, job_running=False)
    match s.state:
        case State.IN_USE:
            assert s.session is not None
            return replace(
                s, state=State.AUTHORISED, session=replace(s.session, last_activity=at)
            ), []
        case State.ENDING:
            return replace(s, state=_resting(s), previous=None, grace_until=None), [
                RelayOff("job_finished")
            ]
        case _:
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
            if not s.job_running and s.grace_until is not None and at >= s.grace_until:
                return replace(s, state=_resting(s), previous=None, grace_until=None), [
                    RelayOff("grace_period_over")
                ]
        case _:
            pass
    return s, []


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
