"""`gateway backup` and `gateway restore` on a database that is being written."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gateway.ops.backup import BackupError, backup_database, check_database, restore_database
from gateway.store import open_database

from .conftest import GATEWAY, free_port, sim_config

# Each transaction adds one job and one matching ledger row; a consistent copy
# has as many of one as of the other.
WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    print("writing", flush=True)
    n = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute("INSERT INTO jobs (name) VALUES (?)", (f"job-{n}",))
        conn.execute("INSERT INTO ledger (job_id) VALUES (?)", (cur.lastrowid,))
        conn.execute("COMMIT")
        n += 1
    """
)


def make_db(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = open_database(path)
    db.conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT)")
    db.conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, job_id INTEGER)")
    db.conn.commit()
    db.conn.close()


def counts(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        ledger = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        return jobs, ledger
    finally:
        conn.close()


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, timeout=60)


def test_backup_while_writing_then_restore_round_trip(tmp_path: Path) -> None:
    port = free_port()
    cfg = sim_config(tmp_path, port=port, access=False)
    db = tmp_path / "state" / "gateway.db"
    make_db(db)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        time.sleep(0.3)
        copies = []
        for i in range(3):
            out = tmp_path / f"backup-{i}.db"
            result = gateway("backup", "--config", str(cfg), "-o", str(out))
            assert result.returncode == 0, result.stderr
            jobs, ledger = counts(out)
            assert jobs == ledger > 0, "the backup is not one consistent snapshot"
            copies.append(jobs)
            time.sleep(0.1)
        assert copies == sorted(copies) and copies[0] < copies[-1], "the writer was not active"
    finally:
        writer.kill()
        writer.wait()

    before = counts(db)
    assert before[0] > copies[-1]
    result = gateway("restore", str(tmp_path / "backup-0.db"), "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert counts(db) == (copies[0], copies[0])
    assert counts(db.with_name("gateway.db.bak")) == before


def test_restore_refuses_while_the_daemon_answers(tmp_path: Path) -> None:
    port = free_port()
    cfg = sim_config(tmp_path, port=port)
    db = tmp_path / "state" / "gateway.db"
    make_db(db)
    backup = tmp_path / "b.db"
    backup_database(db, backup)
    with socket.create_server(("127.0.0.1", port)):
        result = gateway("restore", str(backup), "--config", str(cfg))
    assert result.returncode == 1
    assert "the gateway is running" in result.stderr
    assert not db.with_name("gateway.db.bak").exists()


def test_restore_refuses_a_file_that_is_not_a_gateway_database(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path, port=free_port())
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("hello")
    result = gateway("restore", str(not_sqlite), "--config", str(cfg))
    assert result.returncode == 1 and "not an SQLite database" in result.stderr

    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE recipes (id INTEGER)")
    conn.commit()
    conn.close()
    result = gateway("restore", str(other), "--config", str(cfg))
    assert result.returncode == 1 and "no access_sessions, jobs table" in result.stderr


def test_backup_of_a_missing_database_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no database at"):
        backup_database(tmp_path / "missing.db", tmp_path / "out.db")


def test_restore_into_an_empty_state_directory(tmp_path: Path) -> None:
    src = tmp_path / "a" / "gateway.db"
    make_db(src)
    backup = tmp_path / "b.db"
    backup_database(src, backup)
    target = tmp_path / "new" / "gateway.db"
    info = restore_database(backup, target, required=("jobs",))
    assert info.tables == ("jobs", "ledger")
    assert check_database(target) == ("jobs", "ledger")
    assert not target.with_name("gateway.db.bak").exists()


def test_backup_of_the_daemons_own_database(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path, port=free_port())
    from .conftest import Daemon

    d = Daemon(cfg)
    try:
        result = gateway("backup", "--config", str(cfg), "-o", str(tmp_path / "live.db"))
    finally:
        d.stop()
    assert result.returncode == 0, result.stderr
    tables = check_database(tmp_path / "live.db", required=("jobs", "access_sessions"))
    assert "access_members" in tables
