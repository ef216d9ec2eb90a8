"""A member's standing as other capabilities read it: suspended members stand apart
from members merely expired or not inducted here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.access.members import AccessList, Member, Role
from gateway.access.standing import standing

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ROLES = {"laser-1": Role.USER}


def of(member: Member | None) -> str:
    members = [member] if member is not None else []
    return standing(AccessList(members), "m-ada", "laser-1", NOW)


def test_each_standing_names_what_the_list_says() -> None:
    assert of(Member("m-ada", "Ada", ROLES)) == "active"
    assert of(Member("m-ada", "Ada", ROLES, suspended_reason="unpaid fees")) == "suspended"
    assert of(Member("m-ada", "Ada", ROLES, valid_until=NOW)) == "expired"
    assert of(Member("m-ada", "Ada", ROLES, valid_from=NOW + timedelta(days=1))) == "not_yet_valid"
    assert of(Member("m-ada", "Ada", {"cnc-2": Role.USER})) == "not_inducted"
    assert of(None) == "unknown"


def test_standing_needs_no_badge() -> None:
    # A member whose badges are all gone is still the same member.
    assert of(Member("m-ada", "Ada", ROLES, badge_hashes=frozenset())) == "active"


@given(
    suspended=st.sampled_from([None, "unpaid fees", "conduct"]),
    inducted=st.booleans(),
    days_left=st.one_of(st.none(), st.integers(-400, 400)),
    starts_in=st.one_of(st.none(), st.integers(-400, 400)),
)
def test_suspension_outranks_every_other_reason(
    suspended: str | None, inducted: bool, days_left: int | None, starts_in: int | None
) -> None:
    """Suspended exactly when the list suspends the member, whatever else is true."""
    until = None if days_left is None else NOW + timedelta(days=days_left)
    since = None if starts_in is None else NOW + timedelta(days=starts_in)
    if since is not None and until is not None and until <= since:
        until = since + timedelta(days=1)
    member = Member(
        "m-ada",
        "Ada",
        ROLES if inducted else {},
        valid_from=since,
        valid_until=until,
        suspended_reason=suspended,
    )
    assert (of(member) == "suspended") == (suspended is not None)
    if suspended is None and inducted and of(member) != "active":
        assert of(member) in ("expired", "not_yet_valid")
