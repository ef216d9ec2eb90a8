"""Durable record of how far the current job got, so it can be resumed after a crash.

One row per machine in the ``resume_checkpoints`` table of the shared SQLite
file: the job, its file and the file's SHA-256, the machine kind, firmware
and firmware version it ran on, the member who ran it, and the last
confirmed line of the *original* file (for a resumed job, the preamble is
not counted), with the layer and Z there.  The modal state at that line
(modes, temperatures, fan, feed, offsets, spindle) is not copied into the
row: it is a pure function of the file and the line
(:func:`gateway.machine.resume.state_at`), and the hash pins the file, so it
cannot drift from what the controller really did.

Cost: the service keeps the last confirmed line in memory (a few integer
assignments per line) and :class:`CheckpointPolicy` decides when to write
it: every ``interval`` seconds, at once when a new layer starts (a stale
layer would offer to reprint a finished one), and when the job ends.  A
write is one ``UPSERT`` on a dedicated connection with
``PRAGMA synchronous=FULL`` (WAL): it reaches the disk before the write
returns, so a power cut loses at most ``interval`` seconds of progress,
never the record.

Integrity: each row carries a CRC-32 of its fields.  A row that fails the
check, or holds values that make no sense, is read as
:class:`DamagedCheckpoint`: "job interrupted at line N" without a resume
offer, never a resume from a wrong place.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import zlib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from gateway.machine.errors import MachineError
from gateway.store import connect as store_connect

__all__ = [
    "Checkpoint",
    "CheckpointPolicy",
    "DamagedCheckpoint",
    "ResumeRefused",
    "clear",
    "connect",
    "ensure_schema",
    "file_sha256",
    "load",
    "refusal",
    "save",
]

TABLE = "resume_checkpoints"
_HASH_CHUNK = 1 << 20


class ResumeRefused(MachineError):
    """A resume was refused; ``code`` says why in a word, the message what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a job was when last confirmed.  ``line`` is 0-based: the next line to run."""

    machine_id: str
    job_id: int
    file: str
    file_sha256: str
    lines_total: int
    kind: str
    firmware: str
    firmware_version: str
    member_id: str
    member_name: str
    line: int
    layer: int
    z: float | None
    started_at: float
    updated_at: float
    resumed_from: int | None = None  # the job this one resumes, if any

    def crc(self) -> int:
        body = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return zlib.crc32(body.encode())

    def valid(self) -> bool:
        return (
            self.job_id > 0
            and 0 <= self.line <= self.lines_total
            and self.layer >= 0
            and len(self.file_sha256) == 64
            and (self.z is None or math.isfinite(self.z))
        )

    def advanced(self, line: int, layer: int, z: float | None, now: float) -> Checkpoint:
        return replace(self, line=line, layer=layer, z=z, updated_at=now)


@dataclass(frozen=True, slots=True)
class DamagedCheckpoint:
    """A record that fails its check: the job is reported, never offered for resume."""

    machine_id: str
    job_id: int | None
    file: str | None
    line: int | None
    reason: str


@dataclass(slots=True)
class CheckpointPolicy:
    """When to write: pure, the clock passed in.

    :meth:`due` is called with each confirmed line; it says whether the row
    should be written now.
    """

    interval: float = 0.5  # seconds between writes while lines are confirmed
    written_line: int = -1
    written_layer: int = -1
    written_at: float = -math.inf

    def due(self, line: int, layer: int, now: float) -> bool:
        if line == self.written_line:
            return False
        return layer != self.written_layer or now - self.written_at >= self.interval

    def wrote(self, line: int, layer: int, now: float) -> None:
        self.written_line, self.written_layer, self.written_at = line, layer, now


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks (blocking: call it in a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def connect(path: Path) -> sqlite3.Connection:
    """A connection for checkpoints only: WAL, and ``synchronous=FULL`` so a write
    is on the disk when it returns.  Use it from one thread."""
    conn = store_connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=FULL")
    ensure_schema(conn)
    return conn


def ensure_schema(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        "machine_id TEXT PRIMARY KEY, record TEXT NOT NULL, crc INTEGER NOT NULL)"
    )


def save(conn: sqlite3.Connection, cp: Checkpoint) -> None:
    record = json.dumps(asdict(cp), sort_keys=True, separators=(",", ":"))
    conn.execute(
        f"INSERT INTO {TABLE} (machine_id, record, crc) VALUES (?, ?, ?) "
        "ON CONFLICT(machine_id) DO UPDATE SET record = excluded.record, crc = excluded.crc",
        (cp.machine_id, record, cp.crc()),
    )


def clear(conn: sqlite3.Connection, machine_id: str) -> None:
    conn.execute(f"DELETE FROM {TABLE} WHERE machine_id = ?", (machine_id,))


def load(conn: sqlite3.Connection, machine_id: str) -> Checkpoint | DamagedCheckpoint | None:
    """The machine's checkpoint, a :class:`DamagedCheckpoint`, or None if there is none."""
    row = conn.execute(
        f"SELECT record, crc FROM {TABLE} WHERE machine_id = ?", (machine_id,)
    ).fetchone()
    if row is None:
        return None
    record, crc = row
    raw: Any = None
    try:
        raw = json.loads(record)
        names = {f.name for f in fields(Checkpoint)}
        if not isinstance(raw, dict) or set(raw) != names:
            raise ValueError("the record's fields do not match")
        cp = Checkpoint(**raw)
        _check_types(cp)
        if cp.crc() != crc:
            raise ValueError("the record's checksum does not match")
        if not cp.valid():
            raise ValueError("the record holds impossible values")
    except (ValueError, TypeError) as err:
        return _damaged(machine_id, raw, str(err))
    return cp


def _check_types(cp: Checkpoint) -> None:
    ints = (cp.job_id, cp.lines_total, cp.line, cp.layer)
    strs = (cp.machine_id, cp.file, cp.file_sha256, cp.kind, cp.firmware, cp.firmware_version)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
        raise TypeError("the record has a number where it needs a whole number")
    if not all(isinstance(v, str) for v in (*strs, cp.member_id, cp.member_name)):
        raise TypeError("the record has a value where it needs text")
    if cp.z is not None and not isinstance(cp.z, int | float):
        raise TypeError("the record's height is not a number")


def _damaged(machine_id: str, raw: Any, reason: str) -> DamagedCheckpoint:
    def pick(key: str, kind: type) -> Any:
        value = raw.get(key) if isinstance(raw, dict) else None
        return value if isinstance(value, kind) and not isinstance(value, bool) else None

    return DamagedCheckpoint(
        machine_id=machine_id,
        job_id=pick("job_id", int),
        file=pick("file", str),
        line=pick("line", int),
        reason=f"the resume record is damaged ({reason})",
    )


def refusal(
    cp: Checkpoint,
    *,
    file_sha256_now: str | None,
    kind: str,
    firmware: str,
    firmware_version: str | None,
) -> ResumeRefused | None:
    """Why ``cp`` may not be resumed on this machine now, or None if it may.

    ``file_sha256_now`` is None when the file is no longer in the library;
    ``firmware_version`` None while the controller has not said it yet.
    """
    if file_sha256_now is None:
        return ResumeRefused(
            "file_missing", f"{cp.file} is no longer in the library; it cannot be resumed"
        )
    if file_sha256_now != cp.file_sha256:
        return ResumeRefused(
            "file_changed",
            f"{cp.file} was changed since the job ran; resuming it would print a different "
            "file from the middle, so start it again from the beginning",
        )
    if kind != cp.kind or firmware != cp.firmware:
        return ResumeRefused(
            "machine_changed",
            f"the job ran on a {cp.kind} with {cp.firmware}; this machine is now a {kind} "
            f"with {firmware}, so it cannot be resumed here",
        )
    if firmware_version is not None and firmware_version != cp.firmware_version:
        return ResumeRefused(
            "firmware_changed",
            f"the controller's firmware changed ({cp.firmware_version or 'unknown'} → "
            f"{firmware_version or 'unknown'}) since the job ran; start it again instead",
        )
    return None
