"""The access state machine: every transition, then random sequences against its invariants."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gateway.access.config import MachineRules
from gateway.access.members import Denied, Granted, Member, Role
from gateway.access.session import (
    AccessMachine,
    BadgeOut,
    BadgePresented,
    Buzz,
    CutNow,
    Effect,
    EStop,
    InductionRecorded,
    Input,
    InterlockCleared,
    InterlockTripped,
    JobEnded,
    JobPaused,
    JobResumed,
    JobStarted,
    Lockout,
    LockoutCleared,
    LockoutSet,
    LockoutUpdated,
    MemberRevoked,
    RateLimited,
    Refused,
    RelayOff,
    RelayOn,
    SessionClosed,
    SessionOpened,
    ShowIndicator,
    Shutdown,
    StartAllowed,
    StartRefused,
    State,
    StopJob,
    Tick,
    may_start,
)

ADA = Member("m-ada", "Ada", {"laser-1": Role.USER})
BO = Member("m-bo", "Bo", {"laser-1": Role.USER})
TRAINER = Member("m-tess", "Tess", {"laser-1": Role.TRAINER})
MAINTAINER = Member("m-max", "Max", {"laser-1": Role.MAINTAINER})
NEWBIE = Member("m-nia", "Nia", {})


def badge(m: Member | None, at: float) -> BadgePresented:
    if m is None:
        return BadgePresented(Denied("unknown_badge", "Badge not recognised."), at)
    role = m.role_on("laser-1")
    if role is None:
        return BadgePresented(Denied("not_inducted", "Not inducted.", m), at)
    return BadgePresented(Granted(m, role), at)


def machine(**rules: Any) -> AccessMachine:
    return AccessMachine(MachineRules(**rules))


def kinds(effects: list[Effect]) -> list[type]:
    return [type(e) for e in effects]


def closed(effects: list[Effect]) -> SessionClosed:
    (c,) = [e for e in effects if isinstance(e, SessionClosed)]
    return c


def opened_session(m: Member = ADA, **rules: Any) -> AccessMachine:
    am = machine(**rules)
    am.handle(badge(m, 0.0))
    assert am.state is State.AUTHORISED
    return am


# -- badges ----------------------------------------------------------------------------


def test_granted_badge_switches_the_relay_on_and_opens_a_session() -> None:
    am = machine()
    effects = am.handle(badge(ADA, 0.0))
    assert effects == [
        RelayOn("session"),
        SessionOpened("m-ada", "Ada", Role.USER, None),
        Buzz("granted"),
        ShowIndicator("authorised"),
    ]
    assert am.state is State.AUTHORISED and am.relay_on


def test_refused_badge_leaves_the_relay_off() -> None:
    am = machine()
    effects = am.handle(badge(None, 0.0))
    assert effects == [
        Refused("unknown_badge", "Badge not recognised.", None),
        ShowIndicator("denied"),
        Buzz("denied"),
    ]
    assert am.state is State.LOCKED and not am.relay_on


def test_badge_out_holds_the_relay_for_the_grace_period() -> None:
    am = opened_session(grace_period=10)
    effects = am.handle(badge(ADA, 100.0))
    assert closed(effects).reason == "badge_out" and closed(effects).duration == 100.0
    assert RelayOff not in kinds(effects)
    assert am.state is State.ENDING and am.relay_on
    assert am.handle(Tick(109.0)) == []
    assert am.handle(Tick(110.0)) == [RelayOff("grace_period_over"), ShowIndicator("locked")]
    assert am.state is State.LOCKED


def test_badging_back_in_during_the_grace_period_keeps_the_relay_on() -> None:
    am = opened_session(grace_period=10)
    am.handle(badge(ADA, 5.0))
    effects = am.handle(badge(ADA, 8.0))
    assert RelayOn not in kinds(effects) and SessionOpened in kinds(effects)
    assert am.state is State.AUTHORISED


def test_another_member_may_start_during_the_grace_period() -> None:
    am = opened_session(grace_period=10)
    am.handle(badge(ADA, 5.0))
    effects = am.handle(badge(BO, 8.0))
    assert next(e for e in effects if isinstance(e, SessionOpened)).member_id == "m-bo"


def test_without_grace_period_badge_out_cuts_at_once() -> None:
    am = opened_session(grace_period=0)
    effects = am.handle(badge(ADA, 5.0))
    assert effects[0] == RelayOff("badge_out")
    assert am.state is State.LOCKED


def test_another_member_cannot_take_an_open_session() -> None:
    am = opened_session()
    effects = am.handle(badge(BO, 3.0))
    assert effects[0] == Refused("in_use", "Machine in use by Ada. Ask them to badge out.", "m-bo")
    assert am.snapshot.session is not None and am.snapshot.session.member_id == "m-ada"


def booker(m: Member, at: float, **policy: Any) -> BadgePresented:
    """The badge of ``m`` whose booking on this machine is in force."""
    role = m.role_on("laser-1")
    assert role is not None
    return BadgePresented(Granted(m, role, booked=True, **policy), at)


def test_the_member_whose_booking_started_takes_an_idle_machine_over() -> None:
    am = opened_session()
    effects = am.handle(booker(BO, 3.0))
    gone = closed(effects)
    assert gone.member_id == "m-ada" and gone.reason == "booked"
    assert gone.message == "Bo's booking has started; they took over the machine."
    assert SessionOpened("m-bo", "Bo", Role.USER, None) in effects
    # The relay stays on: the machine passes from one member to the next.
    assert RelayOff not in kinds(effects) and RelayOn not in kinds(effects)
    assert am.snapshot.session is not None and am.snapshot.session.member_id == "m-bo"
    assert am.state is State.AUTHORISED and am.relay_on


def test_the_booker_waits_for_a_running_job_to_end() -> None:
    am = opened_session()
    am.handle(JobStarted(1.0))
    effects = am.handle(booker(BO, 3.0))
    assert effects[0] == Refused(
        "in_use",
        "Your booking has started, but Ada's job is still running. Badge again when it ends.",
        "m-bo",
    )
    assert am.snapshot.session is not None and am.snapshot.session.member_id == "m-ada"
    am.handle(JobEnded(9.0))
    effects = am.handle(booker(BO, 10.0))
    assert closed(effects).reason == "booked"
    assert am.snapshot.session is not None and am.snapshot.session.member_id == "m-bo"


def test_a_supervised_booker_still_needs_a_supervisor_to_take_over() -> None:
    am = opened_session()
    effects = am.handle(booker(BO, 3.0, level="supervised", supervised=True))
    assert isinstance(effects[0], Refused) and effects[0].reason == "needs_supervision"
    assert am.snapshot.session is not None and am.snapshot.session.member_id == "m-ada"


def test_the_booker_cannot_take_a_maintainers_session_under_lockout() -> None:
    am = machine()
    am.handle(LockoutSet("service", "staff", 0.0))
    am.handle(badge(MAINTAINER, 1.0))
    effects = am.handle(booker(BO, 3.0))
    assert isinstance(effects[0], Refused) and effects[0].reason == "locked_out"
    assert am.snapshot.session is not None and am.snapshot.session.member_id == "m-max"


def test_badge_out_command_ends_the_session_and_is_ignored_without_one() -> None:
    am = opened_session(grace_period=0)
    effects = am.handle(BadgeOut(4.0))
    assert closed(effects).reason == "badge_out" and RelayOff("badge_out") in effects
    assert am.handle(BadgeOut(5.0)) == []


# -- jobs ------------------------------------------------------------------------------


def test_job_start_and_end_move_between_authorised_and_in_use() -> None:
    am = opened_session()
    assert am.handle(JobStarted(1.0)) == [ShowIndicator("in_use")]
    assert am.state is State.IN_USE and am.snapshot.session is not None
    assert am.snapshot.session.jobs == 1
    assert am.handle(JobEnded(50.0)) == [ShowIndicator("authorised")]
    assert am.state is State.AUTHORISED
    assert am.snapshot.session.last_activity == 50.0


def test_badge_out_during_a_job_waits_for_the_job_after_job() -> None:
    am = opened_session(badge_out="after_job")
    am.handle(JobStarted(1.0))
    effects = am.handle(badge(ADA, 10.0))
    assert closed(effects).reason == "badge_out" and RelayOff not in kinds(effects)
    assert am.state is State.ENDING and am.relay_on
    assert am.handle(Tick(10_000.0)) == []  # no grace timer while the job runs
    assert am.handle(JobEnded(10_001.0))[0] == RelayOff("job_finished")
    assert am.state is State.LOCKED


def test_badge_out_during_a_job_cuts_at_once_when_immediately() -> None:
    am = opened_session(badge_out="immediately")
    am.handle(JobStarted(1.0))
    effects = am.handle(badge(ADA, 10.0))
    assert effects[0] == RelayOff("badge_out") and closed(effects).jobs == 1
    assert am.state is State.LOCKED


def test_the_member_may_badge_back_in_while_their_job_finishes() -> None:
    am = opened_session()
    am.handle(JobStarted(1.0))
    am.handle(badge(ADA, 10.0))
    assert am.handle(badge(BO, 11.0))[0] == Refused(
        "in_use", "Finishing Ada's job. Badge again when it ends.", "m-bo"
    )
    effects = am.handle(badge(ADA, 12.0))
    assert SessionOpened in kinds(effects) and RelayOn not in kinds(effects)
    assert am.state is State.IN_USE


def test_a_job_started_during_grace_is_stopped_and_never_holds_the_relay() -> None:
    """The measured hole: a remote start one second after badge-out kept power on for
    the whole job.  Now the job is stopped and the grace period ends on time."""
    am = opened_session(grace_period=10)
    am.handle(badge(ADA, 1.0))
    effects = am.handle(JobStarted(2.0))
    assert StopJob in kinds(effects)
    assert am.relay_on and am.snapshot.job_member is None
    assert am.handle(Tick(11.5))[0] == RelayOff("grace_period_over")
    assert not am.relay_on


def test_a_job_started_during_grace_under_remote_start_always_holds_the_relay() -> None:
    am = opened_session(grace_period=10, remote_start="always")
    am.handle(badge(ADA, 1.0))
    assert StopJob not in kinds(am.handle(JobStarted(2.0)))
    assert am.handle(Tick(100.0)) == []
    assert am.relay_on
    assert am.handle(JobEnded(200.0))[0] == RelayOff("job_finished")


def test_a_job_without_a_session_is_stopped() -> None:
    am = machine()
    effects = am.handle(JobStarted(1.0))
    assert kinds(effects) == [StopJob] and not am.relay_on
    effects = am.handle(badge(ADA, 2.0))
    assert RelayOn in kinds(effects) and am.state is State.IN_USE
    assert am.snapshot.job_member == ADA.id


def test_a_job_ending_during_the_grace_period_leaves_the_grace_running() -> None:
    am = opened_session(grace_period=10)
    am.handle(badge(ADA, 1.0))
    am.handle(JobStarted(2.0))
    assert RelayOff not in kinds(am.handle(JobEnded(3.0)))
    assert am.relay_on and am.state is State.ENDING
    assert am.handle(Tick(11.5))[0] == RelayOff("grace_period_over")


def test_a_paused_job_nobody_resumes_does_not_hold_power_for_ever() -> None:
    am = opened_session(idle_timeout=60)
    am.handle(JobStarted(1.0))
    am.handle(JobPaused(100.0))  # paused in the session: the member is there
    am.handle(badge(ADA, 200.0))  # badged out: the unattended time starts now
    assert am.relay_on and am.state is State.ENDING
    assert am.handle(Tick(250.0)) == []
    am.handle(JobResumed(255.0))
    am.handle(JobPaused(256.0))
    assert am.handle(Tick(300.0)) == []
    assert am.handle(Tick(316.0))[0] == RelayOff("paused_unattended")
    assert not am.relay_on


def test_a_paused_job_in_a_session_is_left_alone() -> None:
    am = opened_session(idle_timeout=60)
    am.handle(JobStarted(1.0))
    am.handle(JobPaused(2.0))
    assert am.handle(Tick(500.0)) == [] and am.state is State.IN_USE


# -- the presence rule for starting a job ------------------------------------------------


def test_a_start_needs_a_member_in_session() -> None:
    am = machine()
    refused = may_start(am.snapshot, am.rules, at_machine=False)
    assert isinstance(refused, StartRefused) and refused.reason == "no_session"
    assert "badge in at the machine first" in refused.message
    am.handle(badge(ADA, 0.0))
    for at_machine in (True, False):
        allowed = may_start(am.snapshot, am.rules, at_machine=at_machine)
        assert allowed == StartAllowed(ADA.id, ADA.name)


def test_a_start_in_the_grace_period_is_refused() -> None:
    am = opened_session(grace_period=10)
    am.handle(badge(ADA, 1.0))
    assert am.relay_on
    for at_machine in (True, False):
        refused = may_start(am.snapshot, am.rules, at_machine=at_machine)
        assert isinstance(refused, StartRefused) and refused.reason == "no_session"


def test_remote_start_never_refuses_remote_callers_even_in_a_session() -> None:
    am = opened_session(remote_start="never")
    refused = may_start(am.snapshot, am.rules, at_machine=False)
    assert isinstance(refused, StartRefused) and refused.reason == "remote_start_off"
    assert may_start(am.snapshot, am.rules, at_machine=True) == StartAllowed(ADA.id, ADA.name)


def test_remote_start_always_allows_a_powered_machine_without_a_session() -> None:
    am = opened_session(remote_start="always", grace_period=10)
    am.handle(badge(ADA, 1.0))
    assert may_start(am.snapshot, am.rules, at_machine=False) == StartAllowed(None, None)
    assert isinstance(may_start(am.snapshot, am.rules, at_machine=True), StartRefused)
    am.handle(Tick(20.0))
    assert isinstance(may_start(am.snapshot, am.rules, at_machine=False), StartRefused)


# -- live re-check and the admin's cut -----------------------------------------------------


def test_a_revoked_member_without_a_job_loses_power_at_once() -> None:
    am = opened_session(grace_period=10)
    effects = am.handle(MemberRevoked(ADA.id, "suspended", "Ada is suspended.", 5.0))
    assert effects[0] == RelayOff("revoked")
    c = closed(effects)
    assert c.reason == "revoked" and c.message == "Ada is suspended."
    assert not am.relay_on and am.state is State.LOCKED


def test_a_revoked_members_job_finishes_by_the_job_rule() -> None:
    am = opened_session(grace_period=10)
    am.handle(JobStarted(1.0))
    effects = am.handle(MemberRevoked(ADA.id, "expired", "Ada's membership ended.", 5.0))
    assert kinds(effects)[0] is SessionClosed and RelayOff not in kinds(effects)
    assert am.state is State.ENDING and am.relay_on
    assert isinstance(may_start(am.snapshot, am.rules, at_machine=True), StartRefused)
    assert am.handle(JobEnded(60.0))[0] == RelayOff("job_finished")


def test_a_revoked_members_job_is_cut_when_badge_out_is_immediately() -> None:
    am = opened_session(badge_out="immediately")
    am.handle(JobStarted(1.0))
    effects = am.handle(MemberRevoked(ADA.id, "suspended", "Suspended.", 5.0))
    assert effects[0] == RelayOff("revoked") and not am.relay_on


def test_revoking_someone_else_changes_nothing() -> None:
    am = opened_session()
    assert am.handle(MemberRevoked(BO.id, "suspended", "Bo is suspended.", 5.0)) == []
    assert am.state is State.AUTHORISED


def test_revoking_the_member_in_their_grace_period_ends_it() -> None:
    am = opened_session(grace_period=10)
    am.handle(badge(ADA, 1.0))
    assert am.handle(MemberRevoked(ADA.id, "suspended", "x", 2.0)) == [
        RelayOff("revoked"),
        ShowIndicator("locked"),
    ]


def test_the_admin_cut_stops_power_under_a_finishing_job() -> None:
    am = opened_session()
    am.handle(JobStarted(1.0))
    am.handle(MemberRevoked(ADA.id, "suspended", "x", 2.0))
    effects = am.handle(CutNow("token:admin", 3.0))
    assert effects[0] == RelayOff("admin_cut") and not am.relay_on


# -- timeouts --------------------------------------------------------------------------


def test_idle_timeout_ends_a_session_without_a_job() -> None:
    am = opened_session(idle_timeout=60, grace_period=0)
    assert am.handle(Tick(59.0)) == []
    effects = am.handle(Tick(60.0))
    assert effects[0] == RelayOff("idle_timeout") and closed(effects).reason == "idle_timeout"


def test_idle_timeout_never_fires_during_a_job() -> None:
    am = opened_session(idle_timeout=60)
    am.handle(JobStarted(1.0))
    assert am.handle(Tick(5_000.0)) == []
    am.handle(JobEnded(5_000.0))
    assert am.handle(Tick(5_059.0)) == []
    assert closed(am.handle(Tick(5_060.0))).reason == "idle_timeout"


def test_max_session_during_a_job_waits_for_it_after_job() -> None:
    am = opened_session(max_session=3600, idle_timeout=10_000)
    am.handle(JobStarted(1.0))
    effects = am.handle(Tick(3600.0))
    assert closed(effects).reason == "max_session" and RelayOff not in kinds(effects)
    assert am.state is State.ENDING
    assert am.handle(JobEnded(4000.0))[0] == RelayOff("job_finished")


def test_max_session_cuts_at_once_when_immediately() -> None:
    am = opened_session(max_session=3600, idle_timeout=10_000, badge_out="immediately")
    am.handle(JobStarted(1.0))
    effects = am.handle(Tick(3600.0))
    assert effects[0] == RelayOff("max_session") and am.state is State.LOCKED


def test_max_session_without_a_job() -> None:
    am = opened_session(max_session=100, idle_timeout=10_000, grace_period=0)
    am.handle(JobStarted(1.0))
    am.handle(JobEnded(50.0))
    assert closed(am.handle(Tick(100.0))).reason == "max_session"


# -- safety ----------------------------------------------------------------------------


def test_interlock_cuts_mid_job_and_blocks_new_sessions_until_cleared() -> None:
    am = opened_session()
    am.handle(JobStarted(1.0))
    effects = am.handle(InterlockTripped("lid", "lid", 2.0))
    assert effects[0] == RelayOff("interlock") and closed(effects).reason == "interlock"
    assert Buzz("warning") in effects
    assert am.state is State.LOCKED and not am.relay_on
    assert am.handle(badge(ADA, 3.0))[0] == Refused(
        "interlock", "Close the lid before starting.", "m-ada"
    )
    am.handle(InterlockCleared("lid", 4.0))
    assert RelayOn in kinds(am.handle(badge(ADA, 5.0)))


def test_estop_interlock_closes_with_reason_estop() -> None:
    am = opened_session()
    assert closed(am.handle(InterlockTripped("stop", "estop", 1.0))).reason == "estop"


def test_estop_cuts_at_once_and_ends_the_job() -> None:
    am = opened_session(badge_out="after_job")
    am.handle(JobStarted(1.0))
    effects = am.handle(EStop(2.0))
    assert effects[0] == RelayOff("estop") and closed(effects).reason == "estop"
    assert not am.snapshot.job_running


def test_estop_during_a_deferred_end_cuts_too() -> None:
    am = opened_session()
    am.handle(JobStarted(1.0))
    am.handle(badge(ADA, 2.0))
    effects = am.handle(EStop(3.0))
    assert effects[0] == RelayOff("estop") and SessionClosed not in kinds(effects)


def test_shutdown_cuts_and_closes() -> None:
    am = opened_session()
    effects = am.handle(Shutdown(7.0))
    assert effects[:2] == [RelayOff("shutdown"), SessionClosed("m-ada", "Ada", "shutdown", 7.0, 0)]


# -- lockout ---------------------------------------------------------------------------


def test_lockout_cuts_a_running_job_and_only_maintainers_may_badge_in() -> None:
    am = opened_session()
    am.handle(JobStarted(1.0))
    effects = am.handle(LockoutSet("tube replacement", "staff", 2.0))
    assert effects[0] == RelayOff("lockout") and closed(effects).reason == "lockout"
    assert LockoutUpdated(True, "tube replacement", "staff") in effects
    assert am.state is State.LOCKOUT
    refused = am.handle(badge(ADA, 3.0))[0]
    assert isinstance(refused, Refused) and refused.reason == "locked_out"
    assert isinstance(am.handle(badge(TRAINER, 4.0))[0], Refused)
    assert RelayOn in kinds(am.handle(badge(MAINTAINER, 5.0)))
    assert am.state is State.IN_USE  # the job flag is the machine's, not ours


def test_maintainer_session_under_lockout_ends_without_grace() -> None:
    am = machine(grace_period=10)
    am.handle(LockoutSet("service", "staff", 0.0))
    am.handle(badge(MAINTAINER, 1.0))
    effects = am.handle(badge(MAINTAINER, 2.0))
    assert effects[0] == RelayOff("badge_out") and am.state is State.LOCKOUT


def test_clearing_the_lockout() -> None:
    am = machine()
    am.handle(LockoutSet("service", "staff", 0.0))
    assert am.handle(LockoutCleared("m-max", 1.0)) == [
        LockoutUpdated(False, None, "m-max"),
        ShowIndicator("locked"),
    ]
    assert am.state is State.LOCKED
    assert am.handle(LockoutCleared("m-max", 2.0)) == []
    assert RelayOn in kinds(am.handle(badge(ADA, 3.0)))


def test_clearing_the_lockout_keeps_the_maintainers_session() -> None:
    am = machine()
    am.handle(LockoutSet("service", "staff", 0.0))
    am.handle(badge(MAINTAINER, 1.0))
    am.handle(LockoutCleared("m-max", 2.0))
    assert am.state is State.AUTHORISED and am.snapshot.lockout is None


def test_a_restored_lockout_starts_locked_out() -> None:
    am = AccessMachine(MachineRules(), lockout=Lockout("service", "staff"))
    assert am.state is State.LOCKOUT and am.snapshot.indicator == "lockout"


# -- induction -------------------------------------------------------------------------


def test_trainer_then_uninducted_member_inducts_and_hands_over() -> None:
    am = opened_session(TRAINER, trainer_window=30)
    effects = am.handle(badge(NEWBIE, 20.0))
    assert effects[0] == InductionRecorded("m-tess", "m-nia")
    assert closed(effects).reason == "takeover"
    assert SessionOpened("m-nia", "Nia", Role.USER, "m-tess") in effects
    assert Buzz("induction") in effects and RelayOn not in kinds(effects)
    assert am.snapshot.session is not None and am.snapshot.session.member_id == "m-nia"
    assert am.snapshot.trainer is None


def test_induction_after_the_window_is_refused() -> None:
    am = opened_session(TRAINER, trainer_window=30)
    refused = am.handle(badge(NEWBIE, 31.0))[0]
    assert isinstance(refused, Refused) and refused.reason == "not_inducted"


def test_induction_after_the_trainer_badged_out_switches_the_relay_back_on() -> None:
    am = opened_session(TRAINER, trainer_window=30, grace_period=5)
    am.handle(badge(TRAINER, 1.0))
    am.handle(Tick(6.0))
    assert am.state is State.LOCKED
    effects = am.handle(badge(NEWBIE, 10.0))
    assert effects[:2] == [InductionRecorded("m-tess", "m-nia"), RelayOn("induction")]


def test_no_induction_while_a_job_runs_or_someone_else_has_the_machine() -> None:
    am = opened_session(TRAINER)
    am.handle(JobStarted(1.0))
    refused = am.handle(badge(NEWBIE, 2.0))[0]
    assert isinstance(refused, Refused) and refused.reason == "in_use"
    am = opened_session(TRAINER, grace_period=10)
    am.handle(badge(TRAINER, 1.0))
    am.handle(badge(ADA, 2.0))  # Ada's session ends the trainer's window
    effects = am.handle(badge(NEWBIE, 3.0))
    assert InductionRecorded not in kinds(effects)
    assert isinstance(effects[0], Refused) and effects[0].reason == "not_inducted"


def test_a_plain_user_does_not_open_a_trainer_window() -> None:
    am = opened_session(ADA)
    refused = am.handle(badge(NEWBIE, 2.0))[0]
    assert isinstance(refused, Refused) and refused.reason == "not_inducted"


# -- rate limiting ---------------------------------------------------------------------


def test_repeated_refusals_are_rate_limited_even_for_valid_badges() -> None:
    am = machine(denied_rate_limit=3, denied_window=60)
    for t in (0.0, 1.0, 2.0):
        assert isinstance(am.handle(badge(None, t))[0], Refused)
    effects = am.handle(badge(ADA, 10.0))
    assert effects[0] == RateLimited(50.0, "Too many attempts, wait 50 s")
    assert not am.relay_on and am.retry_after(10.0) == 50.0
    assert am.handle(badge(None, 20.0))[0] == RateLimited(40.0, "Too many attempts, wait 40 s")
    assert RelayOn in kinds(am.handle(badge(ADA, 60.5)))
    assert am.retry_after(60.5) is None


# -- invariants over random sequences ------------------------------------------------------

SAFETY = (InterlockTripped, EStop, LockoutSet, Shutdown)
EXPIRED = Member("m-old", "Old", {"laser-1": Role.USER})
PEOPLE = [ADA, BO, TRAINER, MAINTAINER, NEWBIE, None]
WEIGHTED = [ADA, ADA, ADA, *PEOPLE]  # the same member twice in a row is the common case


class AccessMachineRules(RuleBasedStateMachine):
    """Random inputs; the relay as the hardware sees it is checked after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.relay = False
        self.am = machine()
        self.inducted: set[str] = set()
        self.revoked: set[str] = set()

    @initialize(
        badge_out=st.sampled_from(["after_job", "immediately"]),
        grace=st.sampled_from([0.0, 10.0]),
        idle=st.sampled_from([20.0, 50.0]),
        max_session=st.sampled_from([60.0, 200.0]),
        remote_start=st.sampled_from(["with_session", "with_session", "never", "always"]),
    )
    def setup(
        self, badge_out: str, grace: float, idle: float, max_session: float, remote_start: str
    ) -> None:
        self.am = machine(
            badge_out=badge_out,
            grace_period=grace,
            idle_timeout=idle,
            max_session=max_session,
            trainer_window=30,
            denied_rate_limit=3,
            denied_window=20,
            remote_start=remote_start,
        )

    def step(self, event: Input) -> list[Effect]:
        job_before = self.am.snapshot.job_running
        attended_before = self.am.snapshot.job_member is not None
        effects = self.am.handle(event)
        for effect in effects:
            if isinstance(effect, RelayOn):
                assert not self.relay, "relay switched on twice"
                assert isinstance(event, BadgePresented), "only a badge switches the relay on"
                assert SessionOpened in kinds(effects)
                self.relay = True
            elif isinstance(effect, RelayOff):
                assert self.relay, "relay switched off twice"
                self.relay = False
                if job_before and not isinstance(event, JobEnded):
                    assert isinstance(event, (*SAFETY, CutNow)) or (
                        (
                            self.am.rules.badge_out == "immediately"
                            and isinstance(event, BadgePresented | BadgeOut | MemberRevoked)
                        )
                        or (isinstance(event, Tick) and effect.reason == "max_session")
                        or (isinstance(event, Tick) and effect.reason == "paused_unattended")
                        or (
                            # a job started with nobody in session never holds the relay
                            isinstance(event, Tick | MemberRevoked)
                            and effect.reason in ("grace_period_over", "revoked")
                            and not attended_before
                        )
                    ), f"relay cut mid-job by {event}"
            elif isinstance(effect, SessionClosed) and effect.reason == "idle_timeout":
                assert not job_before, "idle timeout fired during a job"
            elif isinstance(effect, InductionRecorded):
                self.inducted.add(effect.member_id)
            elif isinstance(effect, StopJob):
                assert isinstance(event, JobStarted)
                assert self.am.snapshot.session is None, "a job in a session was stopped"
        if isinstance(event, JobStarted) and not job_before:
            assert (StopJob in kinds(effects)) == (
                self.am.snapshot.session is None
                and not (self.am.rules.remote_start == "always" and self.am.relay_on)
            ), "a job with nobody in session was not stopped"
        if isinstance(event, (*SAFETY, CutNow)):
            assert not self.relay and self.am.snapshot.session is None, f"{event} did not cut"
        return effects

    @rule(who=st.sampled_from(WEIGHTED))
    def present(self, who: Member | None) -> None:
        lockout = self.am.snapshot.lockout
        if who is not None and who.id in self.inducted and who.role_on("laser-1") is None:
            who = Member(who.id, who.name, {"laser-1": Role.USER})
        event = badge(who, self.now)
        if who is not None and who.id in self.revoked:
            event = BadgePresented(Denied("suspended", "Suspended.", who), self.now)
        if (
            lockout
            and isinstance(event.decision, Granted)
            and event.decision.role < Role.MAINTAINER
        ):
            event = BadgePresented(Denied("locked_out", "Locked out.", who), self.now)
        self.step(event)

    @rule(kind=st.sampled_from(["expired", "stale_user", "stale_trainer"]))
    def other_decision(self, kind: str) -> None:
        """An expired member, or a grant decided before a lockout or interlock arrived."""
        if kind == "expired":
            decision: Granted | Denied = Denied("expired", "Expired.", EXPIRED)
        else:
            who = ADA if kind == "stale_user" else TRAINER
            if who.id in self.revoked:
                # The service decides and feeds a badge in one step: a grant can be
                # stale against a lockout, never against the access list.
                return
            decision = Granted(who, who.roles["laser-1"])
        self.step(BadgePresented(decision, self.now))

    @rule()
    def booker_arrives(self) -> None:
        """Bo, whose booking has started (the policy refuses everyone else then, so
        only his grant is booked): he may take an idle machine over, never mid-job."""
        if BO.id in self.revoked or self.am.snapshot.lockout is not None:
            return
        before = self.am.snapshot
        effects = self.step(booker(BO, self.now))
        if before.job_running and before.session is not None and before.session.member_id != BO.id:
            assert not any(isinstance(e, SessionClosed) for e in effects), "taken mid-job"

    @rule(dt=st.sampled_from([0.5, 3.0, 11.0, 40.0, 120.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.step(Tick(self.now))

    @rule(start=st.booleans())
    def job(self, start: bool) -> None:
        self.step(JobStarted(self.now) if start else JobEnded(self.now))

    @rule(
        what=st.sampled_from(
            [
                "trip lid",
                "trip door",
                "clear lid",
                "clear door",
                "estop",
                "lockout",
                "clear lockout",
            ]
        )
    )
    def safety(self, what: str) -> None:
        verb, _, name = what.partition(" ")
        match verb:
            case "trip":
                self.step(InterlockTripped(name, name, self.now))
            case "clear" if name == "lockout":
                self.step(LockoutCleared("m-max", self.now))
            case "clear":
                self.step(InterlockCleared(name, self.now))
            case "estop":
                self.step(EStop(self.now))
            case "lockout":
                self.step(LockoutSet("service", "staff", self.now))

    @rule()
    def badge_out(self) -> None:
        self.step(BadgeOut(self.now))

    @rule(who=st.sampled_from([ADA, BO, TRAINER]))
    def new_list_revokes(self, who: Member) -> None:
        self.revoked.add(who.id)
        self.step(MemberRevoked(who.id, "suspended", "Suspended.", self.now))

    @rule(pause=st.booleans())
    def pause_or_resume(self, pause: bool) -> None:
        if self.am.snapshot.job_running:
            self.step(JobPaused(self.now) if pause else JobResumed(self.now))

    @rule()
    def admin_cuts(self) -> None:
        self.step(CutNow("admin", self.now))

    @rule(at_machine=st.booleans())
    def ask_to_start(self, at_machine: bool) -> None:
        """The presence rule as the machine asks it; an allowed start then happens."""
        s, rules = self.am.snapshot, self.am.rules
        answer = may_start(s, rules, at_machine=at_machine)
        if isinstance(answer, StartAllowed):
            if s.session is None:
                assert rules.remote_start == "always" and not at_machine and self.relay
            else:
                assert answer.member_id == s.session.member_id
                assert at_machine or rules.remote_start != "never"
            self.step(JobStarted(self.now))
        else:
            assert s.session is None or (not at_machine and rules.remote_start == "never")

    @invariant()
    def relay_matches_the_state(self) -> None:
        assert self.relay == self.am.relay_on

    @invariant()
    def session_exactly_in_authorised_and_in_use(self) -> None:
        s = self.am.snapshot
        assert (s.session is not None) == (s.state in (State.AUTHORISED, State.IN_USE))
        if s.state is State.IN_USE:
            assert s.job_running
        if s.state is State.AUTHORISED:
            assert not s.job_running

    @invariant()
    def relay_on_only_for_an_authorised_unexpired_member_or_a_deferred_end(self) -> None:
        s, rules = self.am.snapshot, self.am.rules
        if not self.relay:
            return
        assert not s.tripped
        if s.session is not None:
            assert s.session.member_id in {m.id for m in PEOPLE if m} - {"m-nia"} | self.inducted
            assert s.session.member_id not in self.revoked
            assert self.now - s.session.started_at < rules.max_session
            if not s.job_running:
                assert self.now - s.session.last_activity < rules.idle_timeout
            if s.lockout is not None:
                assert s.session.role is Role.MAINTAINER
        else:
            assert s.state is State.ENDING and s.previous is not None
            if not s.job_running:
                assert s.lockout is None and s.grace_until is not None
                assert self.now < s.grace_until <= self.now + rules.grace_period + 120

    @invariant()
    def power_needs_a_present_member_except_a_job_finishing_under_its_rule(self) -> None:
        """The presence rule: with nobody in session the relay is on only for a job that
        started in a member's session and finishes under ``badge_out = after_job``, or
        for the bounded grace period (which a job started without a member never extends)."""
        s, rules = self.am.snapshot, self.am.rules
        if s.session is not None and s.job_running:
            assert s.job_member == s.session.member_id
        if not self.relay or s.session is not None:
            return
        assert s.previous is not None
        if s.grace_until is None:
            assert s.job_running, "relay held with no job and no grace period"
            if s.paused_since is not None:
                assert self.now - s.paused_since < rules.idle_timeout, "stalled job held power"
            if rules.remote_start != "always":
                assert rules.badge_out == "after_job"
                assert s.job_member == s.previous.member_id, "relay held for an unattended job"
        else:
            assert self.now < s.grace_until <= self.now + rules.grace_period + 120
            assert s.previous.member_id not in self.revoked, "grace kept for a revoked member"

    @invariant()
    def lockout_state_means_relay_off(self) -> None:
        s = self.am.snapshot
        if s.state is State.LOCKOUT:
            assert s.lockout is not None and not self.relay


AccessMachineRules.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAccessMachine = AccessMachineRules.TestCase
