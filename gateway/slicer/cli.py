"""``gateway slicer-key create|list|revoke`` and ``gateway slicer-jobs export``: member
keys and the record of members' jobs, managed on the Pi itself (blocking; they open
the daemon's database file, which WAL lets them share with the running daemon).

``gateway usb plug|unplug`` drives a running gateway's simulated USB stick over HTTP.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from gateway.slicer import records
from gateway.slicer.errors import SlicerError
from gateway.store import open_database

JOB_COLUMNS = (
    "id",
    "member_id",
    "member_name",
    "file",
    "display_name",
    "door",
    "uploaded_at",
    "state",
    "released_by",
    "ended_at",
    "machine_job_id",
)


def _when(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def key_create(db_path: Path, member_id: str, name: str, out: TextIO = sys.stdout) -> int:
    """Create (replace) the member's admin-issued key and print it once."""
    db = open_database(db_path)
    try:
        records.ensure_schema(db)
        record, secret = records.create_key(db, member_id, name, "admin", "cli")
    except SlicerError as err:
        print(f"gateway slicer-key: {err.message}", file=sys.stderr)
        return 1
    finally:
        db.conn.close()
    print(f"Slicer key for {record.member_name} ({record.member_id}); shown once:", file=out)
    print(secret, file=out)
    print("In the slicer: an OctoPrint host, this key as its API key.", file=out)
    return 0


def key_list(db_path: Path, out: TextIO = sys.stdout) -> int:
    db = open_database(db_path)
    try:
        records.ensure_schema(db)
        keys = records.list_keys(db)
    finally:
        db.conn.close()
    if not keys:
        print("No member keys. Members get one on the touchscreen ('My slicer key').", file=out)
        return 0
    print(f"{'MEMBER':<16} {'NAME':<24} {'LABEL':<10} {'CREATED':<26} LAST USED", file=out)
    for k in keys:
        print(
            f"{k.member_id:<16} {k.member_name:<24} {k.label:<10} {_when(k.created_at):<26} "
            f"{_when(k.last_used_at) or 'never'}",
            file=out,
        )
    return 0


def key_revoke(db_path: Path, member_id: str, out: TextIO = sys.stdout) -> int:
    db = open_database(db_path)
    try:
        records.ensure_schema(db)
        n = records.revoke_keys(db, member_id)
    finally:
        db.conn.close()
    if not n:
        print(f"gateway slicer-key: {member_id!r} has no key", file=sys.stderr)
        return 1
    print(f"Revoked {n} key(s) of {member_id}.", file=out)
    return 0


def jobs_csv(db_path: Path, out: TextIO, limit: int = 100_000) -> int:
    """Members' held jobs as CSV: who uploaded, through which door, who released."""
    db = open_database(db_path)
    try:
        records.ensure_schema(db)
        rows = records.job_records(db, limit)
    finally:
        db.conn.close()
    writer = csv.writer(out)
    writer.writerow(JOB_COLUMNS)
    for r in reversed(rows):
        writer.writerow(
            [
                r["id"],
                r["member_id"],
                r["member_name"],
                r["file"],
                r["display_name"],
                r["door"],
                _when(r["uploaded_at"]),
                r["state"],
                r["released_by"] or "",
                _when(r["ended_at"]),
                r["machine_job_id"] if r["machine_job_id"] is not None else "",
            ]
        )
    return len(rows)


def usb(url: str, action: str, name: str) -> int:
    """Plug in or pull out a running gateway's simulated USB stick."""
    import httpx

    target = url.rstrip("/") + "/api/sim/usb"
    try:
        r = httpx.post(target, json={"action": action, "name": name}, timeout=10)
    except httpx.HTTPError as err:
        print(f"gateway usb: cannot reach {target}: {err}; is `make run` running?", file=sys.stderr)
        return 1
    if r.status_code >= 400:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text
        print(f"gateway usb: {message}", file=sys.stderr)
        return 1
    print(json.dumps(r.json()))
    return 0


#: Columns added to ``gateway sessions export --usage``: members' jobs by door.
USAGE_JOB_COLUMNS = ("jobs_sent", "jobs_started", "doors")


@dataclass
class _MemberJobs:
    name: str
    sent: int = 0
    started: int = 0
    doors: list[str] = field(default_factory=list)

    def cells(self) -> list[object]:
        return [self.sent, self.started, " ".join(self.doors)]


def add_job_columns(usage_csv: str, db_path: Path, out: TextIO) -> int:
    """Copy the access usage CSV to ``out`` with each member's jobs (sent, started, and
    by which doors) added; members with jobs but no sessions get rows of their own.
    Returns the data rows written."""
    db = open_database(db_path)
    try:
        records.ensure_schema(db)
        per_door = records.usage(db)
    finally:
        db.conn.close()
    jobs: dict[str, _MemberJobs] = {}
    for u in per_door:
        j = jobs.setdefault(str(u["member_id"]), _MemberJobs(str(u["member_name"])))
        j.sent += int(u["jobs_held"])
        j.started += int(u["jobs_started"])
        j.doors.append(f"{u['door']}:{u['jobs_held']}")
    reader = csv.reader(io.StringIO(usage_csv))
    writer = csv.writer(out)
    header = next(reader, None)
    if header is None:
        return 0
    writer.writerow([*header, *USAGE_JOB_COLUMNS])
    rows = 0
    seen: set[str] = set()
    for row in reader:
        member = row[0] if row else ""
        # A member's jobs go on their first row (one per machine in the access CSV).
        mine = jobs.get(member) if member not in seen else None
        seen.add(member)
        writer.writerow([*row, *(mine.cells() if mine is not None else [0, 0, ""])])
        rows += 1
    for member, j in jobs.items():
        if member not in seen:
            writer.writerow([member, j.name, *[""] * (len(header) - 2), *j.cells()])
            rows += 1
    return rows
