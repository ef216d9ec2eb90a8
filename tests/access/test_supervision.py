"""Supervision, lone working and grant levels in the access state machine, then random
sequences against the invariants: power only with an authorised member present, a
supervised session never runs unsupervised beyond its grace, every refusal names its rule."""

from __future__ import annotations

from typing import Any, get_args

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gateway.access.config import MachineRules
from gateway.access.members import Denied, Granted, Member, Role
from gateway.access.presence_feed import Sighting
from gateway.access.session import (
    AccessMachine,
    BadgeOut,
    BadgePresented,
    Effect,
    GrantLevelChosen,
    InductionRecorded,
    Input,
    JobEnded,
    JobStarted,
    LevelLowered,
    PresenceLeft,
    PresenceSeen,
    RefusalReason,
    Refused,
    RelayOff,
    RelayOn,
    SessionClosed,
    SessionOpened,
    SessionPolicy,
    State,
    SupervisionChanged,
    Tick,
)

SAM = Member("m-sam", "Sam", {"laser-1": Role.USER})  # supervised
IVY = Member("m-ivy", "Ivy", {"laser-1": Role.USER})  # independent
JO = Member("m-jo", "Jo", {"laser-1": Role.USER})  # independent
TESS = Member("m-tess", "Tess", {"laser-1": Role.TRAINER})
NIA = Member("m-nia", "Nia", {})


def granted(m: Member) -> Granted:
    if m is SAM:
        return Granted(m, Role.USER, level="supervised", rank=1, supervised=True)
    if m is TESS:
        return Granted(m, Role.TRAINER, level="trainer", rank=3, can_supervise=True)
    return Granted(m, Role.USER, level="independent", rank=2, can_supervise=True)


def badge(m: Member, at: float) -> BadgePresented:
    if m is NIA:
        return BadgePresented(Denied("not_inducted", "Not inducted.", m), at)
    return BadgePresented(granted(m), at)


def door(m: Member, at: float, *, supervises: bool = True, ttl: float = 3600) -> PresenceSeen:
    return PresenceSeen(Sighting(m.id, m.name, supervises, at + ttl, "door"), at)


def make(**kw: Any) -> AccessMachine:
    policy = SessionPolicy(
        supervision_window=kw.pop("window", 600.0),
        supervision_grace=kw.pop("supervision_grace", 60.0),
        lone_working=kw.pop("lone_working", False),
    )
    return AccessMachine(MachineRules(**{"grace_period": 0, **kw}), policy=policy)


def of(effects: list[Effect], kind: type[Any]) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def test_a_supervised_member_alone_is_refused_naming_the_rule() -> None:
    am = make()
    (refused,) = of(am.handle(badge(SAM, 0)), Refused)
    assert refused.reason == "needs_supervision"
    assert "supervisor" in refused.message and "Sam" in refused.message
    assert not am.relay_on


def test_a_supervisor_who_badged_here_within_the_window_admits_them() -> None:
    am = make(window=600.0)
    am.handle(badge(IVY, 0))
    am.handle(badge(IVY, 5))  # Ivy badges out again but is still around
    assert not am.relay_on
    (opened,) = of(am.handle(badge(SAM, 100)), SessionOpened)
    assert (opened.supervisor_id, opened.supervisor_name) == ("m-ivy", "Ivy")
    assert am.relay_on
    am.handle(badge(SAM, 110))  # Sam badges out
    # After the window nobody counts as present any more.
    (refused,) = of(am.handle(badge(SAM, 700)), Refused)
    assert refused.reason == "needs_supervision"


def test_a_long_session_badged_out_at_the_screen_still_counts_as_present() -> None:
    am = make(window=600.0, max_session=10_000, idle_timeout=10_000)
    am.handle(badge(IVY, 0))
    am.handle(BadgeOut(5000))  # two hours later, with the screen's button
    assert of(am.handle(badge(SAM, 5010)), SessionOpened)[0].supervisor_id == "m-ivy"


def test_a_supervisor_in_session_hands_the_machine_over() -> None:
    am = make()
    am.handle(badge(IVY, 0))
    effects = am.handle(badge(SAM, 10))
    (closed,) = of(effects, SessionClosed)
    assert (closed.member_id, closed.reason) == ("m-ivy", "handover")
    (opened,) = of(effects, SessionOpened)
    assert (opened.member_id, opened.supervisor_id) == ("m-sam", "m-ivy")
    assert not of(effects, RelayOff) and am.relay_on


def test_the_session_ends_after_the_grace_when_the_supervisor_leaves() -> None:
    am = make(supervision_grace=60.0)
    am.handle(badge(IVY, 0))
    am.handle(badge(SAM, 10))
    effects = am.handle(badge(IVY, 20))  # Ivy badges off: leaving
    (warning,) = of(effects, SupervisionChanged)
    assert warning.supervisor_id is None and warning.ends_in == 60.0
    assert "Ivy has left" in warning.message
    assert am.relay_on
    assert not of(am.handle(Tick(79)), SessionClosed)
    effects = am.handle(Tick(80))
    (closed,) = of(effects, SessionClosed)
    assert closed.reason == "supervisor_left"
    assert of(effects, RelayOff) and not am.relay_on


def test_a_running_job_finishes_under_its_rule_when_supervision_ends() -> None:
    am = make(supervision_grace=30.0, badge_out="after_job")
    am.handle(badge(IVY, 0))
    am.handle(badge(SAM, 1))
    am.handle(JobStarted(2))
    am.handle(PresenceLeft("m-ivy", 3))
    effects = am.handle(Tick(40))
    assert of(effects, SessionClosed)[0].reason == "supervisor_left"
    assert not of(effects, RelayOff)
    assert am.state is State.ENDING and am.relay_on
    assert of(am.handle(JobEnded(50)), RelayOff)


def test_a_level_lowered_mid_session_needs_a_supervisor_within_the_grace() -> None:
    am = make(supervision_grace=60.0)
    am.handle(badge(JO, 0))  # independent when the session opened
    effects = am.handle(LevelLowered("m-jo", "supervised", 10))
    (warning,) = of(effects, SupervisionChanged)
    assert warning.supervisor_id is None and warning.ends_in == 60.0
    assert warning.message.startswith(
        "Your induction is now supervised: it needs a supervisor present. "
        "Without a supervisor your session ends in 60 s."
    )
    session = am.snapshot.session
    assert session is not None and session.supervised and session.level == "supervised"
    assert not session.can_supervise and am.relay_on
    # Said once: the list arriving again changes nothing.
    assert am.handle(LevelLowered("m-jo", "supervised", 20)) == []
    effects = am.handle(Tick(70))
    assert of(effects, SessionClosed)[0].reason == "supervisor_left" and not am.relay_on


def test_a_lowered_level_with_a_supervisor_present_keeps_the_session() -> None:
    am = make(supervision_grace=60.0)
    am.handle(door(IVY, 0))
    am.handle(badge(JO, 1))
    (watched,) = of(am.handle(LevelLowered("m-jo", "supervised", 10)), SupervisionChanged)
    assert watched.supervisor_name == "Ivy" and watched.ends_in is None
    assert not of(am.handle(Tick(500)), SessionClosed)
    # Someone else's level, or none in session: nothing to do.
    assert am.handle(LevelLowered("m-ivy", "supervised", 501)) == []


def test_another_supervisor_arriving_in_the_grace_keeps_the_session() -> None:
    am = make(supervision_grace=60.0)
    am.handle(badge(IVY, 0))
    am.handle(badge(SAM, 1))
    am.handle(PresenceLeft("m-ivy", 2))
    (resumed,) = of(am.handle(door(JO, 30)), SupervisionChanged)
    assert resumed.supervisor_name == "Jo" and resumed.ends_in is None
    assert not of(am.handle(Tick(200)), SessionClosed)
    # A supervisor badging at the machine takes over supervision too.
    (taken,) = of(am.handle(badge(IVY, 210)), SupervisionChanged)
    assert taken.supervisor_id == "m-ivy"
    assert am.snapshot.session is not None and am.snapshot.session.member_id == "m-sam"


def test_someone_who_cannot_supervise_does_not_count() -> None:
    am = make()
    am.handle(door(JO, 0, supervises=False))
    assert of(am.handle(badge(SAM, 1)), Refused)[0].reason == "needs_supervision"


def test_lone_working_needs_a_second_member_in_the_space() -> None:
    am = make(lone_working=True)
    (refused,) = of(am.handle(badge(IVY, 0)), Refused)
    assert refused.reason == "lone_working"
    assert "two members" in refused.message
    am.handle(door(JO, 1, supervises=False))
    assert of(am.handle(badge(IVY, 2)), SessionOpened)
    am.handle(badge(IVY, 3))
    am.handle(PresenceLeft("m-jo", 4))
    assert of(am.handle(badge(IVY, 5)), Refused)[0].reason == "lone_working"


def test_lone_working_warns_then_ends_the_session_when_the_last_one_leaves() -> None:
    am = make(lone_working=True, supervision_grace=30.0, badge_out="after_job")
    am.handle(door(JO, 0, supervises=False))
    am.handle(badge(IVY, 1))
    (warning,) = of(am.handle(PresenceLeft("m-jo", 2)), SupervisionChanged)
    assert "alone in the space" in warning.message and warning.ends_in == 30.0
    # Someone arrives in time: the session goes on.
    (back,) = of(am.handle(door(NIA, 10, supervises=False)), SupervisionChanged)
    assert back.ends_in is None
    assert not of(am.handle(Tick(100)), SessionClosed)
    # Their sighting runs out: alone again; a running job finishes under its rule.
    am.handle(JobStarted(101))
    assert of(am.handle(Tick(3700)), SupervisionChanged)
    effects = am.handle(Tick(3731))
    assert of(effects, SessionClosed)[0].reason == "alone"
    assert am.state is State.ENDING and am.relay_on
    assert of(am.handle(JobEnded(3800)), RelayOff)


def test_a_trainer_grants_the_level_they_pick() -> None:
    am = make(trainer_window=60)
    am.handle(badge(TESS, 0))
    am.handle(GrantLevelChosen("independent", 2, False, 1))
    effects = am.handle(badge(SAM, 2))  # Sam is supervised: promoted
    (induction,) = of(effects, InductionRecorded)
    assert (induction.trainer_id, induction.member_id, induction.level) == (
        "m-tess",
        "m-sam",
        "independent",
    )
    assert of(effects, SessionClosed)[0].reason == "takeover"
    opened = of(effects, SessionOpened)[0]
    assert (opened.member_id, opened.inducted_by, opened.supervisor_id) == ("m-sam", "m-tess", None)


def test_a_supervised_grant_is_supervised_by_the_trainer() -> None:
    am = make(trainer_window=60)
    am.handle(badge(TESS, 0))
    am.handle(GrantLevelChosen("supervised", 1, True, 1))
    effects = am.handle(badge(NIA, 2))
    assert of(effects, InductionRecorded)[0].level == "supervised"
    opened = of(effects, SessionOpened)[0]
    assert (opened.member_id, opened.supervisor_id) == ("m-nia", "m-tess")
    assert am.snapshot.session is not None and am.snapshot.session.supervised


def test_a_level_choice_without_a_trainer_session_is_ignored() -> None:
    am = make()
    am.handle(badge(IVY, 0))
    am.handle(GrantLevelChosen("trainer", 3, False, 1))
    assert am.snapshot.trainer is None


def test_a_lapsed_induction_can_be_renewed_by_a_trainer() -> None:
    am = make(trainer_window=60)
    am.handle(badge(TESS, 0))
    lapsed = BadgePresented(Denied("induction_lapsed", "Lapsed.", IVY), 1)
    effects = am.handle(lapsed)
    assert of(effects, InductionRecorded)[0].member_id == "m-ivy"
    assert of(effects, SessionOpened)[0].member_id == "m-ivy"


# -- random sequences ------------------------------------------------------------------

REASONS = set(get_args(RefusalReason))
PEOPLE = [SAM, IVY, JO, TESS, NIA]


class SupervisionRules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.relay = False
        self.am = make()

    @initialize(
        badge_out=st.sampled_from(["after_job", "immediately"]),
        grace=st.sampled_from([0.0, 30.0]),
        lone=st.booleans(),
    )
    def setup(self, badge_out: str, grace: float, lone: bool) -> None:
        self.am = make(
            badge_out=badge_out,
            supervision_grace=grace,
            lone_working=lone,
            window=120.0,
            trainer_window=30,
            denied_rate_limit=50,
        )

    def step(self, event: Input) -> None:
        effects = self.am.handle(event)
        for effect in effects:
            if isinstance(effect, RelayOn):
                assert not self.relay
                assert isinstance(event, BadgePresented), "only a badge switches the relay on"
                self.relay = True
            elif isinstance(effect, RelayOff):
                assert self.relay
                self.relay = False
            elif isinstance(effect, Refused):
                assert effect.reason in REASONS and effect.message
            elif isinstance(effect, SessionOpened):
                session = self.am.snapshot.session
                assert session is not None and session.member_id == effect.member_id
                if session.supervised:
                    assert effect.supervisor_id not in (None, effect.member_id), (
                        "a supervised session opened without a supervisor"
                    )

    @rule(who=st.sampled_from(PEOPLE))
    def present(self, who: Member) -> None:
        self.step(badge(who, self.now))

    @rule(who=st.sampled_from(PEOPLE), supervises=st.booleans(), ttl=st.sampled_from([10, 500]))
    def seen(self, who: Member, supervises: bool, ttl: float) -> None:
        self.step(door(who, self.now, supervises=supervises, ttl=ttl))

    @rule(who=st.sampled_from(PEOPLE))
    def left(self, who: Member) -> None:
        self.step(PresenceLeft(who.id, self.now))

    @rule(level=st.sampled_from([("supervised", 1, True), ("independent", 2, False)]))
    def choose(self, level: tuple[str, int, bool]) -> None:
        self.step(GrantLevelChosen(*level, self.now))

    @rule()
    def level_lowered(self) -> None:
        """A new list puts the member in session at the supervised level."""
        session = self.am.snapshot.session
        if session is not None:
            self.step(LevelLowered(session.member_id, "supervised", self.now))

    @rule(dt=st.sampled_from([1.0, 20.0, 45.0, 200.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.step(Tick(self.now))

    @rule(start=st.booleans())
    def job(self, start: bool) -> None:
        self.step(JobStarted(self.now) if start else JobEnded(self.now))

    @invariant()
    def relay_follows_an_authorised_present_member(self) -> None:
        snap = self.am.snapshot
        assert snap.relay_on == self.relay
        if snap.relay_on and snap.state is not State.ENDING:
            assert snap.session is not None
        if snap.state is State.ENDING:
            assert snap.job_running or snap.grace_until is not None

    @invariant()
    def lone_working_sessions_have_company_or_are_ending(self) -> None:
        snap = self.am.snapshot
        s = snap.session
        alone = s is not None and snap.presence.others(self.now, excluding=s.member_id) < 1
        if alone and self.am.policy.lone_working:
            assert snap.alone_since is not None
            assert self.now - snap.alone_since < self.am.policy.supervision_grace

    @invariant()
    def supervised_sessions_are_supervised_or_ending(self) -> None:
        snap = self.am.snapshot
        s = snap.session
        if s is not None and s.supervised and s.supervisor_id is None:
            assert snap.supervision_lost_at is not None
            assert self.now - snap.supervision_lost_at < self.am.policy.supervision_grace


TestSupervisionRules = SupervisionRules.TestCase
TestSupervisionRules.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
