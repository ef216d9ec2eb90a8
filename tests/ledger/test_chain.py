"""The hash chain: any deletion, reordering or edit of records is detected."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger.chain import GENESIS, Record, make_record, verify_chain

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()


def chain(n: int, machine: str = "printer-1") -> list[Record]:
    records: list[Record] = []
    for i in range(n):
        body: dict[str, Any] = {
            "session_id": f"s{i}",
            "member_id": "m-ada",
            "energy_wh": 12.5 + i,
            "cost": f"{i}.50",
            "jobs": [[i, "completed"]],
        }
        prev = records[-1] if records else None
        records.append(
            make_record(prev, machine_id=machine, kind="session", ts=1e9 + i, body=body, key=KEY)
        )
    return records


def test_an_intact_chain_verifies() -> None:
    records = chain(5)
    assert records[0].prev_hash == GENESIS and records[0].seq == 1
    verdict = verify_chain(records, PUBLIC, expected_head=(5, records[-1].hash))
    assert verdict.ok and verdict.count == 5
    assert verify_chain([], PUBLIC).ok


def test_records_survive_a_json_round_trip() -> None:
    records = [Record.from_dict(copy.deepcopy(r.as_dict())) for r in chain(3)]
    assert verify_chain(records, PUBLIC).ok


def test_another_key_is_refused() -> None:
    other = Ed25519PrivateKey.generate().public_key()
    verdict = verify_chain(chain(2), other)
    assert not verdict.ok and verdict.first_bad == 1 and "key" in verdict.reason


def test_a_correction_must_name_an_earlier_record() -> None:
    records = chain(2)
    ok = make_record(
        records[-1], machine_id="printer-1", kind="correction", ts=2e9,
        body={"corrects": {"seq": 1, "hash": records[0].hash}, "reason": "failed print"},
        key=KEY,
    )
    assert verify_chain([*records, ok], PUBLIC).ok
    bad = make_record(
        records[-1], machine_id="printer-1", kind="correction", ts=2e9,
        body={"corrects": {"seq": 1, "hash": "0" * 64}, "reason": "made up"}, key=KEY,
    )
    verdict = verify_chain([*records, bad], PUBLIC)
    assert not verdict.ok and verdict.first_bad == 3


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.data())
def test_any_deletion_is_detected(n: int, data: st.DataObject) -> None:
    records = chain(n)
    head = (records[-1].seq, records[-1].hash)
    doomed = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))
    kept = [r for i, r in enumerate(records) if i not in doomed]
    verdict = verify_chain(kept, PUBLIC, expected_head=head)
    assert not verdict.ok
    # Without the published head, only a cut-off tail can go unseen.
    first = min(doomed)
    if doomed != set(range(first, n)):
        assert not verify_chain(kept, PUBLIC).ok


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.data())
def test_any_reordering_is_detected(n: int, data: st.DataObject) -> None:
    records = chain(n)
    order = data.draw(st.permutations(range(n)))
    if list(order) == list(range(n)):
        order = list(reversed(order))
    verdict = verify_chain([records[i] for i in order], PUBLIC)
    assert not verdict.ok
    first_moved = next(pos for pos, i in enumerate(order) if i != pos)
    assert verdict.first_bad == first_moved + 1


FIELDS = ["seq", "machine_id", "kind", "ts", "body", "prev_hash", "key_id", "hash", "signature"]


def _edit(value: Any, data: st.DataObject) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + data.draw(st.integers(1, 5))
    if isinstance(value, float):
        return value + data.draw(st.floats(0.001, 1000))
    if isinstance(value, str):
        if len(value) in (64, 128, 16) and all(c in "0123456789abcdef" for c in value):
            pos = data.draw(st.integers(0, len(value) - 1))
            return value[:pos] + ("0" if value[pos] != "0" else "1") + value[pos + 1 :]
        return value + data.draw(st.text(min_size=1, max_size=3))
    if isinstance(value, dict):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _edit(value[key], data)}
    if isinstance(value, list):
        return [*value, 0]
    raise AssertionError(type(value))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 8), st.data())
def test_any_edit_is_detected_at_the_edited_record(n: int, data: st.DataObject) -> None:
    records = chain(n)
    target = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(FIELDS))
    raw = records[target].as_dict()
    raw[field] = _edit(raw[field], data)
    edited = [*records[:target], Record.from_dict(raw), *records[target + 1 :]]
    verdict = verify_chain(edited, PUBLIC)
    assert not verdict.ok
    assert verdict.first_bad == target + 1


@pytest.mark.parametrize("field", ["seq", "hash", "body", "ts"])
def test_malformed_records_are_a_format_error(field: str) -> None:
    from gateway.ledger.errors import LedgerFormatError

    raw = chain(1)[0].as_dict()
    raw[field] = None
    with pytest.raises(LedgerFormatError):
        Record.from_dict(raw)
