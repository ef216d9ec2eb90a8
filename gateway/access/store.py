"""What the access capability keeps on disk, in the daemon's SQLite database.

Tables (created if missing; all prefixed ``access_`` in the shared file):

- ``access_members`` and ``access_list_meta``: the last good access list, so the
  machine keeps working offline after a restart, plus where it came from, its
  ETag, its size and the last fetch error.
- ``access_sessions``: one row per session, written when it opens (``ended_at``
  NULL) and updated when it ends; ``last_seen`` is refreshed every minute so
  that after a crash the open row is closed with reason ``crash`` at the time
  the daemon was last known alive.
- ``access_inductions``: inductions recorded at the machine, queued for the
  membership system (``synced`` = 0 until it has them).
- ``access_denials``: refused badges (reason, time, member id or NULL); never
  a UID or a badge hash.
- ``access_lockout``: the active maintenance lockout, so it survives restarts.
- ``access_bookings``: bookings made here (admin API, MQTT ``book``); bookings
  from the access list are kept with the list (``access_list_meta.bookings``).
  ``access_inductions.level`` is the level granted and ``pushed`` whether the
  grant webhook has it; ``access_members.inductions`` the list's induction details.

All methods block; the service calls them with :func:`asyncio.to_thread`.  One
connection is shared by those worker threads (hence ``check_same_thread=False``)
and serialised by a lock.  A row edited by hand into nonsense is logged once as
an error and skipped; it never stops the other rows from being read.
"""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlite_utils import Database

from gateway.access.bookings import Booking, BookingError, parse_bookings
from gateway.access.errors import AccessError
from gateway.access.members import AccessList, AccessListError, Induction, Member, Role
from gateway.store import connect

log = logging.getLogger(__name__)

MEMBERS = "access_members"
META = "access_list_meta"
SESSIONS = "access_sessions"
INDUCTIONS = "access_inductions"
DENIALS = "access_denials"
LOCKOUT = "access_lockout"
BOOKINGS = "access_bookings"
JOB_STARTS = "access_job_starts"


class AccessStoreError(AccessError):
    """The access database cannot be opened or read."""


@dataclass(frozen=True, slots=True)
class ListMeta:
    source: str | None
    fetched_at: float | None
    etag: str | None
    member_count: int
    generated_at: str | None
    last_error: str | None
    last_error_at: float | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    member_id: str
    member_name: str
    role: str
    machine_id: str
    started_at: float
    ended_at: float | None
    duration: float | None
    end_reason: str | None
    jobs: int
    job_seconds: float
    filament_mm: float
    last_seen: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Totals for one member on one machine."""

    member_id: str
    member_name: str
    machine_id: str
    sessions: int
    powered_seconds: float
    job_seconds: float
    filament_mm: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class InductionRecord:
    id: int
    trainer_id: str
    member_id: str
    machine_id: str
    at: float
    synced: bool
    level: str | None = None
    pushed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trainer_id": self.trainer_id,
            "member_id": self.member_id,
            "machine_id": self.machine_id,
            "level": self.level,
            "at": _iso(self.at),
        }


@dataclass(frozen=True, slots=True)
class LockoutRecord:
    reason: str
    by: str
    at: float


class _Corrupt(ValueError):
    """A stored value is not what the schema says."""


def _text(row: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = row.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not value and not optional):
        raise _Corrupt(f"{key} is {value!r}, expected text")
    return value


def _number(row: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = row.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Corrupt(f"{key} is {value!r}, expected a number")
    return float(value)


def _epoch(t: datetime | None) -> float | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _aware(text: str) -> datetime:
    """A stored time, UTC if a hand edit left it without a zone (an aware and a naive
    time cannot be compared: a badge would raise).  Far-off years count as corrupt."""
    t = datetime.fromisoformat(text)
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    if not 1970 <= t.year <= 9000:
        raise _Corrupt(f"{text!r} is out of range")
    return t


def _induction_json(i: Induction) -> dict[str, str | None]:
    return {
        "level": i.level,
        "inducted_at": i.inducted_at.isoformat() if i.inducted_at else None,
        "last_used": i.last_used.isoformat() if i.last_used else None,
    }


def _induction(raw: Any) -> Induction:
    if not isinstance(raw, dict):
        raise _Corrupt("an induction is not an object")

    def when(key: str) -> datetime | None:
        value = raw.get(key)
        return _aware(value) if isinstance(value, str) else None

    level = raw.get("level")
    return Induction(
        level=level if isinstance(level, str) else None,
        inducted_at=when("inducted_at"),
        last_used=when("last_used"),
    )


def _iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


class AccessStore:
    """The access tables in one SQLite file (WAL mode).  Open with :meth:`open`."""

    def __init__(self, db: Database, machine_id: str) -> None:
        self.db = db
        self.machine_id = machine_id
        self._lock = threading.Lock()
        self._reported: set[tuple[str, str]] = set()

    @classmethod
    def open(cls, path: Path, machine_id: str) -> AccessStore:
        try:
            db = Database(connect(path))
            store = cls(db, machine_id)
            store._create_tables()
        except (OSError, sqlite3.Error) as err:
            raise AccessStoreError(
                f"cannot open the access database {path}: {err}; check that the state "
                "directory exists and is writable by the gateway user"
            ) from err
        return store

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def _create_tables(self) -> None:
        db = self.db
        db.table(MEMBERS).create(
            {
                "id": str,
                "name": str,
                "roles": str,
                "valid_from": str,
                "valid_until": str,
                "suspended": str,
                "badge_hashes": str,
            },
            pk="id",
            if_not_exists=True,
        )
        db.table(META).create(
            {
                "id": int,
                "source": str,
                "fetched_at": float,
                "etag": str,
                "member_count": int,
                "generated_at": str,
                "last_error": str,
                "last_error_at": float,
            },
            pk="id",
            if_not_exists=True,
        )
        db.table(SESSIONS).create(
            {
                "id": str,
                "member_id": str,
                "member_name": str,
                "role": str,
                "machine_id": str,
                "started_at": float,
                "ended_at": float,
                "duration": float,
                "end_reason": str,
                "jobs": int,
                "job_seconds": float,
                "filament_mm": float,
                "last_seen": float,
            },
            pk="id",
            if_not_exists=True,
        )
        db.table(SESSIONS).create_index(["started_at"], if_not_exists=True)
        db.table(INDUCTIONS).create(
            {
                "id": int,
                "trainer_id": str,
                "member_id": str,
                "machine_id": str,
                "at": float,
                "synced": int,
            },
            pk="id",
            if_not_exists=True,
        )
        db.table(DENIALS).create(
            {"id": int, "machine_id": str, "reason": str, "at": float, "member_id": str},
            pk="id",
            if_not_exists=True,
        )
        db.table(LOCKOUT).create(
            {"machine_id": str, "reason": str, "by": str, "at": float},
            pk="machine_id",
            if_not_exists=True,
        )
        db.table(BOOKINGS).create(
            {
                "id": str,
                "machine_id": str,
                "member_id": str,
                "member_name": str,
                "start": str,
                "end": str,
                "made_by": str,
            },
            pk="id",
            if_not_exists=True,
        )
        # Who started or resumed each job, and which member was present (presence rule).
        db.table(JOB_STARTS).create(
            {
                "id": int,
                "machine_id": str,
                "at": float,
                "action": str,
                "caller": str,
                "session_id": str,
                "member_id": str,
            },
            pk="id",
            if_not_exists=True,
        )
        # Columns added by the access policy, to databases made before it.
        for table, column, kind in (
            (MEMBERS, "inductions", str),
            (META, "bookings", str),
            (INDUCTIONS, "level", str),
            (INDUCTIONS, "pushed", int),
        ):
            if column not in db.table(table).columns_dict:
                db.table(table).add_column(column, kind)
        db.table(SESSIONS).create_index(["machine_id", "member_id"], if_not_exists=True)

    def _corrupt(self, table: str, key: object, err: Exception) -> None:
        marker = (table, str(key))
        if marker not in self._reported:
            self._reported.add(marker)
            log.error(
                "skipping corrupted row %s in table %s of the access database: %s; "
                "fix or delete it with sqlite3",
                key,
                table,
                err,
            )

    # -- the access list -------------------------------------------------------------

    def save_access_list(
        self, access_list: AccessList, *, source: str, etag: str | None, fetched_at: float
    ) -> None:
        """Replace the stored list in one transaction: all of it or none of it."""
        rows = [
            {
                "id": m.id,
                "name": m.name,
                "roles": json.dumps({k: r.label for k, r in m.roles.items()}),
                "valid_from": m.valid_from.isoformat() if m.valid_from else None,
                "valid_until": m.valid_until.isoformat() if m.valid_until else None,
                "suspended": m.suspended_reason,
                "badge_hashes": json.dumps(sorted(m.badge_hashes)),
                "inductions": json.dumps(
                    {k: _induction_json(i) for k, i in m.inductions.items()}
                )
                if m.inductions
                else None,
            }
            for m in access_list.members
        ]
        bookings = json.dumps([b.as_dict() for b in access_list.bookings])
        generated = access_list.generated_at.isoformat() if access_list.generated_at else None
        with self._lock, self.db.atomic():
            self.db.execute(f"DELETE FROM {MEMBERS}")
            if rows:
                self.db.table(MEMBERS).insert_all(rows)
            self.db.table(META).upsert(
                {
                    "id": 1,
                    "source": source,
                    "fetched_at": fetched_at,
                    "etag": etag,
                    "member_count": len(rows),
                    "generated_at": generated,
                    "last_error": None,
                    "last_error_at": None,
                    "bookings": bookings,
                },
                pk="id",
            )

    def record_list_error(self, *, source: str, error: str, at: float) -> None:
        """Note a failed fetch; the stored list is left as it is."""
        with self._lock:
            self.db.table(META).upsert(
                {"id": 1, "last_error": f"{source}: {error}", "last_error_at": at}, pk="id"
            )

    def list_meta(self) -> ListMeta:
        with self._lock:
            rows = list(self.db.query(f"SELECT * FROM {META} WHERE id = 1"))
        row = rows[0] if rows else {}
        count = row.get("member_count")
        return ListMeta(
            source=row.get("source"),
            fetched_at=row.get("fetched_at"),
            etag=row.get("etag"),
            member_count=count if isinstance(count, int) else 0,
            generated_at=row.get("generated_at"),
            last_error=row.get("last_error"),
            last_error_at=row.get("last_error_at"),
        )

    def load_access_list(self) -> AccessList | None:
        """The last good list, or None if none was ever stored."""
        with self._lock:
            meta = list(self.db.query(f"SELECT * FROM {META} WHERE id = 1"))
            rows = list(self.db.query(f"SELECT * FROM {MEMBERS} ORDER BY rowid"))
        if not meta or meta[0].get("fetched_at") is None:
            return None
        members: list[Member] = []
        seen_badges: set[str] = set()
        for row in rows:
            try:
                member = self._member(row)
                if seen_badges & member.badge_hashes:
                    raise _Corrupt("shares a badge with an earlier member")
            except (_Corrupt, ValueError, TypeError) as err:
                self._corrupt(MEMBERS, row.get("id"), err)
                continue
            seen_badges |= member.badge_hashes
            members.append(member)
        generated = meta[0].get("generated_at")
        bookings = self._list_bookings(meta[0].get("bookings"), members)
        try:
            generated_at = datetime.fromisoformat(generated) if generated else None
            return AccessList(members, generated_at=generated_at, bookings=bookings)
        except (ValueError, AccessListError) as err:
            self._corrupt(META, 1, err)
            return AccessList(members)

    def _list_bookings(self, raw: Any, members: list[Member]) -> tuple[Booking, ...]:
        if not raw:
            return ()
        try:
            entries = json.loads(raw)
            if not isinstance(entries, list):
                raise _Corrupt("bookings is not a list")
            return parse_bookings(entries, {m.id: m.name for m in members})
        except (ValueError, BookingError) as err:
            self._corrupt(META, "bookings", err)
            return ()

    @staticmethod
    def _member(row: dict[str, Any]) -> Member:
        roles_raw = json.loads(_text(row, "roles"))
        hashes = json.loads(_text(row, "badge_hashes"))
        if not isinstance(roles_raw, dict) or not isinstance(hashes, list):
            raise _Corrupt("roles or badge_hashes has the wrong shape")
        if not all(isinstance(h, str) and len(h) == 64 for h in hashes):
            raise _Corrupt("a badge hash is not 64 hex digits")
        valid_from = _text(row, "valid_from", optional=True)
        valid_until = _text(row, "valid_until", optional=True)
        inductions_raw = _text(row, "inductions", optional=True)
        inductions = json.loads(inductions_raw) if inductions_raw else {}
        if not isinstance(inductions, dict):
            raise _Corrupt("inductions has the wrong shape")
        return Member(
            id=_text(row, "id"),
            name=_text(row, "name"),
            roles={str(k): Role.parse(str(v)) for k, v in roles_raw.items()},
            valid_from=_aware(valid_from) if valid_from else None,
            valid_until=_aware(valid_until) if valid_until else None,
            suspended_reason=_text(row, "suspended", optional=True),
            badge_hashes=frozenset(hashes),
            inductions={str(k): _induction(v) for k, v in inductions.items()},
        )

    # -- sessions -------------------------------------------------------------------------

    def open_session(
        self, session_id: str, *, member_id: str, member_name: str, role: str, started_at: float
    ) -> None:
        with self._lock:
            self.db.table(SESSIONS).insert(
                {
                    "id": session_id,
                    "member_id": member_id,
                    "member_name": member_name,
                    "role": role,
                    "machine_id": self.machine_id,
                    "started_at": started_at,
                    "ended_at": None,
                    "duration": None,
                    "end_reason": None,
                    "jobs": 0,
                    "job_seconds": 0.0,
                    "filament_mm": 0.0,
                    "last_seen": started_at,
                }
            )

    def close_session(self, session_id: str, *, ended_at: float, reason: str) -> None:
        with self._lock:
            self.db.execute(
                f"UPDATE {SESSIONS} SET ended_at = ?, end_reason = ?, last_seen = ?, "
                "duration = MAX(0, ? - started_at) WHERE id = ? AND ended_at IS NULL",
                [ended_at, reason, ended_at, ended_at, session_id],
            )

    def heartbeat(self, session_id: str, at: float) -> None:
        with self._lock:
            self.db.execute(f"UPDATE {SESSIONS} SET last_seen = ? WHERE id = ?", [at, session_id])

    def job_started(self, session_id: str) -> None:
        with self._lock:
            self.db.execute(f"UPDATE {SESSIONS} SET jobs = jobs + 1 WHERE id = ?", [session_id])

    def job_finished(self, session_id: str, *, seconds: float, filament_mm: float) -> None:
        with self._lock:
            self.db.execute(
                f"UPDATE {SESSIONS} SET job_seconds = job_seconds + ?, "
                "filament_mm = filament_mm + ? WHERE id = ?",
                [max(0.0, seconds), max(0.0, filament_mm), session_id],
            )

    def close_crashed_sessions(self, now: float) -> list[str]:
        """Close sessions a crash left open, at their last heartbeat; returns their ids."""
        with self._lock:
            rows = list(
                self.db.query(
                    f"SELECT * FROM {SESSIONS} WHERE ended_at IS NULL AND machine_id = ?",
                    [self.machine_id],
                )
            )
            closed: list[str] = []
            for row in rows:
                try:
                    started = _number(row, "started_at")
                    seen = _number(row, "last_seen", optional=True)
                    ended = max(started, min(seen if seen is not None else started, now))
                    duration: float | None = ended - started
                except _Corrupt as err:
                    self._corrupt(SESSIONS, row.get("id"), err)
                    ended, duration = now, None
                self.db.execute(
                    f"UPDATE {SESSIONS} SET ended_at = ?, duration = ?, end_reason = 'crash' "
                    "WHERE id = ?",
                    [ended, duration, row.get("id")],
                )
                closed.append(str(row.get("id")))
        if closed:
            log.warning("closed %d session(s) left open by a crash or power cut", len(closed))
        return closed

    def _session(self, row: dict[str, Any]) -> SessionRecord:
        jobs = row.get("jobs")
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
            raise _Corrupt(f"jobs is {jobs!r}, expected a count")
        return SessionRecord(
            id=_text(row, "id"),
            member_id=_text(row, "member_id"),
            member_name=_text(row, "member_name"),
            role=_text(row, "role"),
            machine_id=_text(row, "machine_id"),
            started_at=_number(row, "started_at"),
            ended_at=_number(row, "ended_at", optional=True),
            duration=_number(row, "duration", optional=True),
            end_reason=_text(row, "end_reason", optional=True),
            jobs=jobs,
            job_seconds=_number(row, "job_seconds"),
            filament_mm=_number(row, "filament_mm"),
            last_seen=_number(row, "last_seen", optional=True),
        )

    def _sessions(self, order: str) -> Iterator[SessionRecord]:
        with self._lock:
            rows = list(self.db.query(f"SELECT * FROM {SESSIONS} ORDER BY rowid {order}"))
        for row in rows:
            try:
                yield self._session(row)
            except _Corrupt as err:
                self._corrupt(SESSIONS, row.get("id"), err)

    def sessions(
        self,
        limit: int | None = 50,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        newest_first: bool = True,
    ) -> list[SessionRecord]:
        """Readable sessions started in ``[since, until)``; corrupted rows are skipped."""
        lo, hi = _epoch(since), _epoch(until)
        out: list[SessionRecord] = []
        for record in self._sessions("DESC" if newest_first else "ASC"):
            if (lo is not None and record.started_at < lo) or (
                hi is not None and record.started_at >= hi
            ):
                continue
            out.append(record)
            if limit is not None and len(out) >= limit:
                break
        return out

    def usage(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        now: float | None = None,
    ) -> list[UsageRecord]:
        """Powered time, job time and filament per member and machine."""
        totals: dict[tuple[str, str], UsageRecord] = {}
        current = now if now is not None else datetime.now(UTC).timestamp()
        for s in self.sessions(None, since=since, until=until, newest_first=False):
            powered = s.duration if s.duration is not None else max(0.0, current - s.started_at)
            key = (s.member_id, s.machine_id)
            before = totals.get(key) or UsageRecord(
                s.member_id, s.member_name, s.machine_id, 0, 0.0, 0.0, 0.0
            )
            totals[key] = UsageRecord(
                s.member_id,
                s.member_name,
                s.machine_id,
                before.sessions + 1,
                before.powered_seconds + powered,
                before.job_seconds + s.job_seconds,
                before.filament_mm + s.filament_mm,
            )
        return sorted(totals.values(), key=lambda u: (u.machine_id, u.member_id))

    # -- inductions, denials, lockout --------------------------------------------------

    def record_induction(
        self, *, trainer_id: str, member_id: str, at: float, level: str | None = None
    ) -> None:
        with self._lock:
            self.db.table(INDUCTIONS).insert(
                {
                    "trainer_id": trainer_id,
                    "member_id": member_id,
                    "machine_id": self.machine_id,
                    "at": at,
                    "synced": 0,
                    "level": level,
                    "pushed": 0,
                }
            )

    def unsynced_inductions(self) -> list[InductionRecord]:
        with self._lock:
            rows = list(self.db.query(f"SELECT * FROM {INDUCTIONS} WHERE synced = 0 ORDER BY id"))
        out: list[InductionRecord] = []
        for row in rows:
            try:
                out.append(
                    InductionRecord(
                        id=int(row["id"]),
                        trainer_id=_text(row, "trainer_id"),
                        member_id=_text(row, "member_id"),
                        machine_id=_text(row, "machine_id"),
                        at=_number(row, "at"),
                        synced=False,
                        level=_text(row, "level", optional=True),
                        pushed=bool(row.get("pushed")),
                    )
                )
            except _Corrupt as err:
                self._corrupt(INDUCTIONS, row.get("id"), err)
        return out

    def mark_inductions_synced(self, ids: list[int]) -> None:
        with self._lock, self.db.atomic():
            for induction_id in ids:
                self.db.execute(f"UPDATE {INDUCTIONS} SET synced = 1 WHERE id = ?", [induction_id])

    def mark_inductions_pushed(self, ids: list[int]) -> None:
        """The grant webhook accepted these; they stay unsynced until the list shows them."""
        with self._lock, self.db.atomic():
            for induction_id in ids:
                self.db.execute(f"UPDATE {INDUCTIONS} SET pushed = 1 WHERE id = ?", [induction_id])

    def last_used(self) -> dict[str, float]:
        """Each member's last session start on this machine (epoch seconds)."""
        with self._lock:
            rows = self.db.execute(
                f"SELECT member_id, MAX(started_at) FROM {SESSIONS} "
                "WHERE machine_id = ? GROUP BY member_id",
                [self.machine_id],
            ).fetchall()
        return {
            str(member_id): float(at)
            for member_id, at in rows
            if isinstance(member_id, str) and isinstance(at, int | float)
        }

    # -- bookings made here -------------------------------------------------------------

    def save_booking(self, booking: Booking, *, made_by: str) -> None:
        with self._lock:
            self.db.table(BOOKINGS).insert(
                {
                    "id": booking.id,
                    "machine_id": booking.machine_id,
                    "member_id": booking.member_id,
                    "member_name": booking.member_name,
                    "start": booking.start.isoformat(),
                    "end": booking.end.isoformat(),
                    "made_by": made_by,
                }
            )

    def delete_booking(self, booking_id: str) -> bool:
        with self._lock:
            cur = self.db.execute(f"DELETE FROM {BOOKINGS} WHERE id = ?", [booking_id])
            return bool(cur.rowcount)

    def bookings(self) -> list[Booking]:
        with self._lock:
            rows = list(self.db.query(f"SELECT * FROM {BOOKINGS} ORDER BY start"))
        out: list[Booking] = []
        for row in rows:
            try:
                out.append(
                    Booking(
                        id=_text(row, "id"),
                        machine_id=_text(row, "machine_id"),
                        member_id=_text(row, "member_id"),
                        member_name=_text(row, "member_name"),
                        start=_aware(_text(row, "start")),
                        end=_aware(_text(row, "end")),
                        source=str(row.get("made_by") or "admin"),
                    )
                )
            except (_Corrupt, ValueError) as err:
                self._corrupt(BOOKINGS, row.get("id"), err)
        return out

    def record_denial(self, *, reason: str, at: float, member_id: str | None) -> None:
        with self._lock:
            self.db.table(DENIALS).insert(
                {"machine_id": self.machine_id, "reason": reason, "at": at, "member_id": member_id}
            )

    def record_job_start(
        self,
        *,
        at: float,
        action: str,
        caller: str,
        session_id: str | None,
        member_id: str | None,
    ) -> None:
        with self._lock:
            self.db.table(JOB_STARTS).insert(
                {
                    "machine_id": self.machine_id,
                    "at": at,
                    "action": action,
                    "caller": caller,
                    "session_id": session_id,
                    "member_id": member_id,
                }
            )

    def job_starts(self, limit: int = 50) -> list[dict[str, Any]]:
        """Job starts and resumes, newest first: who asked and who was present."""
        with self._lock:
            return list(
                self.db.query(
                    f"SELECT at, action, caller, session_id, member_id FROM {JOB_STARTS} "
                    "ORDER BY id DESC LIMIT ?",
                    [limit],
                )
            )

    def denials(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            return list(
                self.db.query(
                    f"SELECT reason, at, member_id FROM {DENIALS} ORDER BY id DESC LIMIT ?", [limit]
                )
            )

    def save_lockout(self, *, reason: str, by: str, at: float) -> None:
        with self._lock:
            self.db.table(LOCKOUT).upsert(
                {"machine_id": self.machine_id, "reason": reason, "by": by, "at": at},
                pk="machine_id",
            )

    def clear_lockout(self) -> None:
        with self._lock:
            self.db.execute(f"DELETE FROM {LOCKOUT} WHERE machine_id = ?", [self.machine_id])

    def load_lockout(self) -> LockoutRecord | None:
        with self._lock:
            rows = list(
                self.db.query(f"SELECT * FROM {LOCKOUT} WHERE machine_id = ?", [self.machine_id])
            )
        if not rows:
            return None
        row = rows[0]
        try:
            return LockoutRecord(
                reason=_text(row, "reason"),
                by=_text(row, "by", optional=True) or "unknown",
                at=_number(row, "at"),
            )
        except _Corrupt as err:
            # A lockout that cannot be read is still a lockout: keep the machine locked.
            self._corrupt(LOCKOUT, self.machine_id, err)
            return LockoutRecord(reason="lockout record unreadable", by="unknown", at=0.0)


# -- CSV export ---------------------------------------------------------------------------

SESSION_COLUMNS = [
    "id",
    "member_id",
    "member_name",
    "role",
    "machine_id",
    "started_at",
    "ended_at",
    "duration",
    "end_reason",
    "jobs",
    "job_seconds",
    "filament_mm",
]
USAGE_COLUMNS = [
    "member_id",
    "member_name",
    "machine_id",
    "sessions",
    "powered_seconds",
    "job_seconds",
    "filament_mm",
]


def _open_existing(db_path: Path) -> AccessStore:
    if not db_path.exists():
        raise AccessStoreError(
            f"no database at {db_path}; check storage.state_dir in the config file"
        )
    return AccessStore.open(db_path, machine_id="")


def export_sessions_csv(
    db_path: Path, out: TextIO, *, since: datetime | None = None, until: datetime | None = None
) -> int:
    """Write sessions started in ``[since, until)`` as CSV, oldest first; returns rows written."""
    store = _open_existing(db_path)
    try:
        records = store.sessions(None, since=since, until=until, newest_first=False)
    finally:
        store.close()
    writer = csv.writer(out)
    writer.writerow(SESSION_COLUMNS)
    for r in sorted(records, key=lambda r: r.started_at):
        writer.writerow(
            [
                r.id,
                r.member_id,
                r.member_name,
                r.role,
                r.machine_id,
                _iso(r.started_at),
                _iso(r.ended_at),
                "" if r.duration is None else f"{r.duration:.0f}",
                r.end_reason or "",
                r.jobs,
                f"{r.job_seconds:.0f}",
                f"{r.filament_mm:.1f}",
            ]
        )
    return len(records)


def usage_csv(
    db_path: Path, out: TextIO, *, since: datetime | None = None, until: datetime | None = None
) -> int:
    """Write usage totals per member and machine as CSV; returns rows written."""
    store = _open_existing(db_path)
    try:
        records = store.usage(since=since, until=until)
    finally:
        store.close()
    writer = csv.writer(out)
    writer.writerow(USAGE_COLUMNS)
    for u in records:
        writer.writerow(
            [
                u.member_id,
                u.member_name,
                u.machine_id,
                u.sessions,
                f"{u.powered_seconds:.0f}",
                f"{u.job_seconds:.0f}",
                f"{u.filament_mm:.1f}",
            ]
        )
    return len(records)
