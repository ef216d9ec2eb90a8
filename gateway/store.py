"""The one SQLite file the daemon keeps its records in, opened the same way everywhere.

Each capability opens its own :class:`Store` on the shared file (WAL mode lets
them write without blocking each other's readers).  All of a store's SQLite
work runs on one dedicated thread, so the event loop never waits on the SD
card and the connection is never used from two threads at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

import sqlite_utils

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)

#: Schema creation is retried while another process (a CLI command, a backup)
#: holds the file, for at most this long in total.
SCHEMA_RETRY_SECONDS = 30.0


#: Held while a connection is opened and the file switched to WAL.  A new file
#: starts in rollback-journal mode, where two connections creating tables at once
#: can deadlock, and SQLite then answers "database is locked" at once instead of
#: waiting; once the file is in WAL mode, writers simply queue on the busy timeout.
_OPEN_LOCK = threading.Lock()


def connect(
    path: Path,
    *,
    isolation_level: Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"] | None = "DEFERRED",
) -> sqlite3.Connection:
    """A connection to the shared database file, which is in WAL mode once this returns.

    Every capability opens its connections here, so the switch to WAL happens
    once, before any of them writes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _OPEN_LOCK:
        conn = sqlite3.connect(
            str(path), check_same_thread=False, timeout=10.0, isolation_level=isolation_level
        )
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.execute("PRAGMA journal_mode=wal")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
    return conn


def open_database(path: Path) -> sqlite_utils.Database:
    """Open (creating) the database at ``path`` in WAL mode, usable from any one thread.

    The connection autocommits: each statement is its own transaction, so no
    read snapshot is ever upgraded to a write, which WAL refuses at once with
    "database is locked" when another connection wrote meanwhile.  Callers whose
    writes must be atomic together say ``BEGIN IMMEDIATE`` themselves.
    """
    return sqlite_utils.Database(connect(path, isolation_level=None))


class Store:
    """A database connection plus the single thread that uses it."""

    def __init__(self, path: Path, name: str = "store") -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{name}")
        self.db: sqlite_utils.Database = self._executor.submit(open_database, path).result()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the store's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def run_sync(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the store's thread and wait (CLI and start-up only)."""
        return self._executor.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        self._executor.submit(self.db.conn.close).result()
        self._executor.shutdown(wait=True)


class StoreError(Exception):
    """The shared database file cannot be prepared."""


def _is_busy(err: BaseException | None) -> bool:
    """True if ``err`` or its cause is SQLite's "database is locked" (a capability's
    own error wraps the sqlite3 one)."""
    while err is not None:
        if isinstance(err, sqlite3.OperationalError):
            text = str(err).lower()
            return "database is locked" in text or "database is busy" in text
        err = err.__cause__
    return False


def prepare(
    path: Path,
    steps: Sequence[Callable[[Path], object]],
    *,
    retry_for: float = SCHEMA_RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Create every capability's tables, one step after another, before any service starts.

    Services used to create their own tables as they started, concurrently, and
    SQLite answers a schema change that races another connection's with an
    immediate "database is locked" (the busy timeout does not cover it).  Here
    the daemon runs each capability's idempotent schema step in turn; a busy
    file (another process) is retried with a bounded wait, then reported.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for step in steps:
        deadline = time.monotonic() + retry_for
        delay = 0.05
        while True:
            try:
                step(path)
                break
            except Exception as err:
                if not _is_busy(err):
                    raise
                if time.monotonic() + delay > deadline:
                    raise StoreError(
                        f"cannot prepare the database {path}: {err}; if another gateway "
                        "command is running, wait for it to finish, then restart the gateway"
                    ) from err
                log.info("database %s is busy; retrying in %.2f s", path, delay)
                sleep(delay)
                delay = min(delay * 2, 1.0)


def schema_step(create: Callable[[sqlite_utils.Database], object]) -> Callable[[Path], None]:
    """A :func:`prepare` step that runs ``create`` on its own connection to the file."""

    def step(path: Path) -> None:
        db = open_database(path)
        try:
            create(db)
        finally:
            db.conn.close()

    return step
