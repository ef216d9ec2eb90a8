"""The `gateway` command as a user runs it: the daemon in simulation mode and the tools."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = [sys.executable, "-m", "gateway"]


def sim_config(tmp_path: Path, firmware: str = "marlin") -> Path:
    text = (ROOT / "config" / "sim.toml").read_text()
    text = text.replace('state_dir = "../var/sim"', f'state_dir = "{tmp_path / "state"}"')
    text = text.replace("port = 8080", "port = 0")
    text = text.replace(
        'path = "demo-members.json"', f'path = "{ROOT / "config" / "demo-members.json"}"'
    )
    text = text.replace('firmware = "marlin"', f'firmware = "{firmware}"')
    cfg = tmp_path / "sim.toml"
    cfg.write_text(text)
    return cfg


def start_daemon(cfg: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*GATEWAY, "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"web UI:\s+(http://\S+)", line)
        if m:
            url = m.group(1)
            break
    assert url, proc.stderr.read() if proc.stderr else "no URL printed"
    return proc, url


def test_run_prints_its_url_serves_status_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, url = start_daemon(sim_config(tmp_path))
    try:
        status = {}
        for _ in range(100):
            status = httpx.get(url + "api/status", timeout=5).json()
            if status["state"] == "idle":
                break
            time.sleep(0.1)
        assert status["state"] == "idle"
        assert status["firmware"] == "marlin"
        assert status["job"] is None
    finally:
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        proc.wait(timeout=10)
        stopped_in = time.monotonic() - t0
    assert proc.returncode == 0
    assert stopped_in < 5.0


def test_invalid_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[machine]\nfirmware = "reprap"\n[web]\nportt = 1\n')
    out = subprocess.run(
        [*GATEWAY, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "machine.firmware" in out.stderr and "web.portt: unknown key" in out.stderr


def test_analyze_json(tmp_path: Path) -> None:
    g = tmp_path / "a.gcode"
    g.write_text("G21\nG90\nM82\nG92 E0\nG1 X10 Y0 E1 F600\nG1 X10 Y10 E2\n")
    out = subprocess.run(
        [*GATEWAY, "analyze", str(g), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["moves"] == 2
    assert abs(data["filament_mm"] - 2.0) < 1e-6
    assert data["estimated_seconds"] > 2.0


def test_sessions_export_and_tokens(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path)
    proc, url = start_daemon(cfg)
    try:
        r = httpx.post(url + "api/sim/badge", json={"uid": "04A1B2C3"}, timeout=5)
        assert r.status_code == 200, r.text
        for _ in range(50):
            if httpx.get(url + "api/status", timeout=5).json().get("powered"):
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    out = tmp_path / "sessions.csv"
    res = subprocess.run(
        [*GATEWAY, "sessions", "export", "--config", str(cfg), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "m-001" in text and "04A1B2C3" not in text
    created = subprocess.run(
        [*GATEWAY, "token", "create", "--config", str(cfg), "--name", "ci", "--scope", "read"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert created.returncode == 0, created.stderr
    listed = subprocess.run(
        [*GATEWAY, "token", "list", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "ci" in listed.stdout


def test_badge_command_reports_an_unreachable_daemon() -> None:
    out = subprocess.run(
        [*GATEWAY, "badge", "04A1B2C3", "--url", "http://127.0.0.1:9/"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert out.returncode == 1
    assert "make run" in out.stderr
