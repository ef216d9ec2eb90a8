"""The held-job rules and the file-name rules, with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.machine.files import sanitise_name
from gateway.slicer.errors import SlicerError
from gateway.slicer.held import (
    MAX_DISK,
    HeldAction,
    HeldJob,
    HeldJobRefused,
    HeldState,
    disk_name,
    display_name,
    distinct_name,
    short_name,
    transition,
)


def job(**kw: object) -> HeldJob:
    base: dict[str, object] = {
        "id": 1,
        "file": "part.gcode",
        "display_name": "part.gcode",
        "member_id": "m-ada",
        "member_name": "Ada Lovelace",
        "door": "slicer",
        "uploaded_at": 1000.0,
        "expires_at": 2000.0,
    }
    base.update(kw)
    return HeldJob(**base)  # type: ignore[arg-type]


def test_only_its_member_releases_it() -> None:
    started = transition(job(), HeldAction.RELEASE, by="m-ada", now=1500.0)
    assert started.state is HeldState.STARTED and started.released_by == "m-ada"
    with pytest.raises(HeldJobRefused, match=r"held for Ada L\.; only they can start it") as err:
        transition(job(), HeldAction.RELEASE, by="m-max", now=1500.0)
    assert err.value.code == "not_yours"
    with pytest.raises(HeldJobRefused) as err:
        transition(job(), HeldAction.RELEASE, by=None, now=1500.0)
    assert err.value.code == "no_session"


def test_an_expired_job_never_starts() -> None:
    with pytest.raises(HeldJobRefused, match="expired") as err:
        transition(job(), HeldAction.RELEASE, by="m-ada", now=2000.0)
    assert err.value.code == "expired"
    expired = transition(job(), HeldAction.EXPIRE, by=None, now=2000.0)
    assert expired.state is HeldState.EXPIRED
    with pytest.raises(HeldJobRefused):
        transition(job(), HeldAction.EXPIRE, by=None, now=1999.0)


def test_cancel_by_member_or_admin_only() -> None:
    assert transition(job(), HeldAction.CANCEL, by="m-ada", now=1.0).state is HeldState.CANCELLED
    assert transition(job(), HeldAction.CANCEL, by=None, now=1.0).state is HeldState.CANCELLED
    with pytest.raises(HeldJobRefused, match=r"belongs to Ada L\."):
        transition(job(), HeldAction.CANCEL, by="m-max", now=1.0)


members = st.sampled_from(["m-ada", "m-max", None])
actions = st.sampled_from(list(HeldAction))


@given(st.lists(st.tuples(actions, members, st.floats(0, 3000)), max_size=8))
def test_final_states_stay_final_and_only_the_member_starts(
    steps: list[tuple[HeldAction, str | None, float]],
) -> None:
    current = job()
    for action, by, now in steps:
        before = current
        try:
            current = transition(current, action, by=by, now=now)
        except HeldJobRefused:
            assert current == before
            continue
        assert not before.final
        if current.state is HeldState.STARTED:
            assert by == "m-ada" and now < before.expires_at
            assert current.released_by == "m-ada"


def test_short_names() -> None:
    assert short_name("Ada Lovelace") == "Ada L."
    assert short_name("Ada King Lovelace") == "Ada L."
    assert short_name("Cher") == "Cher"
    assert short_name("  ") == "a member"


def test_display_names_keep_what_the_member_wrote_without_folders() -> None:
    assert display_name("Bräcket v3 😀.gcode") == "Bräcket v3 😀.gcode"
    assert display_name("../../etc/x.gcode") == "x.gcode"
    assert display_name("C:\\Users\\ada\\x.gcode") == "x.gcode"
    assert display_name("a\x00b\x1b.gcode") == "ab.gcode"


def test_disk_names() -> None:
    assert disk_name("Bräcket v3 😀.gcode") == "Bracket v3 _.gcode"
    assert disk_name(".hidden.gcode") == "hidden.gcode"
    with pytest.raises(SlicerError, match="not a G-code file name"):
        disk_name("model.3mf")
    long = "v1-" + "x" * 300 + "-v2.gcode"
    cut = disk_name(long)
    assert len(cut) <= MAX_DISK and cut.startswith("v1-") and cut.endswith("-v2.gcode")


@given(st.text(min_size=1, max_size=300).map(lambda s: s + ".gcode"))
def test_any_name_becomes_a_library_name_or_a_clear_refusal(raw: str) -> None:
    shown = display_name(raw)
    try:
        safe = disk_name(shown)
    except SlicerError:
        return
    assert sanitise_name(safe) == safe
    assert "/" not in safe and not safe.startswith(".") and len(safe) <= MAX_DISK


@given(st.sets(st.sampled_from(["a.gcode", "a-2.gcode", "a-3.gcode", "b.gcode"])))
def test_distinct_names_never_collide(taken: set[str]) -> None:
    name = distinct_name("a.gcode", taken)
    assert name not in taken and name.endswith(".gcode")
