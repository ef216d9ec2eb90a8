"""``gateway controller unplug|plug`` against a gateway in simulation mode: the
command line, the HTTP route and the simulated controller's pty, all real."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.cli import main
from gateway.daemon import build


def cli(*argv: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, json.loads(out.getvalue() or "{}")


def state(url: str) -> str:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        return str(httpx.get(url + "/api/status", timeout=5).json()["state"])
    return ""


def wait_state(url: str, want: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while state(url) != want:
        assert time.monotonic() < deadline, f"the machine did not become {want}"
        time.sleep(0.05)


def test_cli_unplugs_and_plugs_the_simulated_controller(tmp_path: Path, kit: Any) -> None:
    config = kit.make_config(tmp_path / "s", access=False)
    with kit.gateway_thread(config) as g:
        code, reply = cli("controller", "unplug", "--url", g.url)
        assert code == 0 and reply == {"plugged": False, "path": ""}
        wait_state(g.url, "disconnected")
        code, reply = cli("controller", "plug", "--url", g.url)
        assert code == 0 and reply["plugged"] is True and reply["path"].startswith("/dev/")
        wait_state(g.url, "idle")


def test_only_simulation_mode_has_a_cable_to_pull(tmp_path: Path, kit: Any) -> None:
    for simulation in (True, False):
        gw = build(kit.make_config(tmp_path / str(simulation), simulation=simulation))
        assert ("sim_controller" in gw.commands.names) is simulation
        assert gw.web is not None
        assert ("/api/sim/controller" in gw.web.app.openapi()["paths"]) is simulation
