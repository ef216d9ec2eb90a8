"""``gateway slicer-key create|list|revoke`` and ``gateway slicer-jobs export``: member
keys and the record of members' jobs, managed on the Pi itself (blocking; they open
the daemon's database file, which WAL lets them share with the running daemon).

``gateway usb plug|unplug`` drives a running gateway's simulated USB stick over HTTP.
"""

from __future__ import annotations

import csv
import json
import sys
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
