"""The access store on a real SQLite file: crash recovery, corrupted rows, CSV export."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.access.cli import sessions_export
from gateway.access.members import AccessList, Member, Role
from gateway.access.store import AccessStore, AccessStoreError, export_sessions_csv, usage_csv

T0 = datetime(2024, 6, 1, 10, 0, tzinfo=UTC).timestamp()
HASH_A = "a" * 64
HASH_B = "b" * 64


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gateway.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[AccessStore]:
    s = AccessStore.open(db_path, "laser-1")
    yield s
    s.close()


def a_list() -> AccessList:
    return AccessList(
        [
            Member(
                "m-1",
                "Ada",
                {"laser-1": Role.TRAINER},
                badge_hashes=frozenset({HASH_A}),
                valid_until=datetime(2025, 1, 1, tzinfo=UTC),
            ),
            Member(
                "m-2",
                "Bo",
                {"*": Role.USER},
                badge_hashes=frozenset({HASH_B}),
                suspended_reason="unpaid",
            ),
        ],
        generated_at=datetime(2024, 5, 1, tzinfo=UTC),
    )


def session(
    store: AccessStore,
    sid: str,
    member: str,
    start: float,
    end: float | None,
    *,
    job: float = 0.0,
    filament: float = 0.0,
) -> None:
    store.open_session(
        sid, member_id=member, member_name=member.title(), role="user", started_at=start
    )
    if job:
        store.job_started(sid)
        store.job_finished(sid, seconds=job, filament_mm=filament)
    if end is not None:
        store.close_session(sid, ended_at=end, reason="badge_out")


def test_wal_mode_and_tables(store: AccessStore, db_path: Path) -> None:
    assert store.db.journal_mode == "wal"
    assert {
        "access_members",
        "access_sessions",
        "access_inductions",
        "access_denials",
        "access_lockout",
        "access_list_meta",
    } <= set(store.db.table_names())


def test_access_list_round_trip_and_meta(store: AccessStore, db_path: Path) -> None:
    assert store.load_access_list() is None
    store.save_access_list(a_list(), source="file:/x.json", etag='"v1"', fetched_at=T0)
    store.close()
    reopened = AccessStore.open(db_path, "laser-1")
    loaded = reopened.load_access_list()
    assert loaded is not None and len(loaded) == 2
    ada = loaded.by_badge(HASH_A)
    assert ada is not None and ada.role_on("laser-1") is Role.TRAINER
    assert ada.valid_until == datetime(2025, 1, 1, tzinfo=UTC)
    bo = loaded.by_id("m-2")
    assert bo is not None and bo.suspended_reason == "unpaid" and bo.role_on("cnc") is Role.USER
    assert loaded.generated_at == datetime(2024, 5, 1, tzinfo=UTC)
    meta = reopened.list_meta()
    assert (meta.source, meta.etag, meta.member_count) == ("file:/x.json", '"v1"', 2)
    reopened.record_list_error(source="http:x", error="HTTP 500", at=T0 + 5)
    assert reopened.list_meta().last_error == "http:x: HTTP 500"
    assert len(reopened.load_access_list() or []) == 2
    reopened.save_access_list(
        AccessList([a_list().members[0]]), source="s", etag=None, fetched_at=T0 + 9
    )
    assert len(reopened.load_access_list() or []) == 1
    assert reopened.list_meta().last_error is None
    reopened.close()


def test_a_session_survives_a_crash_and_is_closed_at_its_last_heartbeat(db_path: Path) -> None:
    store = AccessStore.open(db_path, "laser-1")
    store.open_session("s1", member_id="m-1", member_name="Ada", role="user", started_at=T0)
    store.heartbeat("s1", T0 + 120)
    store.job_started("s1")
    # The process dies: no close_session, the connection is simply dropped.
    store.db.conn.close()

    after = AccessStore.open(db_path, "laser-1")
    assert after.close_crashed_sessions(now=T0 + 3600) == ["s1"]
    (record,) = after.sessions()
    assert record.end_reason == "crash"
    assert record.ended_at == T0 + 120 and record.duration == 120
    assert record.jobs == 1
    assert after.close_crashed_sessions(now=T0 + 7200) == []
    after.close()


def test_close_updates_the_open_row(store: AccessStore) -> None:
    session(store, "s1", "m-1", T0, T0 + 600, job=300, filament=1234.5)
    (r,) = store.sessions()
    assert (r.ended_at, r.duration, r.end_reason, r.jobs, r.job_seconds, r.filament_mm) == (
        T0 + 600,
        600,
        "badge_out",
        1,
        300,
        1234.5,
    )
    store.close_session("s1", ended_at=T0 + 9999, reason="shutdown")  # already closed
    assert store.sessions()[0].end_reason == "badge_out"


def test_corrupted_rows_are_logged_and_skipped(
    store: AccessStore, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session(store, "good-1", "m-1", T0, T0 + 60)
    session(store, "bad", "m-2", T0 + 100, T0 + 160)
    session(store, "good-2", "m-1", T0 + 200, T0 + 260)
    store.save_access_list(a_list(), source="file", etag=None, fetched_at=T0)
    with sqlite3.connect(db_path) as raw:  # an admin "fixing" things by hand
        raw.execute("UPDATE access_sessions SET started_at = 'yesterday' WHERE id = 'bad'")
        raw.execute("UPDATE access_members SET roles = '{not json' WHERE id = 'm-2'")
    with caplog.at_level(logging.ERROR):
        assert [r.id for r in store.sessions()] == ["good-2", "good-1"]
        loaded = store.load_access_list()
    assert loaded is not None and [m.id for m in loaded.members] == ["m-1"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("bad" in e and "access_sessions" in e and "started_at" in e for e in errors)
    assert any("m-2" in e and "access_members" in e for e in errors)
    caplog.clear()
    assert len(store.usage()) == 1
    assert not [r for r in caplog.records if r.levelno == logging.ERROR]  # reported once


def test_usage_per_member_and_machine(store: AccessStore) -> None:
    session(store, "s1", "m-1", T0, T0 + 600, job=300, filament=100)
    session(store, "s2", "m-1", T0 + 1000, T0 + 1400, job=200, filament=50)
    session(store, "s3", "m-2", T0 + 2000, None)
    usage = {u.member_id: u for u in store.usage(now=T0 + 2100)}
    assert usage["m-1"].sessions == 2 and usage["m-1"].powered_seconds == 1000
    assert usage["m-1"].job_seconds == 500 and usage["m-1"].filament_mm == 150
    assert usage["m-2"].powered_seconds == 100  # still open: counted up to now


def test_inductions_denials_and_lockout(store: AccessStore, db_path: Path) -> None:
    store.record_induction(trainer_id="m-1", member_id="m-9", at=T0)
    (ind,) = store.unsynced_inductions()
    assert (ind.trainer_id, ind.member_id, ind.machine_id) == ("m-1", "m-9", "laser-1")
    store.mark_inductions_synced([ind.id])
    assert store.unsynced_inductions() == []
    store.record_denial(reason="unknown_badge", at=T0, member_id=None)
    store.record_denial(reason="expired", at=T0 + 1, member_id="m-2")
    assert store.denials() == [
        {"reason": "expired", "at": T0 + 1, "member_id": "m-2"},
        {"reason": "unknown_badge", "at": T0, "member_id": None},
    ]
    assert store.load_lockout() is None
    store.save_lockout(reason="tube", by="staff", at=T0)
    store.close()
    reopened = AccessStore.open(db_path, "laser-1")
    lockout = reopened.load_lockout()
    assert lockout is not None and (lockout.reason, lockout.by) == ("tube", "staff")
    reopened.clear_lockout()
    assert reopened.load_lockout() is None
    reopened.close()


def test_csv_export(store: AccessStore, db_path: Path) -> None:
    session(store, "s1", "m-1", T0, T0 + 600, job=300, filament=100)
    session(store, "s2", "m-2", T0 + 86400, T0 + 86400 + 60)
    out = io.StringIO()
    assert export_sessions_csv(db_path, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["id"] for r in rows] == ["s1", "s2"]
    assert rows[0]["started_at"] == "2024-06-01T10:00:00+00:00"
    assert rows[0]["ended_at"] == "2024-06-01T10:10:00+00:00"
    assert (
        rows[0]["duration"],
        rows[0]["jobs"],
        rows[0]["job_seconds"],
        rows[0]["filament_mm"],
        rows[0]["end_reason"],
    ) == ("600", "1", "300", "100.0", "badge_out")
    out = io.StringIO()
    day2 = datetime(2024, 6, 2, tzinfo=UTC)
    assert export_sessions_csv(db_path, out, since=day2) == 1
    assert "s2" in out.getvalue() and "s1" not in out.getvalue()
    out = io.StringIO()
    assert export_sessions_csv(db_path, out, until=day2) == 1
    out = io.StringIO()
    assert usage_csv(db_path, out) == 2
    usage = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert usage[0] == {
        "member_id": "m-1",
        "member_name": "M-1",
        "machine_id": "laser-1",
        "sessions": "1",
        "powered_seconds": "600",
        "job_seconds": "300",
        "filament_mm": "100.0",
    }


def test_cli_entry(store: AccessStore, db_path: Path, tmp_path: Path) -> None:
    session(store, "s1", "m-1", T0, T0 + 600)
    out = io.StringIO()
    assert sessions_export(db_path, out, since=None, until=None, usage=False) == 1
    assert sessions_export(db_path, io.StringIO(), since=None, until=None, usage=True) == 1
    with pytest.raises(AccessStoreError, match="no database"):
        sessions_export(tmp_path / "missing.db", out, since=None, until=None, usage=False)
    with pytest.raises(ValueError, match="later"):
        sessions_export(
            db_path, out, since=datetime(2024, 2, 1), until=datetime(2024, 1, 1), usage=False
        )


def test_a_database_from_before_the_access_policy_gains_its_columns(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as old:
        old.execute(
            "CREATE TABLE access_members (id TEXT PRIMARY KEY, name TEXT, roles TEXT, "
            "valid_from TEXT, valid_until TEXT, suspended TEXT, badge_hashes TEXT)"
        )
        old.execute(
            "CREATE TABLE access_inductions (id INTEGER PRIMARY KEY, trainer_id TEXT, "
            "member_id TEXT, machine_id TEXT, at FLOAT, synced INTEGER)"
        )
        old.execute(
            "INSERT INTO access_inductions (trainer_id, member_id, machine_id, at, synced) "
            "VALUES ('m-t', 'm-1', 'laser-1', 1.0, 0)"
        )
    store = AccessStore.open(db_path, "laser-1")
    try:
        (ind,) = store.unsynced_inductions()
        assert (ind.member_id, ind.level, ind.pushed) == ("m-1", None, False)
        store.record_induction(trainer_id="m-t", member_id="m-2", at=2.0, level="supervised")
        assert [i.level for i in store.unsynced_inductions()] == [None, "supervised"]
        store.mark_inductions_pushed([ind.id])
        assert [i.pushed for i in store.unsynced_inductions()] == [True, False]
    finally:
        store.close()


def test_hand_edited_times_without_a_zone_are_read_as_utc(store: AccessStore) -> None:
    store.save_access_list(a_list(), source="file:x", etag=None, fetched_at=T0)
    inductions = '{"laser-1": {"inducted_at": "2026-01-01T00:00:00"}}'
    store.db.execute(
        "UPDATE access_members SET valid_until = ?, inductions = ? WHERE id = 'm-1'",
        ["2030-01-01T00:00:00", inductions],
    )
    loaded = store.load_access_list()
    assert loaded is not None
    m = loaded.by_id("m-1")
    assert m is not None and m.valid_until is not None and m.valid_until.tzinfo is not None
    inducted = m.induction_on("laser-1").inducted_at
    assert inducted is not None and inducted.tzinfo is not None
