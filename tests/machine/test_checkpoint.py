"""Durable resume checkpoints in a real SQLite file: round trip, damage, refusals."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.machine.checkpoint import (
    Checkpoint,
    CheckpointPolicy,
    DamagedCheckpoint,
    clear,
    connect,
    file_sha256,
    load,
    refusal,
    save,
)

SHA = "ab" * 32


def make(**kw: object) -> Checkpoint:
    base = Checkpoint(
        machine_id="sim-printer",
        job_id=7,
        file="cube.gcode",
        file_sha256=SHA,
        lines_total=1000,
        kind="printer",
        firmware="marlin",
        firmware_version="Marlin 2.1.2",
        member_id="m-ada",
        member_name="Ada",
        line=420,
        layer=12,
        z=2.4,
        started_at=1000.0,
        updated_at=1100.0,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return connect(tmp_path / "gateway.db")


def test_round_trip_survives_a_new_connection(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    first = connect(db)
    save(first, make())
    save(first, make(line=500, layer=13, z=2.6))
    first.close()  # as after SIGKILL: nothing but what was written
    again = connect(db)
    assert load(again, "sim-printer") == make(line=500, layer=13, z=2.6)
    clear(again, "sim-printer")
    assert load(again, "sim-printer") is None


def _tamper(conn: sqlite3.Connection, record: str) -> None:
    conn.execute("UPDATE resume_checkpoints SET record = ?", (record,))


def test_a_changed_record_is_damaged_and_still_says_where(conn: sqlite3.Connection) -> None:
    save(conn, make())
    record = conn.execute("SELECT record FROM resume_checkpoints").fetchone()[0]
    _tamper(conn, record.replace('"line":420', '"line":421'))
    got = load(conn, "sim-printer")
    assert isinstance(got, DamagedCheckpoint)
    assert (got.job_id, got.line, got.file) == (7, 421, "cube.gcode")
    assert "damaged" in got.reason


@pytest.mark.parametrize(
    "record",
    ["", "not json", "[]", '{"line": 3}', json.dumps({"line": "x", "job_id": None})],
)
def test_garbage_records_are_damaged(conn: sqlite3.Connection, record: str) -> None:
    save(conn, make())
    _tamper(conn, record)
    got = load(conn, "sim-printer")
    assert isinstance(got, DamagedCheckpoint)


def test_impossible_values_are_damaged_even_with_a_matching_checksum(
    conn: sqlite3.Connection,
) -> None:
    bad = make(line=5000)  # beyond the file
    save(conn, bad)
    assert isinstance(load(conn, "sim-printer"), DamagedCheckpoint)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), byte=st.integers(0, 255))
def test_any_single_byte_change_never_gives_another_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, position: int, byte: int
) -> None:
    conn = connect(tmp_path_factory.mktemp("cp") / "gateway.db")
    original = make()
    save(conn, original)
    record = conn.execute("SELECT record FROM resume_checkpoints").fetchone()[0]
    i = position % len(record)
    changed = record[:i] + chr(byte) + record[i + 1 :]
    _tamper(conn, changed)
    got = load(conn, "sim-printer")
    assert got == original or isinstance(got, DamagedCheckpoint)
    conn.close()


def test_policy_writes_on_interval_and_at_once_on_a_new_layer() -> None:
    policy = CheckpointPolicy(interval=0.5)
    assert policy.due(1, 0, now=0.0)
    policy.wrote(1, 0, 0.0)
    assert not policy.due(2, 0, now=0.1)
    assert policy.due(3, 1, now=0.2)  # a new layer: now
    policy.wrote(3, 1, 0.2)
    assert not policy.due(3, 1, now=5.0)  # nothing new
    assert policy.due(4, 1, now=0.75)


def test_refusals_say_why(tmp_path: Path) -> None:
    cp = make()
    ok = {"kind": "printer", "firmware": "marlin", "firmware_version": "Marlin 2.1.2"}
    assert refusal(cp, file_sha256_now=SHA, **ok) is None
    assert refusal(cp, file_sha256_now=SHA, **{**ok, "firmware_version": None}) is None
    changed = refusal(cp, file_sha256_now="cd" * 32, **ok)
    assert changed is not None and changed.code == "file_changed"
    missing = refusal(cp, file_sha256_now=None, **ok)
    assert missing is not None and missing.code == "file_missing"
    kind = refusal(cp, file_sha256_now=SHA, **{**ok, "kind": "laser", "firmware": "grbl"})
    assert kind is not None and kind.code == "machine_changed"
    fw = refusal(cp, file_sha256_now=SHA, **{**ok, "firmware_version": "Marlin 2.1.3"})
    assert fw is not None and fw.code == "firmware_changed"


def test_file_hash(tmp_path: Path) -> None:
    f = tmp_path / "a.gcode"
    f.write_bytes(b"G1 X1\n" * 100_000)
    assert file_sha256(f) == __import__("hashlib").sha256(f.read_bytes()).hexdigest()
