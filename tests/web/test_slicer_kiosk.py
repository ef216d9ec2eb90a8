"""A member's slicer job on the touchscreen, in real headless Chromium at 800x480
against the real daemon: upload with the member's key and print=true, "held for Ada L."
on the idle screen, another member cannot start it, Ada badges in, sees it first with
its analysis, taps "Bed is clear — start" and the job runs.  Also "My slicer key",
Cura's pairing approved on the screen, and a simulated USB stick.

Screenshots go to ``test-artefacts/screenshots/slicer-*.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.slicer.config import SlicerConfig

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"

pytestmark = [pytest.mark.timeout(180)]

LONG_NAME = "Ada's Halterung für Regal — sehr lange Beschreibung v12 FINAL (0.2 mm PLA).gcode"


def printed_job(moves: int) -> bytes:
    """A Marlin print that extrudes, about 2 s per move at time_scale 1."""
    lines = ["; sliced", "G28", "G90", "M82", "M104 S200", "G92 E0"]
    for i in range(moves):
        lines.append(f"G1 X{40 if i % 2 == 0 else 10} Y{10 + i % 7} Z0.2 E{i * 0.5:.2f} F900")
    lines.append("M104 S0")
    return ("\n".join(lines) + "\n").encode()


async def fits(page: Any) -> None:
    """No scrolling, nothing cut off, every visible button big enough to hit."""
    size = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert size[0] <= 800 and size[1] <= 480, size
    buttons = await page.evaluate(
        """() => [...document.querySelectorAll('button')]
             .filter(b => b.offsetParent !== null && !b.closest('.files'))
             .map(b => { const r = b.getBoundingClientRect();
               return [b.textContent.trim(), r.left, r.top, r.right, r.bottom]; })"""
    )
    for text, left, top, right, bottom in buttons:
        assert bottom - top >= 48 and right - left >= 48, (text, bottom - top, right - left)
        assert left >= 0 and top >= 0, text
        assert right <= 800.5 and bottom <= 480.5, (text, right, bottom)


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"slicer-{name}.png"))


async def badge(page: Any, name: str) -> None:
    from playwright.async_api import expect

    if not await page.locator("#sim-panel").is_visible():
        await page.click("#sim-toggle")
    await page.locator("#sim-panel button", has_text=name).click()
    await expect(page.locator("#hello")).to_contain_text(name)
    if (
        await page.locator("#sim-toggle").is_visible()
        and await page.locator("#sim-panel").is_visible()
    ):
        await page.click("#sim-toggle")


async def test_held_job_from_slicer_to_start(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "state", time_scale=1.0)
    config = config.model_copy(update={"slicer": SlicerConfig(build_volume=(220, 220, 250))})
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        shared = tmp_path / "shared-calibration.gcode"
        shared.write_bytes(kit.gcode_file(10))
        gw.machine.files.add_path(shared)
        made = await gw.commands.call(
            "slicer_key_create", {"member_id": "m-ada", "member_name": "Ada Lovelace"}
        )
        assert gw.web is not None
        url = f"http://127.0.0.1:{gw.web.port}"
        async with httpx.AsyncClient(base_url=url) as slicer:
            r = await slicer.post(
                "/api/files/local",
                headers={"X-Api-Key": made["key"]},
                data={"print": "true", "path": "/"},
                files={"file": (LONG_NAME, printed_job(120), "application/octet-stream")},
            )
            assert r.status_code == 201, r.text
        held_id = r.json()["held"]["id"]

        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await page.goto(url + "/")
            await expect(page.locator("#screen-locked")).to_be_visible()
            idle = page.locator("#held-idle")
            await expect(idle).to_contain_text("held for Ada L.")
            # The whole name, wrapped, not cut in the middle.
            await expect(idle).to_contain_text(LONG_NAME)
            await fits(page)
            await shot(page, "01-idle-held")

            # Another member badges in: no start button for Ada's job, and the API refuses.
            await badge(page, "Max Mender")
            await expect(page.locator("#held-mine")).to_be_hidden()
            status = await page.evaluate(
                f"""async () => (await fetch('/api/slicer/held/{held_id}/start',
                     {{method: 'POST'}})).status"""
            )
            assert status == 403
            assert gw.machine.status()["job"] is None
            await page.click("#badge-out")
            await expect(page.locator("#screen-locked")).to_be_visible()

            # Ada badges in: her job first, with its analysis, and one big start button.
            await badge(page, "Ada Lovelace")
            card = page.locator("#held-mine .held-card")
            await expect(card).to_be_visible()
            await expect(card.locator(".held-title")).to_have_text(LONG_NAME)
            await expect(card.locator(".held-meta")).to_contain_text("about")
            await expect(card.locator(".held-meta")).to_contain_text("m filament")
            # The printed part's size (X 10-40, Y 10-16, one layer at Z 0.2).
            await expect(card.locator(".held-meta")).to_contain_text("30 \u00d7 6.0 \u00d7 0.0 mm")
            await expect(card.locator(".held-meta")).to_contain_text("fits the machine")
            above = await page.evaluate(
                """() => document.querySelector('#held-mine').getBoundingClientRect().bottom
                     <= document.querySelector('#files').getBoundingClientRect().top"""
            )
            assert above
            # Her file is first in the library too, under the name she gave it.
            await expect(page.locator("#files li").first).to_contain_text(LONG_NAME)
            await expect(page.locator("#files li").first).to_have_class("mine")
            await fits(page)
            await shot(page, "02-session-held")

            # My slicer key: text and QR code, once; it works as an OctoPrint key.
            await page.click("#my-key")
            await expect(page.locator("#key-dialog")).to_be_visible()
            key = (await page.locator("#key-value").inner_text()).strip()
            assert key.startswith("gwm_")
            assert await page.locator("#key-qr svg").count() == 1
            await fits(page)
            await shot(page, "03-my-key")
            await page.click("#key-done")
            await expect(page.locator("#key-dialog")).to_be_hidden()
            async with httpx.AsyncClient(base_url=url) as slicer:
                r = await slicer.get("/api/version", headers={"X-Api-Key": key})
                assert r.status_code == 200
                # Cura asks to pair; Ada approves on the screen; the key is hers.
                r = await slicer.post("/plugin/appkeys/request", json={"app": "Cura"})
                poll = r.headers["location"]
                await expect(page.locator("#pairing")).to_contain_text("Cura asks")
                await fits(page)
                await shot(page, "04-pairing")
                await page.locator("#pairing button", has_text="Approve").click()
                await expect(page.locator("#pairing")).to_be_hidden()
                r = await slicer.get(poll)
                assert r.status_code == 200
                r = await slicer.post(
                    "/api/login", headers={"X-Api-Key": r.json()["api_key"]}, json={"passive": True}
                )
                assert r.json()["name"] == "m-ada"

            await page.locator(".held-start").click()
            await expect(page.locator("#screen-job")).to_be_visible()
            await expect(page.locator("#job-state")).to_have_text("Printing")
            job = gw.machine.status()["job"]
            assert job is not None and job["state"] == "running"
            records = await gw.commands.call("slicer_usage")
            assert records["jobs"][0]["released_by"] == "m-ada"
            assert records["jobs"][0]["door"] == "slicer"
            await shot(page, "05-job-running")
            await page.click("#cancel")
            await page.click("#confirm-yes")
            await expect(page.locator("#screen-session")).to_be_visible()
        finally:
            await browser.close()


async def test_usb_stick_file_is_copied_and_held(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "state")
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        assert gw.web is not None
        url = f"http://127.0.0.1:{gw.web.port}"
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await page.goto(url + "/")
            await expect(page.locator("#screen-locked")).to_be_visible()
            await page.locator("#sim-panel button", has_text="Plug in USB").click()
            await badge(page, "Ada Lovelace")
            await expect(page.locator("#usb-open")).to_be_visible()
            await page.click("#usb-open")
            await expect(page.locator("#usb-files")).to_contain_text("demo-job.gcode")
            await fits(page)
            await shot(page, "06-usb")
            await page.locator("#usb-files button", has_text="demo-job.gcode").click()
            await expect(page.locator("#held-mine .held-title")).to_have_text("demo-job.gcode")
            # Pulling the stick out changes nothing in the library.
            await gw.commands.call("usb_simulate", {"action": "unplug", "name": "STICK"})
            await expect(page.locator("#usb-open")).to_be_hidden()
            assert gw.machine.files.get("demo-job.gcode").lines > 0
            owners = (await gw.commands.call("slicer_files"))["owners"]
            assert owners["demo-job.gcode"]["member_id"] == "m-ada"
            assert owners["demo-job.gcode"]["door"] == "usb"
        finally:
            await browser.close()
