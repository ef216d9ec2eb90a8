"""Backup and restore of the state database.

:func:`backup_database` uses SQLite's online backup API
(``sqlite3.Connection.backup``): the copy is one consistent snapshot even while
the daemon writes, because in WAL mode a reader sees the database as of its
transaction's start and never blocks the writers.  The copy is written next to
its destination and renamed into place, then checked with ``integrity_check``.

:func:`restore_database` refuses while the daemon runs (its web port answers),
checks that the file is a sound SQLite database with the gateway's tables,
keeps the current database as ``gateway.db.bak`` and copies the backup in.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.access.store import SESSIONS
from gateway.machine.records import JOBS

SQLITE_HEADER = b"SQLite format 3\x00"


class BackupError(Exception):
    """A backup or restore could not be done; the message says what to do."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    size: int
    tables: tuple[str, ...]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def check_database(path: Path, required: Iterable[str] = (JOBS,)) -> tuple[str, ...]:
    """The tables of the SQLite database at ``path``; raises :class:`BackupError`
    if it is not a sound SQLite database holding every table in ``required``."""
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as err:
        raise BackupError(f"cannot read {path}: {err.strerror}") from err
    if header != SQLITE_HEADER:
        raise BackupError(f"{path} is not an SQLite database (made by `gateway backup`?)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()
            names = tuple(
                sorted(
                    row[0]
                    for row in conn.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' "
                        "AND name NOT LIKE 'sqlite_%'"
                    )
                )
            )
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise BackupError(f"{path} is not a usable SQLite database: {err}") from err
    if result is None or result[0] != "ok":
        raise BackupError(f"{path} is damaged (integrity check: {result and result[0]})")
    missing = sorted(set(required) - set(names))
    if missing:
        raise BackupError(
            f"{path} has no {', '.join(missing)} table: it is not a gateway database, "
            "or comes from a gateway with other capabilities enabled"
        )
    return names


def backup_database(database: Path, destination: Path) -> BackupInfo:
    """Copy ``database`` to ``destination`` consistently, while the daemon may write."""
    if not database.exists():
        raise BackupError(f"there is no database at {database}; check storage.state_dir")
    destination = destination.resolve()
    if destination == database.resolve():
        raise BackupError("the backup must not overwrite the database itself")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    partial.unlink(missing_ok=True)
    try:
        source = _connect(database)
        target = sqlite3.connect(str(partial))
        try:
            # pages=-1: the whole database in one step, one read transaction, one snapshot.
            source.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
            source.close()
        tables = check_database(partial, required=())
        os.replace(partial, destination)
    except sqlite3.Error as err:
        raise BackupError(f"could not back up {database}: {err}") from err
    finally:
        partial.unlink(missing_ok=True)
    return BackupInfo(destination, destination.stat().st_size, tables)


def daemon_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if something accepts connections on the daemon's web port."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def required_tables(access_enabled: bool) -> tuple[str, ...]:
    return (JOBS, SESSIONS) if access_enabled else (JOBS,)


def restore_database(
    backup: Path, database: Path, *, required: Iterable[str] = (JOBS,)
) -> BackupInfo:
    """Replace ``database`` with ``backup``, keeping the old one as ``<name>.bak``.

    The caller makes sure the daemon is stopped (:func:`daemon_answers`).
    """
    tables = check_database(backup, required)
    database.parent.mkdir(parents=True, exist_ok=True)
    kept = database.with_name(database.name + ".bak")
    try:
        if database.exists():
            # Through the backup API, so that what is still in the -wal file is kept too.
            backup_database(database, kept)
        source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        target = _connect(database)
        try:
            source.backup(target, pages=-1)
        finally:
            target.close()
            source.close()
    except sqlite3.Error as err:
        raise BackupError(
            f"could not restore {backup} into {database}: {err}; "
            f"the previous database is kept as {kept}"
        ) from err
    _match_owner(database, database.parent)
    return BackupInfo(database, database.stat().st_size, tables)


def _match_owner(path: Path, like: Path) -> None:
    """Run as root, give the restored files to the state directory's owner (gateway)."""
    if os.geteuid() != 0:
        return
    st = like.stat()
    for p in (path, path.with_name(path.name + ".bak")):
        with contextlib.suppress(FileNotFoundError):
            os.chown(p, st.st_uid, st.st_gid)
