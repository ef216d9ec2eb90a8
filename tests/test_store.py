"""The shared database's preparation before start-up (gateway/store.py)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlite_utils

from gateway.store import StoreError, connect, prepare, schema_step


def _create_things(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS things (id INTEGER PRIMARY KEY)")


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    holder = connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_prepare_creates_every_step_s_tables_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "state" / "gateway.db"
    other = schema_step(lambda db: db.execute("CREATE TABLE IF NOT EXISTS others (n TEXT)"))
    prepare(path, [schema_step(_create_things), other])
    prepare(path, [schema_step(_create_things), other])
    assert set(sqlite_utils.Database(path).table_names()) == {"things", "others"}


def test_prepare_waits_for_another_process_holding_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    holder = _hold_write_lock(path)
    waits: list[float] = []

    def release_on_second_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            holder.execute("COMMIT")

    # A short busy timeout on the step's own connection makes the lock show up at once.
    def step(p: Path) -> None:
        conn = sqlite3.connect(str(p), timeout=0.01)
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS things (id INTEGER PRIMARY KEY)")
        finally:
            conn.close()

    prepare(path, [step], sleep=release_on_second_wait)
    assert len(waits) == 2
    assert "things" in sqlite_utils.Database(path).table_names()
    holder.close()


def test_prepare_gives_up_with_a_clear_error_after_its_bounded_wait(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    holder = _hold_write_lock(path)

    def step(p: Path) -> None:
        conn = sqlite3.connect(str(p), timeout=0.01)
        try:
            conn.execute("CREATE TABLE things (id INTEGER PRIMARY KEY)")
        finally:
            conn.close()

    try:
        with pytest.raises(StoreError, match="another gateway command is running"):
            prepare(path, [step], retry_for=0.3)
    finally:
        holder.close()


def test_prepare_does_not_retry_other_errors(tmp_path: Path) -> None:
    calls = threading.Semaphore(0)

    def broken(p: Path) -> None:
        calls.release()
        raise sqlite3.OperationalError("no such column: x")

    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        prepare(tmp_path / "gateway.db", [broken])
    assert calls.acquire(blocking=False) and not calls.acquire(blocking=False)
