"""The live re-check: which new lists end an open session, and with what words."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.access.members import AccessList, Member, Role
from gateway.access.recheck import revocation

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ADA = Member("m-ada", "Ada", {"laser-1": Role.USER}, badge_hashes=frozenset({"a" * 64}))


def check(member: Member | None, lockout: str | None = None) -> tuple[str, str] | None:
    members = [member] if member is not None else []
    result = revocation(AccessList(members), "m-ada", "Ada", "laser-1", NOW, lockout)
    return None if result is None else (result.reason, result.message)


def test_a_member_still_admitted_keeps_the_session() -> None:
    assert check(ADA) is None


def test_a_member_without_badges_any_more_keeps_the_session() -> None:
    assert check(Member("m-ada", "Ada", {"laser-1": Role.USER})) is None


def test_each_revoking_change_names_its_reason() -> None:
    gone = check(None)
    assert gone is not None and gone[0] == "unknown_badge" and "no longer in" in gone[1]
    suspended = check(Member("m-ada", "Ada", ADA.roles, suspended_reason="unpaid fees"))
    assert suspended is not None and suspended[0] == "suspended"
    assert "unpaid fees" in suspended[1]
    expired = check(Member("m-ada", "Ada", ADA.roles, valid_until=NOW))
    assert expired is not None and expired[0] == "expired"
    uninducted = check(Member("m-ada", "Ada", {"other": Role.USER}))
    assert uninducted is not None and uninducted[0] == "not_inducted"


def test_under_a_lockout_only_a_maintainer_keeps_the_session() -> None:
    maintainer = Member("m-ada", "Ada", {"*": Role.MAINTAINER})
    assert check(maintainer, lockout="belt") is None
    demoted = check(ADA, lockout="belt")
    assert demoted is not None and demoted[0] == "locked_out"
