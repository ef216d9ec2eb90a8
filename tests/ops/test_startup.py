"""Start-up of a real ``gateway run``: every service creates its tables without
tripping over another's ("database is locked" at start-up, issue 15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import Daemon, sim_config

STARTS = 20


@pytest.mark.timeout(600)
def test_twenty_starts_log_no_error(tmp_path: Path) -> None:
    problems: list[str] = []
    for n in range(STARTS):
        # Even starts begin from an empty state directory (the race is between
        # services creating tables); odd ones restart on the tables just made.
        if n % 2 == 0:
            shutil.rmtree(tmp_path / "state", ignore_errors=True)
        daemon = Daemon(sim_config(tmp_path))
        daemon.proc.terminate()
        _, err = daemon.proc.communicate(timeout=30)
        bad = [
            line
            for line in err.splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]
        if bad:
            problems.append(f"start {n + 1}:\n" + "\n".join(bad))
        assert daemon.proc.returncode == 0, f"start {n + 1} exited {daemon.proc.returncode}:\n{err}"
    assert not problems, "\n".join(problems)
