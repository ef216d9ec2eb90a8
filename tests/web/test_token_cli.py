"""A new admin's first step, as the README and the sign-in page give it: next to a
running ``make run``, ``.venv/bin/gateway token create --name N --scope admin`` makes a
token that the running simulation accepts.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
#: The command exactly as docs/notes/ui.md (the README) and the sign-in page print it.
README_COMMAND = ".venv/bin/gateway token create --name me --scope admin"


def checkout(tmp_path: Path) -> Path:
    """A copy of the checkout's layout: pyproject.toml, config/ and the venv (linked)."""
    root = tmp_path / "checkout"
    (root / "config").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root)
    for name in ("sim.toml", "demo-members.json"):
        shutil.copy(ROOT / "config" / name, root / "config")
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return root


def start_make_run(root: Path) -> tuple[subprocess.Popen[str], str]:
    """What ``make run`` starts, from the checkout; on a free port so tests can run in parallel."""
    proc = subprocess.Popen(
        [".venv/bin/gateway", "run", "--config", "config/sim.toml"],
        cwd=root,
        env={**os.environ, "GATEWAY_WEB__PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"web UI:\s+(http://\S+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError("the gateway printed no URL")


def test_readme_token_command_works_against_the_running_simulation(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    proc, url = start_make_run(root)
    try:
        made = subprocess.run(
            README_COMMAND, shell=True, cwd=root, capture_output=True, text=True, timeout=60
        )
        assert made.returncode == 0, made.stderr
        # It says where it wrote, so a mismatch could never be silent.
        assert "config/sim.toml" in made.stderr
        assert str((root / "var" / "sim").resolve()) in made.stderr
        secret = made.stdout.splitlines()[2].strip()
        r = httpx.get(url + "api/whoami", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "me"
        assert r.json()["scope"] == "admin"
        # The README's command table writes it without the venv's path, as run with the
        # venv on PATH (activated): that works as written too.
        table = subprocess.run(
            "gateway token create --name N --scope admin",
            shell=True,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PATH": f"{root / '.venv' / 'bin'}:{os.environ['PATH']}"},
        )
        assert table.returncode == 0, table.stderr
        other = table.stdout.splitlines()[2].strip()
        r = httpx.get(url + "api/whoami", headers={"Authorization": f"Bearer {other}"}, timeout=10)
        assert r.status_code == 200 and r.json()["name"] == "N", r.text
        # The sign-in page shows the same command.
        page = httpx.get(url + "admin", timeout=10).text
        assert ".venv/bin/gateway token create --name NAME --scope admin" in page
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_token_command_from_a_subfolder_of_the_checkout_finds_it(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    sub = root / "docs"
    sub.mkdir()
    made = subprocess.run(
        ["../.venv/bin/gateway", "token", "list"], cwd=sub, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert f"state folder {(root / 'var' / 'sim').resolve()}" in made.stderr


def test_outside_a_checkout_the_cli_says_it_uses_the_defaults(tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "gateway", "token", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "GATEWAY_STORAGE__STATE_DIR": str(tmp_path / "state")},
    )
    assert made.returncode == 0, made.stderr
    if Path("/etc/gateway/gateway.toml").is_file():
        assert "/etc/gateway/gateway.toml" in made.stderr
    else:
        assert "built-in defaults" in made.stderr
    assert f"state folder {tmp_path / 'state'}" in made.stderr
