"""Store and forward: events wait in SQLite until the broker has acknowledged them.

Every event is written here *before* it is published and deleted only after the
broker's PUBACK, so a broker outage or a daemon restart loses nothing: the
next connection replays the table oldest first.  The table is bounded by count
and by age; what the bounds discard is returned to the caller, which reports it
as :class:`~gateway.telemetry.events.OutboxDropped`.

The class is synchronous and serialised by a lock, so the service calls it with
``asyncio.to_thread`` and batches rows per call (one transaction per batch).
WAL mode with ``synchronous=NORMAL`` survives a crash of the daemon; a power
cut may lose the last transactions before a checkpoint.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from gateway.store import connect
from gateway.telemetry.errors import OutboxError

TABLE = "telemetry_outbox"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    created: float
    topic: str
    payload: bytes


class Outbox:
    """A bounded FIFO of ``(topic, payload)`` rows in an SQLite file.

    When an append takes the table past ``max_events``, the oldest rows are
    dropped down to 90 % of the limit, so that the report of the drop (itself
    an event) does not cause another drop.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_events: int,
        max_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_events < 1 or max_age <= 0:
            raise ValueError("max_events and max_age must be positive")
        self.path = path
        self.max_events = max_events
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        try:
            conn = connect(Path(path), isolation_level=None)
            self._conn = conn
            self._db = sqlite_utils.Database(conn)
            # AUTOINCREMENT: ids never go back, even after the table empties, so
            # a reader's "after id N" cursor can never miss a new row.
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " created REAL NOT NULL,"
                " topic TEXT NOT NULL,"
                " payload BLOB NOT NULL)"
            )
            self._count: int = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(
                f"cannot open the telemetry outbox in {path}: {err}; "
                "check that the state directory is writable and the disk is not full"
            ) from err

    def __len__(self) -> int:
        return self._count

    def append(self, items: Sequence[tuple[str, bytes]], *, now: float | None = None) -> int:
        """Store ``items`` in one transaction; return how many old rows the bound dropped."""
        if not items:
            return 0
        created = self._clock() if now is None else now
        with self._lock:
            try:
                conn = self._conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        f"INSERT INTO {TABLE} (created, topic, payload) VALUES (?, ?, ?)",
                        [(created, topic, payload) for topic, payload in items],
                    )
                    self._count += len(items)
                    dropped = 0
                    if self._count > self.max_events:
                        keep = self.max_events - max(1, self.max_events // 10)
                        cur = conn.execute(
                            f"DELETE FROM {TABLE} WHERE id IN "
                            f"(SELECT id FROM {TABLE} ORDER BY id LIMIT ?)",
                            (self._count - keep,),
                        )
                        dropped = cur.rowcount
                        self._count -= dropped
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    self._count = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
                    raise
            except sqlite3.Error as err:
                raise OutboxError(
                    f"cannot write to the telemetry outbox {self.path}: {err}"
                ) from err
        return dropped

    def read_after(self, after_id: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows with ``id > after_id``, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, created, topic, payload FROM {TABLE} WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def delete(self, ids: Iterable[int]) -> int:
        """Delete acknowledged rows; return how many existed."""
        batch = [(i,) for i in ids]
        if not batch:
            return 0
        with self._lock:
            before = self._conn.total_changes
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(f"DELETE FROM {TABLE} WHERE id = ?", batch)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            deleted = self._conn.total_changes - before
            self._count -= deleted
        return deleted

    def expire(self, *, now: float | None = None) -> int:
        """Drop rows older than ``max_age`` seconds; return how many."""
        cutoff = (self._clock() if now is None else now) - self.max_age
        with self._lock:
            cur = self._conn.execute(f"DELETE FROM {TABLE} WHERE created < ?", (cutoff,))
            self._count -= cur.rowcount
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
