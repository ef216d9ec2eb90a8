"""The slicer capability's tables in the gateway's SQLite file (blocking functions,
run on the service's :class:`~gateway.store.Store` thread, or directly by the CLI).

- ``slicer_keys``: member keys, one per member and label ("kiosk", "Cura", "cli"...);
  only the SHA-256 of a key is kept, like API tokens.
- ``slicer_files``: who put each library file there and through which door.
- ``slicer_held``: every held job with who uploaded it, through which door, who
  released it and when; the record of members' jobs for usage reports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import sqlite_utils

from gateway.slicer.errors import SlicerError
from gateway.slicer.held import HeldJob, HeldState

KEY_PREFIX = "gwm_"
MAX_MEMBER_ID = 64
MAX_LABEL = 64


@dataclass(frozen=True, slots=True)
class MemberKey:
    member_id: str
    member_name: str
    label: str
    created_at: float
    created_by: str
    last_used_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def ensure_schema(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS slicer_keys ("
        " member_id TEXT NOT NULL, member_name TEXT NOT NULL, label TEXT NOT NULL,"
        " key_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, created_by TEXT NOT NULL,"
        " last_used_at REAL, PRIMARY KEY (member_id, label))"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS slicer_files ("
        " name TEXT PRIMARY KEY, display_name TEXT NOT NULL, member_id TEXT NOT NULL,"
        " member_name TEXT NOT NULL, door TEXT NOT NULL, uploaded_at REAL NOT NULL)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS slicer_held ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT NOT NULL, display_name TEXT NOT NULL,"
        " member_id TEXT NOT NULL, member_name TEXT NOT NULL, door TEXT NOT NULL,"
        " uploaded_at REAL NOT NULL, expires_at REAL NOT NULL, state TEXT NOT NULL,"
        " released_by TEXT, ended_at REAL, machine_job_id INTEGER)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS slicer_held_state ON slicer_held (state)")


# -- keys --------------------------------------------------------------------------------


def _check_member(member_id: str, member_name: str, label: str) -> None:
    if not member_id or len(member_id) > MAX_MEMBER_ID or not member_id.isprintable():
        raise SlicerError("bad_args", "a member id is 1-64 printable characters, e.g. m-ada")
    if not member_name.strip() or len(member_name) > 120:
        raise SlicerError("bad_args", "give the member's name as it is on their badge record")
    if not label or len(label) > MAX_LABEL or not label.isprintable():
        raise SlicerError("bad_args", "a key label is 1-64 printable characters")


def create_key(
    db: sqlite_utils.Database, member_id: str, member_name: str, label: str, by: str
) -> tuple[MemberKey, str]:
    """A new key for the member (replacing, and so revoking, their key of that label);
    returns its record and the secret, which is never stored."""
    _check_member(member_id, member_name, label)
    secret = KEY_PREFIX + secrets.token_urlsafe(24)
    now = time.time()
    with db.conn:
        db.execute(
            "INSERT OR REPLACE INTO slicer_keys (member_id, member_name, label, key_hash,"
            " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
            [member_id, member_name.strip(), label, hash_key(secret), now, by],
        )
    return MemberKey(member_id, member_name.strip(), label, now, by, None), secret


def find_key(db: sqlite_utils.Database, secret: str) -> MemberKey | None:
    row = db.execute(
        "SELECT member_id, member_name, label, created_at, created_by, last_used_at"
        " FROM slicer_keys WHERE key_hash = ?",
        [hash_key(secret)],
    ).fetchone()
    return MemberKey(*row) if row else None


def touch_key(db: sqlite_utils.Database, member_id: str, label: str, at: float) -> None:
    with db.conn:
        db.execute(
            "UPDATE slicer_keys SET last_used_at = ? WHERE member_id = ? AND label = ?",
            [at, member_id, label],
        )


def revoke_keys(db: sqlite_utils.Database, member_id: str, label: str | None = None) -> int:
    """Delete the member's keys (of ``label`` only, when given); how many went."""
    with db.conn:
        if label is None:
            cur = db.execute("DELETE FROM slicer_keys WHERE member_id = ?", [member_id])
        else:
            cur = db.execute(
                "DELETE FROM slicer_keys WHERE member_id = ? AND label = ?", [member_id, label]
            )
    return int(cur.rowcount)


def list_keys(db: sqlite_utils.Database) -> list[MemberKey]:
    rows = db.execute(
        "SELECT member_id, member_name, label, created_at, created_by, last_used_at"
        " FROM slicer_keys ORDER BY member_id, label"
    ).fetchall()
    return [MemberKey(*r) for r in rows]


# -- files and held jobs -------------------------------------------------------------------


def record_file(
    db: sqlite_utils.Database,
    name: str,
    display_name: str,
    member_id: str,
    member_name: str,
    door: str,
    at: float,
) -> None:
    with db.conn:
        db.execute(
            "INSERT OR REPLACE INTO slicer_files VALUES (?, ?, ?, ?, ?, ?)",
            [name, display_name, member_id, member_name, door, at],
        )


def file_owners(db: sqlite_utils.Database) -> dict[str, dict[str, Any]]:
    rows = db.execute(
        "SELECT name, display_name, member_id, member_name, door, uploaded_at FROM slicer_files"
    ).fetchall()
    return {
        r[0]: {
            "display_name": r[1],
            "member_id": r[2],
            "member_name": r[3],
            "door": r[4],
            "uploaded_at": r[5],
        }
        for r in rows
    }


_HELD_COLUMNS = (
    "id, file, display_name, member_id, member_name, door, uploaded_at, expires_at, state,"
    " released_by, ended_at"
)


def _held(row: tuple[Any, ...]) -> HeldJob:
    values = list(row)
    values[8] = HeldState(values[8])
    return HeldJob(*values)


def insert_held(db: sqlite_utils.Database, job: HeldJob) -> HeldJob:
    with db.conn:
        cur = db.execute(
            "INSERT INTO slicer_held (file, display_name, member_id, member_name, door,"
            " uploaded_at, expires_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                job.file,
                job.display_name,
                job.member_id,
                job.member_name,
                job.door,
                job.uploaded_at,
                job.expires_at,
                job.state.value,
            ],
        )
    rowid = cur.lastrowid
    assert rowid is not None
    return dataclasses.replace(job, id=rowid)


def update_held(db: sqlite_utils.Database, job: HeldJob, machine_job_id: int | None = None) -> None:
    with db.conn:
        db.execute(
            "UPDATE slicer_held SET state = ?, released_by = ?, ended_at = ?,"
            " machine_job_id = COALESCE(?, machine_job_id) WHERE id = ?",
            [job.state.value, job.released_by, job.ended_at, machine_job_id, job.id],
        )


def held_jobs(db: sqlite_utils.Database) -> list[HeldJob]:
    rows = db.execute(
        f"SELECT {_HELD_COLUMNS} FROM slicer_held WHERE state = 'held' ORDER BY uploaded_at"
    ).fetchall()
    return [_held(r) for r in rows]


def get_held(db: sqlite_utils.Database, job_id: int) -> HeldJob | None:
    row = db.execute(f"SELECT {_HELD_COLUMNS} FROM slicer_held WHERE id = ?", [job_id]).fetchone()
    return _held(row) if row else None


def usage(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Per member: files sent, jobs held, jobs started (and by whom), by door."""
    rows = db.execute(
        "SELECT member_id, member_name, door, COUNT(*),"
        " SUM(state = 'started'), SUM(state = 'expired'), SUM(state = 'cancelled'),"
        " MAX(uploaded_at)"
        " FROM slicer_held GROUP BY member_id, door ORDER BY member_id, door"
    ).fetchall()
    return [
        {
            "member_id": r[0],
            "member_name": r[1],
            "door": r[2],
            "jobs_held": r[3],
            "jobs_started": r[4] or 0,
            "jobs_expired": r[5] or 0,
            "jobs_cancelled": r[6] or 0,
            "last_upload_at": r[7],
        }
        for r in rows
    ]


def job_records(db: sqlite_utils.Database, limit: int = 200) -> list[dict[str, Any]]:
    """Held jobs, newest first, with who uploaded and released each."""
    rows = db.execute(
        f"SELECT {_HELD_COLUMNS}, machine_job_id FROM slicer_held ORDER BY id DESC LIMIT ?",
        [limit],
    ).fetchall()
    out = []
    for r in rows:
        d = _held(r[:-1]).as_dict()
        d["machine_job_id"] = r[-1]
        out.append(d)
    return out
