"""The ledger in SQLite: append-only rows, plus the head kept beside them.

``append`` runs in one ``BEGIN IMMEDIATE`` transaction (safe with the CLI's
corrections from another process): it reads the head, makes and signs the next
record, inserts it and moves the head.  The next record links to the *head*,
not to the last row still present, so a deleted row leaves a visible break (a
seq gap and a prev_hash that matches nothing) instead of being papered over.
A restored older backup continues from its older head: the records after it
then exist twice with different hashes, which the broker's retained copy and
the membership system see.

Synchronous (called with ``asyncio.to_thread``).  ``published_seq`` and
``webhook_seq`` remember how far the retained MQTT copy and the webhook got.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.ledger.chain import Record, make_record
from gateway.ledger.errors import LedgerError
from gateway.store import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY,
    machine_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts REAL NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    key_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

CSV_COLUMNS = (
    "seq", "time", "kind", "member_id", "member_name", "session_id", "job_id", "file",
    "outcome", "minutes", "busy_minutes", "idle_minutes", "energy_kwh", "grams",
    "estimated", "cost", "currency", "corrects_seq", "reason", "hash",
)  # fmt: skip


def _row(record: Record) -> tuple[Any, ...]:
    return (
        record.seq,
        record.machine_id,
        record.kind,
        record.ts,
        json.dumps(record.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        record.prev_hash,
        record.key_id,
        record.hash,
        record.signature,
    )


def _record(row: tuple[Any, ...]) -> Record:
    return Record(
        seq=row[0],
        machine_id=row[1],
        kind=row[2],
        ts=row[3],
        body=json.loads(row[4]),
        prev_hash=row[5],
        key_id=row[6],
        hash=row[7],
        signature=row[8],
    )


class LedgerStore:
    def __init__(self, path: Path, key: Ed25519PrivateKey, machine_id: str) -> None:
        self.path = path
        self.key = key
        self.machine_id = machine_id
        self._lock = threading.Lock()
        try:
            self._conn = connect(path, isolation_level=None)
            self._conn.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise LedgerError(
                f"cannot open the ledger in {path}: {err}; check the state folder"
            ) from err

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ meta

    def _meta(self, name: str) -> str | None:
        row = self._conn.execute("SELECT value FROM ledger_meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, name: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO ledger_meta (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def head(self) -> tuple[int, str] | None:
        """The last appended record's ``(seq, hash)``, as kept beside the rows."""
        with self._lock:
            return self._head()

    def _head(self) -> tuple[int, str] | None:
        text = self._meta("head")
        if text is None:
            row = self._conn.execute(
                "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            return None if row is None else (int(row[0]), str(row[1]))
        seq, digest = text.split(":", 1)
        return int(seq), digest

    def cursor(self, name: str) -> int:
        with self._lock:
            return int(self._meta(f"{name}_seq") or 0)

    def set_cursor(self, name: str, seq: int) -> None:
        with self._lock:
            self._set_meta(f"{name}_seq", str(seq))

    # ------------------------------------------------------------------ records

    def append(self, kind: str, ts: float, body: dict[str, Any]) -> Record:
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    record = make_record(
                        self._head(),
                        machine_id=self.machine_id,
                        kind=kind,
                        ts=ts,
                        body=body,
                        key=self.key,
                    )
                    conn.execute(
                        "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _row(record)
                    )
                    self._set_meta("head", f"{record.seq}:{record.hash}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as err:
                raise LedgerError(f"cannot append to the ledger in {self.path}: {err}") from err
        return record

    def get(self, seq: int) -> Record | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM ledger WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else _record(row)

    def records(self, after: int = 0, limit: int = 1_000_000) -> list[Record]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [_record(r) for r in rows]

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM ledger").fetchone()[0])


# --------------------------------------------------------------------------- export


def export_json(records: list[Record], *, public_key: str, machine_id: str) -> str:
    """Every record with the key to check them: what ``gateway ledger verify FILE`` reads."""
    head = records[-1] if records else None
    doc = {
        "format": "gateway-ledger/1",
        "machine_id": machine_id,
        "algorithm": "Ed25519",
        "public_key": public_key,
        "head": {"seq": head.seq, "hash": head.hash} if head else None,
        "records": [r.as_dict() for r in records],
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _csv_row(r: Record) -> dict[str, Any]:
    b = r.body
    corrects = b.get("corrects") if isinstance(b.get("corrects"), dict) else {}

    def minutes(key: str) -> str:
        value = b.get(key)
        return f"{value / 60:.2f}" if isinstance(value, int | float) else ""

    energy = b.get("energy_wh")
    return {
        "seq": r.seq,
        "time": _iso(r.ts),
        "kind": r.kind,
        "member_id": b.get("member_id") or "",
        "member_name": b.get("member_name") or "",
        "session_id": b.get("session_id") or "",
        "job_id": b.get("job_id", ""),
        "file": b.get("file", ""),
        "outcome": b.get("outcome", ""),
        "minutes": minutes("powered_seconds"),
        "busy_minutes": minutes("busy_seconds"),
        "idle_minutes": minutes("idle_seconds"),
        "energy_kwh": f"{energy / 1000:.4f}" if isinstance(energy, int | float) else "",
        "grams": b.get("grams", ""),
        "estimated": b.get("estimated", ""),
        "cost": b.get("cost", ""),
        "currency": b.get("currency", ""),
        "corrects_seq": (corrects or {}).get("seq", ""),
        "reason": b.get("reason", ""),
        "hash": r.hash,
    }


def export_csv(records: list[Record]) -> str:
    """One row per record, for a spreadsheet or the accounts."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(_csv_row(r))
    return out.getvalue()

