"""A real ``gateway run`` process in simulation mode for the operations tests.

The relay sits on the file-backed simulated GPIO (``access.gpio = "sim-file"``),
so its level can be read from outside the daemon, also after the daemon is
killed.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = [sys.executable, "-m", "gateway"]
UNIT = ROOT / "systemd" / "gateway.service"
ADA = "04A1B2C3"  # a demo member inducted on sim-printer (config/demo-members.json)
RELAY_PIN = 17


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sim_config(tmp_path: Path, *, port: int = 0, access: bool = True) -> Path:
    text = (ROOT / "config" / "sim.toml").read_text()
    text = text.replace('state_dir = "../var/sim"', f'state_dir = "{tmp_path / "state"}"')
    text = text.replace("port = 8080", f"port = {port}")
    text = text.replace('gpio = "mock"', 'gpio = "sim-file"')
    text = text.replace("time_scale = 1.0", "time_scale = 0.0")
    text = text.replace(
        'path = "demo-members.json"', f'path = "{ROOT / "config" / "demo-members.json"}"'
    )
    if not access:
        text = text.replace("[access]\nenabled = true", "[access]\nenabled = false")
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(text)
    return cfg


def gpio_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gpio"


class Daemon:
    def __init__(self, cfg: Path, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*GATEWAY, "run", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        self.url = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"web UI:\s+(http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"the daemon printed no URL:\n{err}")
        # Started is not settled: wait until the machine has connected to its
        # simulated controller, so its records exist before a test reads them.
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "api/status", timeout=5).json()["state"] == "idle":
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise AssertionError("the daemon's machine never became idle")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()
