"""Job records in SQLite: one row per job, written when it is queued and updated
as it runs and ends, so a crash never loses a job's history."""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils

from gateway.machine.job import Job, JobState

JOBS = "jobs"


def ensure_schema(db: sqlite_utils.Database) -> None:
    if JOBS not in db.table_names():
        db.table(JOBS).create(
            {
                "id": int,
                "machine_id": str,
                "file": str,
                "state": str,
                "queued_at": float,
                "started_at": float,
                "ended_at": float,
                "seconds": float,
                "lines_total": int,
                "lines_done": int,
                "bytes_total": int,
                "bytes_done": int,
                "resends": int,
                "errors": int,
                "reason": str,
                "estimated_seconds": float,
                "filament_mm": float,
            },
            pk="id",
        )
        db.table(JOBS).create_index(["started_at"])


def _row(job: Job, machine_id: str) -> dict[str, Any]:
    return {
        "machine_id": machine_id,
        "file": job.file,
        "state": job.state.value,
        "queued_at": job.queued_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "seconds": round(job.elapsed(time.monotonic()), 3),
        "lines_total": job.lines_total,
        "lines_done": job.lines_done,
        "bytes_total": job.bytes_total,
        "bytes_done": job.bytes_done,
        "resends": job.resends,
        "errors": job.errors,
        "reason": job.reason,
        "estimated_seconds": job.estimated_seconds,
        "filament_mm": job.filament_mm,
    }


def insert_job(db: sqlite_utils.Database, job: Job, machine_id: str) -> int:
    table = db.table(JOBS)
    table.insert(_row(job, machine_id))
    return int(table.last_pk or 0)


def update_job(db: sqlite_utils.Database, job: Job, machine_id: str) -> None:
    db.table(JOBS).update(job.id, _row(job, machine_id))


def close_interrupted(db: sqlite_utils.Database) -> int:
    """Mark jobs left running, paused or finishing by a crash or power loss as failed."""
    now = time.time()
    cur = db.execute(
        "UPDATE jobs SET state = ?, ended_at = COALESCE(ended_at, ?), "
        "reason = 'the gateway stopped during the job' WHERE state IN (?, ?, ?)",
        [
            JobState.FAILED.value,
            now,
            JobState.RUNNING.value,
            JobState.PAUSED.value,
            JobState.FINISHING.value,
        ],
    )
    db.conn.commit()
    return cur.rowcount


def history(db: sqlite_utils.Database, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM jobs ORDER BY id DESC LIMIT ? OFFSET ?", [limit, offset]))
