"""Induction expiry, bookings, tiers and the policy's judgement of a decision (pure)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given
from pydantic import ValidationError

from gateway.access import expiry
from gateway.access.bookings import Booking, BookingBook, BookingError, check_overlaps
from gateway.access.members import (
    AccessListError,
    Denied,
    Granted,
    Induction,
    Member,
    Role,
    decide,
    parse_access_list,
)
from gateway.access.policy import MachinePolicy, judge
from gateway.access.policy_config import ExpiryConfig, PolicyConfig
from gateway.access.policy_state import PolicyState
from gateway.access.tiers import Tiers

SECRET = b"policy-tests-secret-0123456789"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def member(machines: dict[str, Any], mid: str = "m-ada", name: str = "Ada") -> dict[str, Any]:
    return {"id": mid, "name": name, "badges": [], "machines": machines}


def doc(members: list[dict[str, Any]], bookings: list[dict[str, Any]] | None = None) -> bytes:
    body: dict[str, Any] = {
        "version": 1,
        "generated_at": "2026-11-30T00:00:00Z",
        "count": len(members),
        "members": members,
    }
    if bookings is not None:
        body["bookings"] = bookings
    return json.dumps(body).encode()


# -- the access list's induction details ---------------------------------------------------


def test_an_induction_object_gives_level_and_dates() -> None:
    entry = {"role": "user", "level": "supervised", "inducted_at": "2026-01-10"}
    lst = parse_access_list(doc([member({"laser-1": entry, "*": "user"})]), SECRET)
    m = lst.by_id("m-ada")
    assert m is not None and m.role_on("laser-1") is Role.USER
    ind = m.induction_on("laser-1")
    assert ind.level == "supervised"
    assert ind.inducted_at == datetime(2026, 1, 10, tzinfo=UTC)
    assert m.induction_on("cnc-1") == Induction()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"role": "user", "levle": "x"}, "unknown keys ['levle']"),
        ({"level": 3}, "'level' must be a level name"),
        ({"inducted_at": "yesterday"}, "inducted_at is not an ISO 8601"),
        ({"role": "boss"}, "unknown role 'boss'"),
    ],
)
def test_a_bad_induction_object_refuses_the_list_naming_it(entry: Any, message: str) -> None:
    with pytest.raises(AccessListError, match="member #1 \\(id 'm-ada'\\): machine 'laser-1'") as e:
        parse_access_list(doc([member({"laser-1": entry})]), SECRET)
    assert message in str(e.value)


# -- expiry -----------------------------------------------------------------------------------


def test_never_never_lapses() -> None:
    assert expiry.evaluate(ExpiryConfig(), Induction(), None, NOW) == expiry.NEVER


def test_duration_counts_from_the_induction() -> None:
    cfg = ExpiryConfig(rule="duration", days=365, warn_days=14)
    fresh = Induction(inducted_at=NOW - 355 * DAY)
    v = expiry.evaluate(cfg, fresh, None, NOW)
    assert not v.lapsed and v.days_left(NOW) == 10
    note = expiry.notice(cfg, v, "laser-1", NOW)
    assert note is not None and "laser-1 induction lapses in 10 days" in note
    old = expiry.evaluate(cfg, Induction(inducted_at=NOW - 400 * DAY), None, NOW)
    assert old.lapsed
    assert "lapsed on 2026-10-26" in expiry.denial(cfg, old, "Ada", "laser-1")
    unknown = expiry.evaluate(cfg, Induction(), None, NOW)
    assert unknown.lapsed and unknown.unknown
    assert "no induction date" in expiry.denial(cfg, unknown, "Ada", "laser-1")


def test_disuse_counts_from_the_last_session_here_or_in_the_list() -> None:
    cfg = ExpiryConfig(rule="disuse", days=90, warn_days=14)
    listed = Induction(inducted_at=NOW - 400 * DAY, last_used=NOW - 80 * DAY)
    v = expiry.evaluate(cfg, listed, None, NOW)
    assert not v.lapsed and v.days_left(NOW) == 10
    assert expiry.notice(cfg, v, "laser", NOW) == (
        "Your laser induction lapses in 10 days unless you use it."
    )
    assert expiry.evaluate(cfg, Induction(inducted_at=NOW - 100 * DAY), None, NOW).lapsed
    # A session recorded by this gateway renews it.
    assert not expiry.evaluate(cfg, Induction(inducted_at=NOW - 100 * DAY), NOW - DAY, NOW).lapsed
    assert expiry.notice(cfg, expiry.evaluate(cfg, listed, NOW - DAY, NOW), "laser", NOW) is None


def test_date_ends_inductions_made_before_it() -> None:
    cfg = ExpiryConfig(rule="date", date=date(2026, 12, 10))
    before = expiry.evaluate(cfg, Induction(inducted_at=NOW - 30 * DAY), None, NOW)
    assert not before.lapsed and before.days_left(NOW) == 9
    after = expiry.evaluate(cfg, Induction(inducted_at=NOW + 20 * DAY), None, NOW + 30 * DAY)
    assert not after.lapsed and after.lapses_at is None
    assert expiry.evaluate(cfg, Induction(), None, NOW + 30 * DAY).lapsed


@given(
    days=st.integers(1, 400),
    age=st.integers(0, 800),
    used=st.one_of(st.none(), st.integers(0, 800)),
)
def test_disuse_lapses_exactly_when_the_last_use_is_older_than_the_limit(
    days: int, age: int, used: int | None
) -> None:
    cfg = ExpiryConfig(rule="disuse", days=days)
    ind = Induction(inducted_at=NOW - age * DAY)
    last = None if used is None else NOW - used * DAY
    newest = min(age, used if used is not None else age)
    assert expiry.evaluate(cfg, ind, last, NOW).lapsed == (newest >= days)


# -- bookings -------------------------------------------------------------------------------


def booking(
    i: int, member_id: str, start: int, end: int, machine: str = "laser-1"
) -> dict[str, Any]:
    return {
        "id": f"b-{i}",
        "machine": machine,
        "member_id": member_id,
        "start": (NOW + start * timedelta(hours=1)).isoformat(),
        "end": (NOW + end * timedelta(hours=1)).isoformat(),
    }


TWO = [member({"*": "user"}), member({"*": "user"}, "m-bo", "Bo")]


def test_bookings_in_the_list_are_parsed() -> None:
    lst = parse_access_list(doc(TWO, [booking(1, "m-ada", 1, 3)]), SECRET)
    (b,) = lst.bookings
    assert (b.member_id, b.member_name, b.machine_id) == ("m-ada", "Ada", "laser-1")


@pytest.mark.parametrize(
    ("bookings", "message"),
    [
        (
            [booking(1, "m-ada", 1, 3, "laser-1"), booking(2, "m-ada", 2, 4, "cnc-1")],
            "bookings[1] overlaps bookings[0] for the same member 'm-ada'",
        ),
        (
            [booking(1, "m-ada", 1, 3), booking(2, "m-bo", 2, 4)],
            "bookings[1] overlaps bookings[0] for the same machine 'laser-1'",
        ),
        ([booking(1, "m-zed", 1, 3)], "bookings[0] is for member 'm-zed'"),
        ([booking(1, "m-ada", 3, 1)], "bookings[0] ends before it starts"),
        ([booking(1, "m-ada", 1, 2), booking(1, "m-bo", 3, 4)], "bookings[1] has the id 'b-1'"),
    ],
)
def test_contradicting_bookings_refuse_the_list_naming_the_entry(
    bookings: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(AccessListError) as e:
        parse_access_list(doc(TWO, bookings), SECRET)
    assert message in str(e.value)


def test_back_to_back_bookings_do_not_overlap() -> None:
    lst = parse_access_list(doc(TWO, [booking(1, "m-ada", 1, 2), booking(2, "m-bo", 2, 3)]), SECRET)
    assert len(lst.bookings) == 2


def _b(i: int, member_id: str, start: int, end: int) -> Booking:
    return Booking(
        f"b-{i}",
        "laser-1",
        member_id,
        member_id,
        NOW + start * timedelta(hours=1),
        NOW + end * timedelta(hours=1),
    )


def test_an_unused_booking_is_released_after_the_grace() -> None:
    book = BookingBook("laser-1", [_b(1, "m-ada", 0, 2), _b(2, "m-bo", 3, 4)])
    assert book.current(NOW + timedelta(minutes=10), frozenset(), 900) is not None
    assert book.current(NOW + timedelta(minutes=16), frozenset(), 900) is None
    assert book.current(NOW + timedelta(minutes=16), frozenset({"b-1"}), 900) is not None
    nxt = book.upcoming(NOW + timedelta(minutes=16), frozenset(), 900)
    assert nxt is not None and nxt.id == "b-2"


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 6), st.booleans()), max_size=12))
def test_overlap_check_agrees_with_pairwise_comparison(spans: list[tuple[int, int, bool]]) -> None:
    items = [_b(i, "m-ada" if who else "m-bo", s, s + n) for i, (s, n, who) in enumerate(spans)]
    clash = any(
        a.start < b.end and b.start < a.end for i, a in enumerate(items) for b in items[i + 1 :]
    )
    if clash:
        with pytest.raises(BookingError):
            check_overlaps(items)
    else:
        check_overlaps(items)


# -- tiers and the policy's judgement ---------------------------------------------------------


def test_a_supervised_level_without_a_higher_one_is_refused_at_load() -> None:
    with pytest.raises(ValidationError) as e:
        PolicyConfig(levels=[{"name": "independent"}, {"name": "supervised", "supervised": True}])
    assert "access.policy.levels[1]: level 'supervised' needs supervision" in str(e.value)
    with pytest.raises(ValidationError, match="default_level"):
        PolicyConfig(default_level="expert")
    with pytest.raises(ValidationError, match="rule 'disuse' needs days"):
        PolicyConfig(expiry={"rule": "disuse"})


def state(**policy: Any) -> PolicyState:
    return PolicyState("laser-1", PolicyConfig(**policy), tz=UTC)


def granted(m: Member, role: Role = Role.USER) -> Granted:
    return Granted(m, role)


def test_judge_gives_level_rank_and_supervision() -> None:
    ps = state()
    supervised = {"laser-1": Induction("supervised")}
    sam = Member("m-sam", "Sam", {"laser-1": Role.USER}, inductions=supervised)
    ivy = Member("m-ivy", "Ivy", {"laser-1": Role.USER})
    tess = Member("m-tess", "Tess", {"laser-1": Role.TRAINER})
    g = ps.judge(granted(sam), NOW)
    assert isinstance(g, Granted) and (g.level, g.rank, g.supervised, g.can_supervise) == (
        "supervised",
        1,
        True,
        False,
    )
    g = ps.judge(granted(ivy), NOW)
    assert isinstance(g, Granted) and (g.level, g.supervised, g.can_supervise) == (
        "independent",
        False,
        True,
    )
    g = ps.judge(granted(tess, Role.TRAINER), NOW)
    assert isinstance(g, Granted) and g.level == "trainer" and g.can_supervise


def test_judge_refuses_a_lapsed_induction_but_not_a_maintainer() -> None:
    ps = state(expiry={"rule": "disuse", "days": 30})
    old = {"laser-1": Induction(inducted_at=NOW - 60 * DAY)}
    ada = Member("m-ada", "Ada", {"laser-1": Role.USER}, inductions=old)
    d = ps.judge(granted(ada), NOW)
    assert isinstance(d, Denied) and d.reason == "induction_lapsed"
    assert "30 days without a session" in d.message
    max_ = Member("m-max", "Max", {"laser-1": Role.MAINTAINER}, inductions=old)
    assert isinstance(ps.judge(granted(max_, Role.MAINTAINER), NOW), Granted)
    ps.session_opened("m-ada", NOW - DAY)  # used here yesterday
    assert isinstance(ps.judge(granted(ada), NOW), Granted)


def test_judge_refuses_others_during_a_booking_in_force() -> None:
    ps = state(booking_grace=900)
    ps.set_list_bookings([_b(1, "m-bo", 0, 2)])
    ada = Member("m-ada", "Ada", {"laser-1": Role.USER})
    bo = Member("m-bo", "Bo", {"laser-1": Role.USER})
    during = NOW + timedelta(minutes=5)
    d = ps.judge(granted(ada), during)
    assert isinstance(d, Denied) and d.reason == "booked"
    assert d.message.startswith("Booked for m-bo until 14:00.")
    mine = ps.judge(granted(bo), during)
    assert isinstance(mine, Granted) and mine.booked  # Bo may take the machine over
    max_ = Member("m-max", "Max", {"laser-1": Role.MAINTAINER})
    theirs = ps.judge(granted(max_, Role.MAINTAINER), during)
    assert isinstance(theirs, Granted) and not theirs.booked
    before = ps.judge(granted(bo), NOW - timedelta(minutes=5))
    assert isinstance(before, Granted) and not before.booked
    # Unused after the grace: released for everyone.
    assert isinstance(ps.judge(granted(ada), NOW + timedelta(minutes=20)), Granted)
    # Used by the booker: held to the end.
    ps.session_opened("m-bo", during)
    d = ps.judge(granted(ada), NOW + timedelta(minutes=90))
    assert isinstance(d, Denied) and d.reason == "booked"


def test_a_booking_made_here_is_checked_against_the_others() -> None:
    lst = parse_access_list(doc(TWO), SECRET)
    ps = state()
    ps.set_list_bookings([_b(1, "m-bo", 0, 2)])
    with pytest.raises(BookingError, match="the new booking overlaps booking 'b-1'"):
        ps.new_booking(lst, "m-ada", NOW + timedelta(hours=1), NOW + timedelta(hours=3), "web")
    made = ps.new_booking(lst, "m-ada", NOW + timedelta(hours=2), NOW + timedelta(hours=3), "web")
    ps.add_local(made)
    assert [b.id for b in ps.all()] == ["b-1", made.id]
    with pytest.raises(BookingError, match="not in the access list"):
        ps.new_booking(lst, "m-zed", NOW, NOW + DAY, "web")
    # A list booking arriving later wins; the local one is set aside, not lost.
    ps.set_list_bookings([_b(2, "m-bo", 2, 4)])
    assert ps.ignored_bookings == [made.id]


def test_lapsing_lists_who_is_about_to_lapse() -> None:
    ps = state(expiry={"rule": "duration", "days": 100})
    lst = parse_access_list(
        doc(
            [
                member({"laser-1": {"inducted_at": "2026-08-30"}}),  # lapses in 7.5 days
                member({"laser-1": {"inducted_at": "2026-11-01"}}, "m-bo", "Bo"),
                member({"laser-1": "maintainer"}, "m-max", "Max"),
            ]
        ),
        SECRET,
    )
    rows = ps.lapsing(lst, NOW, 30)
    assert [(r["member_id"], r["days_left"], r["lapsed"]) for r in rows] == [("m-ada", 7, False)]


def test_decide_then_judge_keeps_the_first_refusal() -> None:
    lst = parse_access_list(doc([{**member({}), "suspended": "unpaid"}]), SECRET)
    first = decide(lst, "0" * 64, "laser-1", NOW, None)
    assert isinstance(first, Denied) and first.reason == "unknown_badge"
    config = PolicyConfig()
    policy = MachinePolicy("laser-1", "laser", config, Tiers(config), BookingBook("laser-1", ()))
    assert judge(first, policy, NOW, None) is first


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "2026-12-01",
            "2026-12-01T13:00:00+01:00",
            "9000-12-31T23:59:00+00:00",
            "9999-12-31T23:59:59-05:00",
            "0001-01-01",
            "m-ada",
            "laser-1",
            "user",
            "supervised",
        ]
    ),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["id", "machine", "member_id", "start", "end", "role", "level", "inducted_at", "x"]
        ),
        children,
        max_size=6,
    ),
    max_leaves=20,
)


@given(bookings=JSON, induction=JSON)
def test_any_bookings_or_induction_entry_parses_or_is_refused_cleanly(
    bookings: Any, induction: Any
) -> None:
    body = json.dumps(
        {
            "version": 1,
            "generated_at": "2026-11-30T00:00:00Z",
            "count": 1,
            "members": [member({"laser-1": induction})],
            "bookings": bookings,
        }
    ).encode()
    try:
        lst = parse_access_list(body, SECRET)
    except AccessListError as err:
        assert str(err)
    else:
        assert len(lst) == 1
        check_overlaps(lst.bookings)
        # Whatever was accepted, the policy's date arithmetic copes with it.
        for rule in ({"rule": "duration", "days": 36500}, {"rule": "disuse", "days": 36500}):
            ps = state(expiry=rule)
            ps.set_list_bookings(lst.bookings)
            ada = lst.by_id("m-ada")
            assert ada is not None
            for when in (NOW, datetime(9000, 12, 31, 23, 0, tzinfo=UTC)):
                ps.judge(Granted(ada, Role.USER), when)
                ps.upcoming(when)
                ps.lapsing(lst, when, 3650)


def test_an_unknown_level_under_the_wildcard_counts_as_the_lowest() -> None:
    ps = state()
    elsewhere = {"*": Induction("apprentice")}
    kim = Member("m-kim", "Kim", {"*": Role.USER}, inductions=elsewhere)
    g = ps.judge(granted(kim), NOW)
    assert isinstance(g, Granted) and (g.level, g.supervised) == ("supervised", True)


@given(
    listed=st.sampled_from([None, "supervised", "independent"]),
    role=st.sampled_from([None, "user"]),
    granted_level=st.sampled_from([None, "supervised", "independent"]),
    listed_days_ago=st.sampled_from([None, 0, 40]),
)
def test_a_grant_counts_until_the_list_shows_it_and_is_then_confirmed(
    listed: str | None, role: str | None, granted_level: str | None, listed_days_ago: int | None
) -> None:
    entry: dict[str, Any] = {}
    if role is not None:
        entry = {"role": role}
        if listed is not None:
            entry["level"] = listed
        if listed_days_ago is not None:
            entry["inducted_at"] = (NOW - listed_days_ago * DAY).isoformat()
    machines = {"laser-1": entry} if entry else {}
    lst = parse_access_list(doc([member(machines)]), SECRET)
    ps = state()
    ps.grant("m-ada", granted_level, NOW)
    effective = lst.with_inductions("laser-1", ps.grants)
    ada = effective.by_id("m-ada")
    assert ada is not None and ada.role_on("laser-1") is not None
    judged = ps.judge(Granted(ada, Role.USER), NOW)
    assert isinstance(judged, Granted)
    if granted_level is not None:
        assert judged.level == granted_level  # the grant, not the list, until confirmed
    confirmed = ps.confirmed(lst)
    shows_it = (
        role is not None
        and (granted_level is None or listed == granted_level)
        and listed_days_ago == 0
    )
    assert confirmed == ({"m-ada"} if shows_it else set())
    assert ("m-ada" in ps.grants) == (not shows_it)


@pytest.mark.parametrize(
    ("machines", "bookings", "message"),
    [
        ({"laser-1": {"inducted_at": "9999-12-31"}}, None, "out of range"),
        ({"laser-1": {"last_used": "9999-12-31T23:59:59-05:00"}}, None, "not an ISO 8601"),
        ({"laser-1": {"inducted_at": "0001-01-01T00:00:00+05:00"}}, None, "not an ISO 8601"),
        (
            {"*": "user"},
            [
                {
                    "id": "b-1",
                    "machine": "laser-1",
                    "member_id": "m-ada",
                    "start": "9999-12-31T23:00:00+00:00",
                    "end": "9999-12-31T23:59:00+00:00",
                }
            ],
            "bookings[0] start is out of range",
        ),
    ],
)
def test_far_off_dates_are_refused_rather_than_overflowing_later(
    machines: dict[str, Any], bookings: list[dict[str, Any]] | None, message: str
) -> None:
    with pytest.raises(AccessListError) as err:
        parse_access_list(doc([member(machines)], bookings), SECRET)
    assert message in str(err.value)


def test_valid_until_on_the_last_day_of_a_far_year_is_refused_cleanly() -> None:
    body = {**member({"*": "user"}), "valid_until": "9999-12-31"}
    with pytest.raises(AccessListError, match="valid_until is not an ISO 8601"):
        parse_access_list(doc([body]), SECRET)


def test_the_member_in_session_is_told_of_another_members_booking() -> None:
    from gateway.access.policy_effects import booking_note

    def booking(minutes: int, in_force: bool) -> dict[str, object]:
        start = NOW + timedelta(minutes=minutes)
        return {
            "member_id": "m-bo",
            "member_name": "Bo",
            "start": start.isoformat(),
            "start_clock": "12:10",
            "end_clock": "13:10",
            "in_force": in_force,
        }

    assert booking_note(None, "m-ada", NOW) is None
    assert booking_note(booking(-5, True), None, NOW) is None  # nobody in session
    assert booking_note(booking(-5, True), "m-bo", NOW) is None  # his own
    assert booking_note(booking(-5, True), "m-ada", NOW) == (
        "Bo's booking has started (12:10\u201313:10): the machine is theirs when they badge in."
    )
    assert booking_note(booking(10, False), "m-ada", NOW) == (
        "Bo has booked this machine from 12:10: finish before then."
    )
    assert booking_note(booking(45, False), "m-ada", NOW) is None  # not yet worth saying
