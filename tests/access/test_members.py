"""Access lists: parsing, validation, hashing and every access decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.access.members import (
    AccessList,
    AccessListError,
    Denied,
    Granted,
    Role,
    badge_hash,
    decide,
    normalise_uid,
    parse_access_list,
)
from gateway.access.store import AccessStore

SECRET = b"site-secret-for-tests-0123456789"
UID = "04A2B3C4D5E680"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def member(**overrides: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "id": "m-17",
        "name": "Ada",
        "badges": [UID],
        "machines": {"laser-1": "user"},
        "valid_from": None,
        "valid_until": None,
        "suspended": None,
    }
    m.update(overrides)
    return m


def document(*members: dict[str, Any], count: int | None = None, **top: Any) -> bytes:
    doc: dict[str, Any] = {
        "version": 1,
        "generated_at": "2024-05-01T12:00:00Z",
        "count": len(members) if count is None else count,
        "members": list(members),
    }
    doc.update(top)
    return json.dumps(doc).encode()


def judge(
    raw: bytes,
    uid: str = UID,
    *,
    machine: str = "laser-1",
    now: datetime = NOW,
    lockout: str | None = None,
) -> Granted | Denied:
    return decide(parse_access_list(raw, SECRET), badge_hash(uid, SECRET), machine, now, lockout)


# -- parsing --------------------------------------------------------------------------


def test_parses_a_list_and_finds_members_by_badge_hash() -> None:
    lst = parse_access_list(
        document(member(), member(id="m-2", name="Bo", badges=["0A0B0C0D"])), SECRET
    )
    assert len(lst) == 2
    assert lst.generated_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    found = lst.by_badge(badge_hash(UID, SECRET))
    assert found is not None and found.name == "Ada"
    assert lst.by_id("m-2") is not None


def test_raw_uids_are_hashed_and_discarded() -> None:
    lst = parse_access_list(document(member()), SECRET)
    text = repr(lst.members)
    assert UID not in text and UID.lower() not in text
    assert lst.members[0].badge_hashes == frozenset({badge_hash(UID, SECRET)})


def test_uid_normalisation_makes_separators_and_case_irrelevant() -> None:
    assert normalise_uid("04:a2:b3-c4 d5e680") == UID
    assert normalise_uid("0x04a2b3c4d5e680") == UID
    assert badge_hash("04:a2:b3:c4:d5:e6:80", SECRET) == badge_hash(UID, SECRET)
    assert badge_hash(UID, SECRET) != badge_hash(UID, b"another-site-secret-0123456789")


def test_pre_hashed_badges_are_accepted() -> None:
    hashed = badge_hash(UID, SECRET).upper()
    raw = document(member(badges=[], badge_hashes=[hashed]))
    assert isinstance(judge(raw), Granted)


def test_wildcard_machine_role_and_highest_role_wins() -> None:
    raw = document(member(machines={"*": "user", "laser-1": "maintainer"}))
    lst = parse_access_list(raw, SECRET)
    assert lst.members[0].role_on("laser-1") is Role.MAINTAINER
    assert lst.members[0].role_on("cnc-2") is Role.USER
    assert Role.USER < Role.TRAINER < Role.MAINTAINER


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (document(member())[:-9], "not valid JSON"),  # cut mid-document
        (document(member(), count=2), "says it has 2 members but contains 1"),  # cut at a record
        (
            json.dumps({"version": 1, "generated_at": "2024-05-01", "members": []}).encode(),
            "no member 'count'",
        ),
        (document(member(), version=2), "version 2 is not supported"),
        (document(member(), extra=1), "unknown keys ['extra']"),
        (document(member(suspend="x")), "unknown keys ['suspend']"),
        (document(member(), member(badges=["0A0B"])), "appears twice"),
        (document(member(), member(id="m-2")), "listed under both"),
        (document(member(machines={"laser-1": "admin"})), "unknown role 'admin'"),
        (document(member(valid_until="next tuesday")), "valid_until is not an ISO 8601"),
        (
            document(member(valid_from="2024-05-02", valid_until="2024-05-01")),
            "valid_until is not after valid_from",
        ),
        (document(member(id="")), "has no 'id'"),
        (document(member(name=None)), "has no 'name'"),
        (document(member(badge_hashes=["abc"])), "badge hash 1 is not 64 hexadecimal digits"),
        (document(member(), generated_at=None), "no 'generated_at'"),
        (b"[]", "must be a JSON object"),
    ],
)
def test_malformed_lists_are_refused_with_a_clear_message(raw: bytes, message: str) -> None:
    with pytest.raises(AccessListError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_access_list(raw, SECRET)


def test_a_bad_badge_is_reported_without_echoing_it() -> None:
    with pytest.raises(AccessListError) as err:
        parse_access_list(document(member(badges=["NOT-A-UID-ZZ"])), SECRET)
    assert "ZZ" not in str(err.value)
    assert "badge 1" in str(err.value)


def test_duplicate_ids_are_refused_when_built_directly() -> None:
    lst = parse_access_list(document(member()), SECRET)
    with pytest.raises(AccessListError):
        AccessList([lst.members[0], lst.members[0]])


# -- decisions ------------------------------------------------------------------------


def test_granted_with_role() -> None:
    decision = judge(document(member(machines={"laser-1": "trainer"})))
    assert isinstance(decision, Granted)
    assert decision.role is Role.TRAINER and decision.member.id == "m-17"


def test_unknown_badge() -> None:
    decision = judge(document(member()), uid="DEADBEEF")
    assert isinstance(decision, Denied) and decision.reason == "unknown_badge"
    assert decision.member is None
    assert "DEADBEEF" not in decision.message


def test_not_inducted() -> None:
    decision = judge(document(member()), machine="cnc-2")
    assert isinstance(decision, Denied) and decision.reason == "not_inducted"
    assert decision.member is not None and "Ask a trainer" in decision.message


def test_expired_and_date_only_until_covers_the_whole_day() -> None:
    raw = document(member(valid_until="2024-06-01"))
    assert isinstance(judge(raw, now=datetime(2024, 6, 1, 23, 59, tzinfo=UTC)), Granted)
    decision = judge(raw, now=datetime(2024, 6, 2, 0, 0, tzinfo=UTC))
    assert isinstance(decision, Denied) and decision.reason == "expired"


def test_not_yet_valid() -> None:
    decision = judge(document(member(valid_from="2024-07-01T09:00:00+01:00")))
    assert isinstance(decision, Denied) and decision.reason == "not_yet_valid"
    assert "2024-07-01 08:00 UTC" in decision.message


def test_suspended_shows_the_reason() -> None:
    decision = judge(document(member(suspended="unpaid fees")))
    assert isinstance(decision, Denied) and decision.reason == "suspended"
    assert "unpaid fees" in decision.message


def test_locked_out_except_for_maintainers() -> None:
    decision = judge(document(member()), lockout="tube replacement")
    assert isinstance(decision, Denied) and decision.reason == "locked_out"
    assert "tube replacement" in decision.message
    maintainer = document(member(machines={"laser-1": "maintainer"}))
    assert isinstance(judge(maintainer, lockout="tube replacement"), Granted)


def test_suspension_is_reported_before_lockout_and_induction() -> None:
    decision = judge(document(member(suspended="safety", machines={})), lockout="x")
    assert isinstance(decision, Denied) and decision.reason == "suspended"


def test_local_inductions_overlay_the_list() -> None:
    lst = parse_access_list(document(member(machines={})), SECRET)
    overlaid = lst.with_inductions("laser-1", {"m-17", "m-unknown"})
    assert overlaid.members[0].role_on("laser-1") is Role.USER
    assert lst.members[0].role_on("laser-1") is None
    assert lst.with_inductions("laser-1", set()) is lst


def test_the_database_never_contains_the_raw_uid(tmp_path: Path) -> None:
    lst = parse_access_list(document(member(badges=[UID, "0a:0b:0c:0d"])), SECRET)
    db_path = tmp_path / "gateway.db"
    store = AccessStore.open(db_path, "laser-1")
    store.save_access_list(lst, source="file:test", etag=None, fetched_at=1.0)
    store.record_denial(reason="unknown_badge", at=2.0, member_id=None)
    store.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for form in (UID, UID.lower(), "0A0B0C0D", "0a0b0c0d", "0a:0b:0c:0d"):
        assert form.encode() not in blob
    assert badge_hash(UID, SECRET).encode() in blob
