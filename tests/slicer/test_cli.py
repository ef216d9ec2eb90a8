"""``gateway slicer-key`` and ``gateway slicer-jobs export`` on a real database file."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from gateway import cli
from gateway.slicer import records
from gateway.slicer.held import HeldAction, HeldJob, transition
from gateway.store import open_database


def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    return cfg


def test_key_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(config(tmp_path))
    assert (
        cli.main(["slicer-key", "create", "--member", "m-ada", "--name", "Ada L", "-c", cfg]) == 0
    )
    secret = capsys.readouterr().out.splitlines()[1]
    assert secret.startswith("gwm_")
    db = open_database(tmp_path / "state" / "gateway.db")
    found = records.find_key(db, secret)
    assert found is not None and found.member_id == "m-ada" and found.created_by == "cli"
    assert cli.main(["slicer-key", "list", "-c", cfg]) == 0
    listed = capsys.readouterr().out
    assert "m-ada" in listed and secret not in listed
    assert cli.main(["slicer-key", "revoke", "m-ada", "-c", cfg]) == 0
    assert records.find_key(db, secret) is None
    assert cli.main(["slicer-key", "revoke", "m-ada", "-c", cfg]) == 1
    db.conn.close()


def test_jobs_export_names_uploader_door_and_releaser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config(tmp_path))
    (tmp_path / "state").mkdir()
    db = open_database(tmp_path / "state" / "gateway.db")
    records.ensure_schema(db)
    job = records.insert_held(
        db, HeldJob(0, "a.gcode", "Ä.gcode", "m-ada", "Ada Lovelace", "slicer", 10.0, 99.0)
    )
    records.update_held(db, transition(job, HeldAction.RELEASE, by="m-ada", now=20.0), 4)
    db.conn.close()
    out = tmp_path / "jobs.csv"
    assert cli.main(["slicer-jobs", "export", "-c", cfg, "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows == [
        {
            "id": "1",
            "member_id": "m-ada",
            "member_name": "Ada Lovelace",
            "file": "a.gcode",
            "display_name": "Ä.gcode",
            "door": "slicer",
            "uploaded_at": "1970-01-01T00:00:10+00:00",
            "state": "started",
            "released_by": "m-ada",
            "ended_at": "1970-01-01T00:00:20+00:00",
            "machine_job_id": "4",
        }
    ]


def test_usage_export_gains_members_jobs_by_door(tmp_path: Path) -> None:
    from gateway.slicer.cli import add_job_columns

    db_path = tmp_path / "g.db"
    db = open_database(db_path)
    records.ensure_schema(db)
    for file, member, name, door in (
        ("a.gcode", "m-ada", "Ada Lovelace", "slicer"),
        ("b.gcode", "m-ada", "Ada Lovelace", "usb"),
        ("c.gcode", "m-eve", "Eve Lapsed", "slicer"),
    ):
        job = records.insert_held(db, HeldJob(0, file, file, member, name, door, 1.0, 9.0))
        if file == "a.gcode":
            records.update_held(db, transition(job, HeldAction.RELEASE, by=member, now=2.0))
    db.conn.close()
    usage = "member_id,member_name,machine_id,sessions\r\nm-ada,Ada Lovelace,mk4,2\r\n"
    out = io.StringIO()
    assert add_job_columns(usage, db_path, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0] == {
        "member_id": "m-ada",
        "member_name": "Ada Lovelace",
        "machine_id": "mk4",
        "sessions": "2",
        "jobs_sent": "2",
        "jobs_started": "1",
        "doors": "slicer:1 usb:1",
    }
    # Eve never badged in (her membership ended) but her upload is on record.
    assert rows[1]["member_id"] == "m-eve" and rows[1]["jobs_started"] == "0"
    assert rows[1]["sessions"] == ""
