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
  with "machine in use by X": sessions are never taken from a member, with one
  exception: the member whose booking has started (``Granted.booked``) takes the
  machine over (reason ``booked``) once no job is running.  During
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
- Supervision (:class:`SessionPolicy`, levels from :mod:`gateway.access.tiers`):
  a member whose level is ``supervised`` is admitted only while someone who can
  supervise is present (:mod:`gateway.access.presence_feed`: badged here or at
  a nearby gateway within the supervision window, or announced by the door,
  and not gone).  A supervisor's session is handed straight to a supervised
  member who badges while it is open and no job runs (``handover``).  When the
  supervisor badges again, or is announced out, the member is warned and the
  session ends ``supervision_grace`` seconds later (``supervisor_left``) by the
  job rule, unless another supervisor is present or turns up first
  (:mod:`gateway.access.supervision` watches; this module ends the session).
- Lone working: with ``lone_working`` a session starts only while at least one
  other member is present; when the last one leaves (or their sighting runs out)
  the member is warned and the session ends ``supervision_grace`` seconds later
  (``alone``) by the job rule, unless someone turns up first.
- Grants: a trainer in their window may choose the level to grant
  (:class:`GrantLevelChosen`); the next badge of a member below that level, not
  inducted, or with a lapsed induction records an induction at that level and
  takes the machine over, as above.
- Every refusal names its rule (:data:`RefusalReason`), for the screen and records.
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

The machine's vocabulary (states, inputs, effects, the snapshot) lives in
:mod:`gateway.access.session_types` and is re-exported here, so callers keep
writing ``session.RelayOn``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from gateway.access import supervision
from gateway.access.admission import free_for_new_session as _free_for_new_session
from gateway.access.admission import needed_company as _needed_company
from gateway.access.admission import refuse as _refuse
from gateway.access.config import MachineRules
from gateway.access.members import Decision, Denied, Granted, Member, Role
from gateway.access.presence_feed import Sighting
from gateway.access.presence_rule import (
    NO_SESSION_MESSAGE,
    StartAllowed,
    StartRefusal,
    StartRefused,
    may_start,
)
from gateway.access.session_types import (
    DEFAULT_POLICY,
    NOBODY,
    RELAY_ON_STATES,
    ActiveSession,
    BadgeOut,
    BadgePresented,
    Buzz,
    BuzzPattern,
    CloseReason,
    CutNow,
    Effect,
    EStop,
    GrantLevelChosen,
    IndicatorKind,
    InductionRecorded,
    Input,
    InterlockCleared,
    InterlockTripped,
    JobEnded,
    JobPaused,
    JobResumed,
    JobStarted,
    LevelLowered,
    Lockout,
    LockoutCleared,
    LockoutSet,
    LockoutUpdated,
    MemberRevoked,
    PresenceLeft,
    PresenceSeen,
    RateLimited,
    RefusalReason,
    Refused,
    RelayOff,
    RelayOn,
    Result,
    SessionClosed,
    SessionOpened,
    SessionPolicy,
    ShowIndicator,
    Shutdown,
    Snapshot,
    State,
    StopJob,
    SupervisionChanged,
    Tick,
    TrainerWindow,
)

__all__ = [
    "DEFAULT_POLICY",
    "NOBODY",
    "NO_MEMBER_FOR_JOB",
    "NO_SESSION_MESSAGE",
    "RELAY_ON_STATES",
    "AccessMachine",
    "ActiveSession",
    "BadgeOut",
    "BadgePresented",
    "Buzz",
    "BuzzPattern",
    "CloseReason",
    "CutNow",
    "EStop",
    "Effect",
    "GrantLevelChosen",
    "IndicatorKind",
    "InductionRecorded",
    "Input",
    "InterlockCleared",
    "InterlockTripped",
    "JobEnded",
    "JobPaused",
    "JobResumed",
    "JobStarted",
    "LevelLowered",
    "Lockout",
    "LockoutCleared",
    "LockoutSet",
    "LockoutUpdated",
    "MemberRevoked",
    "PresenceLeft",
    "PresenceSeen",
    "RateLimited",
    "RefusalReason",
    "Refused",
    "RelayOff",
    "RelayOn",
    "Result",
    "SessionClosed",
    "SessionOpened",
    "SessionPolicy",
    "ShowIndicator",
    "Shutdown",
    "Snapshot",
    "StartAllowed",
    "StartRefusal",
    "StartRefused",
    "State",
    "StopJob",
    "SupervisionChanged",
    "Tick",
    "TrainerWindow",
    "may_start",
    "transition",
]



# -- the transition function ------------------------------------------------------


def transition(
    s: Snapshot, event: Input, rules: MachineRules, policy: SessionPolicy = DEFAULT_POLICY
) -> Result:
    """The one transition function: the next snapshot and the effects to carry out."""
    match event:
        case BadgePresented(decision=decision, at=at):
            new, effects = _badge(s, decision, at, rules, policy)
            # A supervisor badging off may have been the member's last company.
            new, company = _company(new, at, rules, policy)
            effects += company
        case BadgeOut(at=at):
            if s.session is not None and s.session.can_supervise:
                # Badged out at the screen: still here for a while, able to supervise.
                here = Sighting(
                    s.session.member_id,
                    s.session.member_name,
                    True,
                    at + policy.supervision_window,
                    "here",
                )
                s = replace(s, presence=s.presence.add(here))
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
            new, effects = _tick(s, at, rules, policy)
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
        case PresenceSeen(sighting=sighting, at=at):
            seen = replace(s, presence=s.presence.add(sighting))
            new, effects = _supervision(seen, at, rules, policy)
            new, company = _company(new, at, rules, policy)
            effects += company
        case PresenceLeft(member_id=member_id, at=at):
            gone = replace(s, presence=s.presence.remove(member_id))
            new, effects = _supervision(gone, at, rules, policy)
            new, company = _company(new, at, rules, policy)
            effects += company
        case GrantLevelChosen(level=level, rank=rank, supervised=supervised):
            trainer = s.trainer
            if trainer is None or s.session is None or s.session.member_id != trainer.trainer_id:
                new, effects = s, []
            else:
                chosen = replace(trainer, level=level, rank=rank, supervised=supervised)
                new, effects = replace(s, trainer=chosen), []
        case MemberRevoked(member_id=member_id, message=message, at=at):
            new, effects = _revoke(s, member_id, message, at, rules)
        case LevelLowered(member_id=member_id, level=level, at=at):
            new, effects, end = supervision.lowered(s, member_id, level, at, policy)
            if end:
                new, effects = _end(new, "supervisor_left", at, rules)
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
    return replace(
        s,
        state=_resting(s),
        session=None,
        previous=None,
        grace_until=None,
        supervision_lost_at=None,
        alone_since=None,
    ), effects


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
    """A normal end (badge-out, idle, max session, supervisor gone): the relay may be held."""
    assert s.session is not None
    closed = _closed(s.session, reason, at)
    s = replace(s, supervision_lost_at=None, alone_since=None)
    if s.job_running and rules.badge_out == "after_job":
        return _hold_for_job(s, at), [closed]
    # No grace for a member whose supervisor or company left: they had theirs.
    if (
        not s.job_running
        and rules.grace_period > 0
        and s.lockout is None
        and reason not in ("supervisor_left", "alone")
    ):
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


def _badge(
    s: Snapshot, decision: Decision, at: float, rules: MachineRules, policy: SessionPolicy
) -> Result:
    recent = tuple(t for t in s.denials if at - t < rules.denied_window)
    s = replace(s, denials=recent)
    if len(recent) >= rules.denied_rate_limit:
        wait = recent[-rules.denied_rate_limit] + rules.denied_window - at
        return s, [
            RateLimited(wait, f"Too many attempts, wait {math.ceil(wait)} s"),
            ShowIndicator("denied"),
            Buzz("denied"),
        ]
    window = s.trainer if s.trainer is not None and at <= s.trainer.until else None
    match decision:
        case Denied(reason="not_inducted" | "induction_lapsed", member=Member() as member) if (
            window is not None
        ):
            return _induct(s, member, window, at, rules, policy)
        case Denied(reason=reason, message=message, member=member):
            return _refuse(s, reason, message, member.id if member else None, at)
        case Granted() as granted:
            if (
                window is not None
                and window.level is not None
                and granted.member.id != window.trainer_id
                and granted.role < Role.TRAINER
                and granted.rank < window.rank
            ):
                return _induct(s, granted.member, window, at, rules, policy)
            return _granted(s, granted, at, rules, policy)


def _granted(
    s: Snapshot, g: Granted, at: float, rules: MachineRules, policy: SessionPolicy
) -> Result:
    member, role = g.member, g.role
    if g.can_supervise:
        seen = Sighting(member.id, member.name, True, at + policy.supervision_window, "here")
        s = replace(s, presence=s.presence.add(seen))
    session = s.session
    if session is not None:
        if session.member_id == member.id:
            return _end(s, "badge_out", at, rules)
        if session.supervisor_id == member.id:
            # The supervisor badges off: they are leaving.
            left = replace(s, presence=s.presence.remove(member.id))
            return _supervision(left, at, rules, policy)
        if session.supervised and g.can_supervise:
            return _supervision(s, at, rules, policy, prefer=member.id)
        if (
            g.supervised
            and session.can_supervise
            and not s.job_running
            and _free_for_new_session(s, member, role, at) is None
        ):
            # The supervisor at the machine hands it to the member they supervise.
            holder = Sighting(
                session.member_id, session.member_name, True, at + policy.supervision_window, "here"
            )
            s = replace(s, presence=s.presence.add(holder))
            new, opened = _open(s, g, at, rules, supervisor=holder)
            return new, [_closed(session, "handover", at), *opened]
        if g.booked:
            return _booker_takes_over(s, g, session, at, rules, policy)
        return _refuse(
            s,
            "in_use",
            f"Machine in use by {session.member_name}. Ask them to badge out.",
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
    supervisor, refusal = _needed_company(s, g, at, policy)
    if refusal is not None:
        return refusal
    return _open(s, g, at, rules, supervisor=supervisor)


def _booker_takes_over(
    s: Snapshot,
    g: Granted,
    session: ActiveSession,
    at: float,
    rules: MachineRules,
    policy: SessionPolicy,
) -> Result:
    """The member whose booking has started badges while someone else is in session:
    the machine is theirs, but never mid-job (a running job finishes first)."""
    member = g.member
    if s.job_running:
        return _refuse(
            s,
            "in_use",
            f"Your booking has started, but {session.member_name}'s job is still running. "
            "Badge again when it ends.",
            member.id,
            at,
        )
    if (refusal := _free_for_new_session(s, member, g.role, at)) is not None:
        return refusal
    supervisor, refusal = _needed_company(s, g, at, policy)
    if refusal is not None:
        return refusal
    new, opened = _open(s, g, at, rules, supervisor=supervisor)
    closed = replace(
        _closed(session, "booked", at),
        message=f"{member.name}'s booking has started; they took over the machine.",
    )
    return new, [closed, *opened]


def _open(
    s: Snapshot,
    g: Granted,
    at: float,
    rules: MachineRules,
    *,
    inducted_by: str | None = None,
    supervisor: Sighting | None = None,
) -> Result:
    member, role = g.member, g.role
    effects: list[Effect] = []
    if not s.relay_on:
        effects.append(RelayOn("induction" if inducted_by else "session"))
    effects.append(
        SessionOpened(
            member.id,
            member.name,
            role,
            inducted_by,
            level=g.level,
            supervisor_id=supervisor.member_id if supervisor else None,
            supervisor_name=supervisor.name if supervisor else None,
            notice=g.notice,
        )
    )
    effects.append(Buzz("induction" if inducted_by else "granted"))
    trainer = (
        TrainerWindow(member.id, at + rules.trainer_window, trainer_name=member.name)
        if role >= Role.TRAINER
        else None
    )
    session = ActiveSession(
        member.id,
        member.name,
        role,
        at,
        at,
        level=g.level,
        supervised=g.supervised,
        can_supervise=g.can_supervise,
        supervisor_id=supervisor.member_id if supervisor else None,
        supervisor_name=supervisor.name if supervisor else None,
    )
    # A member badging in while a job runs is present for it and takes it on.
    return replace(
        s,
        state=State.IN_USE if s.job_running else State.AUTHORISED,
        session=session,
        previous=None,
        grace_until=None,
        trainer=trainer,
        supervision_lost_at=None,
        alone_since=None,
        job_member=member.id if s.job_running else None,
    ), effects


def _induct(
    s: Snapshot,
    member: Member,
    window: TrainerWindow,
    at: float,
    rules: MachineRules,
    policy: SessionPolicy,
) -> Result:
    trainer_id = window.trainer_id
    if (refusal := _free_for_new_session(s, member, Role.USER, at)) is not None:
        return refusal
    if s.job_running or (s.session is not None and s.session.member_id != trainer_id):
        return _refuse(s, "in_use", "The machine is busy. Induct when it is free.", member.id, at)
    effects: list[Effect] = [InductionRecorded(trainer_id, member.id, window.level)]
    if s.session is not None:
        effects.append(_closed(s.session, "takeover", at))
    # The trainer is at the machine: they supervise a supervised grant.
    trainer = Sighting(
        trainer_id, window.trainer_name, True, at + policy.supervision_window, "here"
    )
    s = replace(s, presence=s.presence.add(trainer))
    granted = Granted(
        member,
        Role.USER,
        level=window.level,
        rank=window.rank,
        supervised=window.supervised,
        can_supervise=False,
    )
    new, opened = _open(
        s,
        granted,
        at,
        rules,
        inducted_by=trainer_id,
        supervisor=trainer if window.supervised else None,
    )
    return new, effects + opened


def _supervision(
    s: Snapshot,
    at: float,
    rules: MachineRules,
    policy: SessionPolicy,
    prefer: str | None = None,
) -> Result:
    new, effects, end = supervision.watch(s, at, policy, prefer)
    return _end(new, "supervisor_left", at, rules) if end else (new, effects)


def _company(s: Snapshot, at: float, rules: MachineRules, policy: SessionPolicy) -> Result:
    new, effects, end = supervision.company(s, at, policy)
    return _end(new, "alone", at, rules) if end else (new, effects)


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


def _tick(s: Snapshot, at: float, rules: MachineRules, policy: SessionPolicy) -> Result:
    if s.trainer is not None and at > s.trainer.until:
        s = replace(s, trainer=None)
    if s.denials and at - s.denials[-1] >= rules.denied_window:
        s = replace(s, denials=())
    keep = s.session.supervisor_id if s.session is not None else None
    s = replace(s, presence=s.presence.prune(at, keep=keep))
    match s.state:
        case State.AUTHORISED | State.IN_USE:
            s, company = _company(s, at, rules, policy)
            if s.session is None:
                return s, company  # ended: alone too long
            # A warning about company does not put off the other limits.
            reason: CloseReason | None = None
            if (
                s.supervision_lost_at is not None
                and at - s.supervision_lost_at >= policy.supervision_grace
            ):
                reason = "supervisor_left"
            elif at - s.session.started_at >= rules.max_session:
                reason = "max_session"
            elif not s.job_running and at - s.session.last_activity >= rules.idle_timeout:
                reason = "idle_timeout"
            if reason is not None:
                s, ended = _end(s, reason, at, rules)
                return s, [*company, *ended]
            if company:
                return s, company
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


class AccessMachine:
    """The state machine with its rules, for the service: feed inputs, get effects."""

    def __init__(
        self,
        rules: MachineRules,
        *,
        lockout: Lockout | None = None,
        policy: SessionPolicy = DEFAULT_POLICY,
    ) -> None:
        self.rules = rules
        self.policy = policy
        self.snapshot = Snapshot(state=State.LOCKOUT if lockout else State.LOCKED, lockout=lockout)

    def handle(self, event: Input) -> list[Effect]:
        self.snapshot, effects = transition(self.snapshot, event, self.rules, self.policy)
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
