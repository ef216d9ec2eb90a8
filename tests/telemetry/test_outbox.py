"""The outbox on a real SQLite file: order, bounds, survival across reopening."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.telemetry.errors import OutboxError
from gateway.telemetry.outbox import Outbox


def rows(n: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [(f"gateway/m1/event/e{i}", f'{{"n":{i}}}'.encode()) for i in range(start, start + n)]


def payloads_of(outbox: Outbox) -> list[bytes]:
    return [r.payload for r in outbox.read_after(0, 1_000_000)]


def test_rows_come_back_oldest_first_and_are_deleted_when_acknowledged(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "g.db", max_events=1000, max_age=3600)
    outbox.append(rows(5))
    outbox.append(rows(5, start=5))
    read = outbox.read_after(0, 100)
    assert [r.topic for r in read] == [f"gateway/m1/event/e{i}" for i in range(10)]
    assert [r.id for r in read] == sorted(r.id for r in read)
    assert [r.payload for r in outbox.read_after(read[3].id, 2)] == [b'{"n":4}', b'{"n":5}']
    assert outbox.delete([read[0].id, read[1].id, 999_999]) == 2
    assert len(outbox) == 8
    assert payloads_of(outbox)[0] == b'{"n":2}'
    outbox.close()


def test_ids_never_go_back_after_the_table_empties(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "g.db", max_events=1000, max_age=3600)
    outbox.append(rows(3))
    last = outbox.read_after(0, 10)[-1].id
    outbox.delete(r.id for r in outbox.read_after(0, 10))
    outbox.append(rows(1))
    assert outbox.read_after(last, 10)[0].id > last


def test_outbox_survives_reopening_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    first = Outbox(path, max_events=1000, max_age=3600)
    first.append(rows(4))
    first.close()
    again = Outbox(path, max_events=1000, max_age=3600)
    assert len(again) == 4
    assert payloads_of(again) == [p for _, p in rows(4)]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_count_bound_drops_the_oldest_with_headroom(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "g.db", max_events=20, max_age=3600)
    assert outbox.append(rows(20)) == 0
    dropped = outbox.append(rows(5, start=20))
    # Over the limit: trimmed to 90 % so the report of this drop fits without another.
    assert dropped == 7
    assert len(outbox) == 18
    assert payloads_of(outbox)[0] == b'{"n":7}'
    assert payloads_of(outbox)[-1] == b'{"n":24}'
    assert outbox.append(rows(1, start=25)) == 0


def test_age_bound_expires_old_rows(tmp_path: Path) -> None:
    now = [1000.0]
    outbox = Outbox(tmp_path / "g.db", max_events=100, max_age=60, clock=lambda: now[0])
    outbox.append(rows(3))
    now[0] = 1050.0
    outbox.append(rows(2, start=3))
    assert outbox.expire() == 0
    now[0] = 1070.0
    assert outbox.expire() == 3
    assert payloads_of(outbox) == [b'{"n":3}', b'{"n":4}']
    assert len(outbox) == 2


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="state directory is writable"):
        Outbox(blocker / "sub" / "g.db", max_events=10, max_age=1)
