"""Power loss mid-job, then a resume through the touchscreen.

A real ``gateway run`` process (simulated Marlin moving in scaled real time,
simulated badge reader) runs a layered job for Ada and is killed with SIGKILL
part-way.  A second daemon on the same state directory offers the job back to
Ada only (another member sees nothing), shows the preamble, and resumes from
the offered layer.  The second simulated controller's log of executed commands
must be the preamble, then exactly the original file's moves from that layer.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import SerialConfig, line_limit
from gateway.machine.checkpoint import Checkpoint, load
from gateway.machine.files import FileLibrary
from gateway.machine.gcode import clean_line

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ADA = "04A1B2C3"
MACHINE = "sim-printer"
SHOTS = ROOT / "test-artefacts" / "screenshots"

pytestmark = [pytest.mark.timeout(240)]


def config(tmp_path: Path, name: str, *, time_scale: float, log: Path) -> Path:
    text = (ROOT / "config" / "sim.toml").read_text()
    text = text.replace('state_dir = "../var/sim"', f'state_dir = "{tmp_path / "state"}"')
    text = text.replace("port = 8080", "port = 0")
    text = text.replace('gpio = "mock"', 'gpio = "sim-file"')
    text = text.replace(
        "time_scale = 1.0", f'time_scale = {time_scale}\nexecuted_log = "{log}"'
    )
    text = text.replace(
        'path = "demo-members.json"', f'path = "{ROOT / "config" / "demo-members.json"}"'
    )
    # No camera: less load on a shared test machine, and nothing here looks at it.
    camera = "stands in for the Pi camera.\nenabled = true"
    assert camera in text
    text = text.replace(camera, "stands in for the Pi camera.\nenabled = false")
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(text)
    return cfg


class Daemon:
    def __init__(self, cfg: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=dict(os.environ),
        )
        assert self.proc.stdout is not None
        self.url = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.url:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"web UI:\s+(http://\S+)", line)
            if m:
                self.url = m.group(1)
        assert self.url, "the daemon printed no URL"
        wait(lambda: self.status().get("state") == "idle", 60, "the machine to connect")

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = httpx.get(self.url + "api/status", timeout=5).json()
            return data
        except (httpx.HTTPError, ValueError):
            return {}

    def get(self, path: str) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(self.url + path, timeout=5).json()
        return data

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(self.url + path.lstrip("/"), json=body, timeout=10)
        assert r.status_code < 300, r.text
        data: dict[str, Any] = r.json()
        return data

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=10)


def wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def layered_job(path: Path, layers: int = 10, per_layer: int = 30) -> list[str]:
    lines = ["G28", "G21", "G90", "M140 S60", "M104 S210", "M190 S60", "M109 S210"]
    lines += ["M83", "M106 S200"]
    for n in range(1, layers + 1):
        lines.append(f";LAYER:{n}")
        lines.append(f"G1 Z{0.2 * n:.2f} F600")
        for i in range(per_layer):
            x, y = 20 + (i * 13) % 60, 20 + (i * 7) % 50
            lines.append(f"G1 X{x} Y{y} E0.08 F{2400 + 10 * n}")
    lines += ["M107", "M104 S0", "M140 S0"]
    path.write_text("\n".join(lines) + "\n")
    return [c for c in (clean_line(x) for x in lines) if c]


def checkpoint(db: Path) -> Checkpoint | None:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return None
    try:
        got = load(conn, MACHINE)
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return got if isinstance(got, Checkpoint) else None


async def fits(page: Any) -> None:
    """At 800x480: no scrolling, and every visible button big enough to hit."""
    size = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert size[0] <= 800 and size[1] <= 480, size
    small = await page.evaluate(
        """() => [...document.querySelectorAll('button, select')]
             .filter(b => b.offsetParent !== null && !b.closest('.files'))
             .map(b => { const r = b.getBoundingClientRect();
               return [b.id || b.textContent.trim(), r.width, r.height, r.right, r.bottom]; })
             .filter(([, w, h, right, bottom]) => w < 48 || h < 48 || right > 800.5
               || bottom > 480.5)"""
    )
    assert not small, small


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


def moves(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("G0", "G1", "G2", "G3"))]


@contextlib.asynccontextmanager
async def kiosk(url: str) -> AsyncIterator[Any]:
    """The touchscreen: headless Chromium at 800x480 on the daemon's kiosk, badge screen shown."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await page.goto(url)
            await expect(page.locator("#screen-locked")).to_be_visible()
            yield page
        finally:
            await browser.close()


def library(tmp_path: Path, *names: str) -> None:
    """The daemons' file library (under ``state/``), holding ``names`` from ``tmp_path``."""
    files = FileLibrary(
        tmp_path / "state" / "files",
        firmware="marlin",
        max_line_length=line_limit(SerialConfig(), "marlin"),
        max_bytes=10 * 2**20,
    )
    for name in names:
        files.add_path(tmp_path / name)


def interrupted_job(tmp_path: Path, log: Path, file: str, layer: int) -> dict[str, Any]:
    """Ada runs ``file`` on a first daemon, killed with SIGKILL (no shutdown code runs)
    once the checkpoint says ``layer``; the job as it was started."""
    first = Daemon(config(tmp_path, "first", time_scale=0.02, log=log))
    try:
        first.post("/api/sim/badge", {"uid": ADA})
        wait(lambda: first.status().get("powered") is True, 20, "the relay to power the printer")
        job = first.post("/api/jobs", {"file": file})
        db = tmp_path / "state" / "gateway.db"
        wait(
            lambda: (cp := checkpoint(db)) is not None and cp.layer >= layer,
            120,
            f"layer {layer}",
        )
    finally:
        first.kill()
    return job


async def test_killed_mid_job_resumes_from_the_offered_layer(tmp_path: Path) -> None:
    from playwright.async_api import expect

    state = tmp_path / "state"
    original = layered_job(tmp_path / "tower.gcode")
    library(tmp_path, "tower.gcode")
    first_log, second_log = tmp_path / "executed-1.log", tmp_path / "executed-2.log"
    job = interrupted_job(tmp_path, first_log, "tower.gcode", 4)
    cp = checkpoint(state / "gateway.db")
    assert cp is not None and cp.job_id == job["id"] and cp.member_name == "Ada Lovelace"
    assert 0 < cp.line < len(original)

    second = Daemon(config(tmp_path, "second", time_scale=0.0, log=second_log))
    try:
        async with kiosk(second.url) as page:
            # Another member is not offered Ada's job.
            async with page.expect_response(lambda r: "/api/jobs/interrupted" in r.url):
                await page.locator("#sim-panel button", has_text="Grace Hopper").click()
            await expect(page.locator("#screen-session")).to_be_visible()
            await expect(page.locator("#resume-offer")).to_be_hidden()
            # Nor can she start another job without being told that Ada's goes.
            await page.locator("#files button", has_text="tower.gcode").click()
            await page.click("#confirm-yes")
            await expect(page.locator("#confirm-title")).to_have_text(
                "Discard the interrupted job?"
            )
            body = page.locator("#confirm-body")
            await expect(body).to_contain_text(f"Job {job['id']} (tower.gcode), run by Ada")
            await expect(body).to_contain_text("clear the bed, then confirm")
            await fits(page)
            await shot(page, "resume-00-discard-asked")
            await page.click("#confirm-no")
            await expect(page.locator("#confirm")).to_be_hidden()
            assert second.status()["job"] is None
            await page.click("#badge-out")
            await expect(page.locator("#screen-locked")).to_be_visible()

            # Ada is, with the layer the job was in and earlier ones to choose from.
            await page.locator("#sim-panel button", has_text="Ada Lovelace").click()
            offer = page.locator("#resume-offer")
            await expect(offer).to_be_visible()
            await expect(offer).to_contain_text("tower.gcode was interrupted at line")
            go = page.locator("#resume-go")
            await expect(go).to_have_text(re.compile(r"Resume from layer (\d+) \(Z=\d+\.\d\d mm\)"))
            label = await go.inner_text()
            layer = int(re.findall(r"layer (\d+)", label)[0])
            assert layer == cp.layer
            options = await page.locator("#resume-layer option").all_inner_texts()
            assert len(options) == layer and options[-1].startswith("Earlier: layer 1 ")
            await fits(page)
            await shot(page, "resume-01-offer")

            # The preamble is shown before anything runs.
            await go.click()
            await expect(page.locator("#resume-confirm")).to_be_visible()
            await fits(page)
            await shot(page, "resume-02-preamble")
            preamble = (await page.locator("#resume-preamble").inner_text()).splitlines()
            assert "G28 X Y" in preamble and "M109 T0 S210" in preamble
            assert not any(p.startswith("G28") and "Z" in p for p in preamble)
            assert second.status()["job"] is None
            await page.click("#resume-run")
            await expect(page.locator("#screen-job")).to_be_visible()

        wait(
            lambda: (second.status().get("job") or {}).get("state") == "completed",
            120,
            "the resumed job to complete",
        )
        jobs = second.get("api/jobs")["jobs"]
        assert jobs[0]["resumed_from"] == job["id"] and jobs[1]["id"] == job["id"]
        assert jobs[1]["state"] == "failed"
    finally:
        second.kill()

    executed = second_log.read_text().splitlines()
    starts = [i for i in range(len(executed)) if executed[i : i + len(preamble)] == preamble]
    assert len(starts) == 1, "the preamble ran once, as shown"
    after = executed[starts[0] + len(preamble) :]
    layer_line = next(
        i for i, text in enumerate(original) if text == f"G1 Z{0.2 * layer:.2f} F600"
    )
    assert moves(after) == moves(original[layer_line + 1 :])


async def test_a_new_job_discards_an_interrupted_one_once_confirmed(tmp_path: Path) -> None:
    """Another member starts a job on a machine whose last job was cut: the kiosk says
    whose job goes, and the new one runs only after "Discard and start"."""
    from playwright.async_api import expect

    layered_job(tmp_path / "tower.gcode")
    layered_job(tmp_path / "coaster.gcode", layers=2, per_layer=5)
    library(tmp_path, "tower.gcode", "coaster.gcode")
    log = tmp_path / "executed.log"
    job = interrupted_job(tmp_path, log, "tower.gcode", 2)

    second = Daemon(config(tmp_path, "second", time_scale=0.0, log=log))
    try:
        async with kiosk(second.url) as page:
            await page.locator("#sim-panel button", has_text="Grace Hopper").click()
            await expect(page.locator("#screen-session")).to_be_visible()
            await page.locator("#files button", has_text="coaster.gcode").click()
            await page.click("#confirm-yes")
            await expect(page.locator("#confirm-title")).to_have_text(
                "Discard the interrupted job?"
            )
            await expect(page.locator("#confirm-yes")).to_have_text("Discard and start")
            assert second.status()["job"] is None
            await page.click("#confirm-yes")
            # Instant motion (time_scale 0): the job screen may come and go at once.
            await expect(page.locator("#screen-session")).to_contain_text(
                "coaster.gcode finished"
            )
        wait(
            lambda: (second.status().get("job") or {}).get("state") == "completed",
            120,
            "the new job to complete",
        )
        jobs = second.get("api/jobs")["jobs"]
        assert jobs[0]["file"] == "coaster.gcode" and jobs[1]["id"] == job["id"]
        assert jobs[1]["state"] == "failed"
    finally:
        second.kill()
