"""Member keys and held-job records in a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.slicer import records
from gateway.slicer.errors import SlicerError
from gateway.slicer.held import HeldAction, HeldJob, transition
from gateway.store import open_database


def test_keys_are_stored_hashed_and_a_new_one_revokes_the_old(tmp_path: Path) -> None:
    db = open_database(tmp_path / "g.db")
    records.ensure_schema(db)
    _, first = records.create_key(db, "m-ada", "Ada Lovelace", "kiosk", "m-ada")
    raw = (tmp_path / "g.db").read_bytes() + (tmp_path / "g.db-wal").read_bytes()
    assert first.encode() not in raw
    assert records.find_key(db, first) is not None
    _, second = records.create_key(db, "m-ada", "Ada Lovelace", "kiosk", "m-ada")
    assert records.find_key(db, first) is None
    found = records.find_key(db, second)
    assert found is not None and found.member_id == "m-ada"
    # A key of another label (an app paired with Cura) lives beside it.
    _, cura = records.create_key(db, "m-ada", "Ada Lovelace", "Cura", "m-ada")
    assert records.find_key(db, second) is not None and records.find_key(db, cura) is not None
    assert records.revoke_keys(db, "m-ada") == 2
    assert records.find_key(db, cura) is None
    with pytest.raises(SlicerError):
        records.create_key(db, "", "Ada", "kiosk", "x")


def test_held_jobs_record_who_and_which_door(tmp_path: Path) -> None:
    db = open_database(tmp_path / "g.db")
    records.ensure_schema(db)
    job = records.insert_held(
        db, HeldJob(0, "a.gcode", "a.gcode", "m-ada", "Ada Lovelace", "usb", 10.0, 100.0)
    )
    assert job.id > 0 and records.held_jobs(db) == [job]
    started = transition(job, HeldAction.RELEASE, by="m-ada", now=20.0)
    records.update_held(db, started, machine_job_id=7)
    assert records.held_jobs(db) == []
    [row] = records.job_records(db)
    assert row["released_by"] == "m-ada" and row["door"] == "usb" and row["machine_job_id"] == 7
    [usage] = records.usage(db)
    assert usage["jobs_started"] == 1 and usage["door"] == "usb"
