"""The touchscreen in a real headless Chromium at 800x480 against the real daemon
(uvicorn on loopback, simulated Marlin moving in real time, simulated badge reader).

Screenshots of every screen go to ``test-artefacts/screenshots/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.daemon import Gateway

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"

pytestmark = [
    pytest.mark.timeout(150),
]


class Screen:
    """The kiosk page plus the checks a member would notice."""

    def __init__(self, page: Any, width: int, height: int) -> None:
        self.page = page
        self.width = width
        self.height = height

    async def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    async def fits(self) -> None:
        """No scrolling, nothing cut off, every visible button big enough to hit."""
        size = await self.page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        assert size[0] <= self.width and size[1] <= self.height, size
        buttons = await self.page.evaluate(
            """() => [...document.querySelectorAll('button')]
                 .filter(b => b.offsetParent !== null && !b.closest('.files'))
                 .map(b => { const r = b.getBoundingClientRect();
                   return [b.textContent.trim(), r.left, r.top, r.right, r.bottom]; })"""
        )
        for text, left, top, right, bottom in buttons:
            assert bottom - top >= 48 and right - left >= 48, (text, bottom - top, right - left)
            assert left >= 0 and top >= 0, text
            assert right <= self.width + 0.5 and bottom <= self.height + 0.5, (text, right, bottom)
        overflowing = await self.page.evaluate(
            """() => [...document.querySelectorAll('.screen:not([hidden]) *')]
                 .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1
                   && getComputedStyle(e).overflowX === 'visible'
                   && !['ellipsis'].includes(getComputedStyle(e).textOverflow))
                 .map(e => e.id || e.className || e.tagName)"""
        )
        assert not overflowing, overflowing

    async def percent(self) -> int:
        text = await self.page.locator("#progress-pct").inner_text()
        match = re.match(r"(\d+)", text)
        assert match, text
        return int(match.group(1))


async def badge(screen: Screen, name: str) -> None:
    await screen.page.locator("#sim-panel button", has_text=name).click()


async def test_kiosk_flow_at_800x480(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "state", time_scale=1.0)
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        job = tmp_path / "bracket-v3.gcode"
        job.write_bytes(kit.gcode_file(240))
        gw.machine.files.add_path(job)
        assert gw.web is not None
        url = f"http://127.0.0.1:{gw.web.port}/"
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            screen = Screen(page, 800, 480)
            await page.goto(url)
            await expect(page.locator("#screen-locked")).to_be_visible()
            await expect(page.locator("#live-dot.live")).to_be_visible()
            await expect(page.locator("#machine-state")).to_have_text("Ready")
            await screen.fits()
            await screen.shot("01-locked")

            # Refused badges say why.
            await badge(screen, "Bob Newcomer")
            await expect(page.locator("#denial")).to_contain_text("not inducted")
            await expect(page.locator("#screen-locked")).to_be_visible()
            await screen.fits()
            await screen.shot("02-denied-not-inducted")
            await page.fill("#sim-uid", kit.UNKNOWN)
            await page.click("#sim-present")
            await expect(page.locator("#denial")).to_contain_text("Badge not recognised")
            await screen.shot("03-denied-unknown")
            await badge(screen, "Eve Lapsed")
            await expect(page.locator("#denial")).to_contain_text("membership ended")

            # Badge in: the member's name and the files they may run.
            await badge(screen, "Ada Lovelace")
            await expect(page.locator("#screen-session")).to_be_visible()
            await expect(page.locator("#hello")).to_have_text("Hello, Ada Lovelace")
            await expect(page.locator("#files button", has_text="bracket-v3.gcode")).to_be_enabled()
            await screen.fits()
            await screen.shot("04-session")

            # Start, with a confirmation.
            await page.locator("#files button", has_text="bracket-v3.gcode").click()
            await expect(page.locator("#confirm")).to_be_visible()
            await expect(page.locator("#confirm-title")).to_have_text("Start bracket-v3.gcode?")
            await screen.fits()
            await screen.shot("05-confirm-start")
            await page.click("#confirm-yes")
            await expect(page.locator("#screen-job")).to_be_visible()
            await expect(page.locator("#job-file")).to_have_text("bracket-v3.gcode")
            await expect(page.locator("#job-state")).to_have_text("Printing")

            # Progress moves, with an ETA and temperatures.
            await expect(page.locator("#progress-pct")).not_to_have_text("0 %", timeout=15_000)
            first = await screen.percent()
            await expect(page.locator("#job-eta")).not_to_have_text("\u2013")
            await expect(page.locator("#readings")).to_contain_text("Hotend")
            await page.wait_for_function(
                f"() => parseInt(document.querySelector('#progress-pct').textContent) > {first}",
                timeout=15_000,
            )
            await screen.fits()
            await screen.shot("06-job-running")

            await page.click("#pause")
            await expect(page.locator("#job-state")).to_have_text("Paused")
            await expect(page.locator("#resume")).to_be_visible()
            # Lines already sent to Marlin (its RX buffer and command queue, ~16 here) are
            # still carried out, for several seconds; then progress stands still.
            paused_at, before = await screen.percent(), -1
            for _ in range(15):
                if paused_at == before:
                    break
                await page.wait_for_timeout(1000)
                before, paused_at = paused_at, await screen.percent()
            assert paused_at == before, "progress kept moving while paused"
            await screen.fits()
            await screen.shot("07-job-paused")

            await page.click("#resume")
            await expect(page.locator("#job-state")).to_have_text("Printing")
            await page.wait_for_function(
                f"() => parseInt(document.querySelector('#progress-pct').textContent) > "
                f"{paused_at + 1}",
                timeout=15_000,
            )

            await page.click("#cancel")
            await expect(page.locator("#confirm-title")).to_have_text("Cancel bracket-v3.gcode?")
            await screen.shot("08-confirm-cancel")
            await page.click("#confirm-yes")
            await expect(page.locator("#screen-session")).to_be_visible()
            await expect(page.locator("#session-banner")).to_contain_text("cancelled")
            await expect(page.locator("#machine-state")).to_contain_text("Ready")
            await screen.fits()
            await screen.shot("09-after-cancel")

            # Someone else's badge while the machine is in use.
            await page.click("#sim-toggle")
            await expect(page.locator("#sim-panel")).to_be_visible()
            await screen.shot("10-sim-reader-open")
            await badge(screen, "Max Mender")
            await expect(page.locator("#denial")).to_contain_text("in use by Ada Lovelace")
            await page.click("#sim-toggle")

            await page.click("#badge-out")
            await expect(page.locator("#screen-locked")).to_be_visible()
            await expect(page.locator("#locked-note")).to_be_visible()
            await screen.fits()
            await screen.shot("11-badged-out")

            # A maintainer's lockout shows its reason.
            await gw.commands.call("lockout", {"reason": "Nozzle being replaced", "by": "Max"})
            await expect(page.locator("#screen-lockout")).to_be_visible()
            await expect(page.locator("#lockout-reason")).to_have_text("Nozzle being replaced")
            await expect(page.locator("#lockout-by")).to_contain_text("Max")
            await screen.fits()
            await screen.shot("12-lockout")
            await badge(screen, "Ada Lovelace")
            await expect(page.locator("#denial")).to_contain_text("Machine locked out")
            await screen.fits()
            await screen.shot("12-lockout-denied")
            await gw.commands.call("clear_lockout", {"by": "m-max"})
            await expect(page.locator("#screen-locked")).to_be_visible()

            # Badging out during a job: the job goes on; anyone may still pause or cancel it.
            await badge(screen, "Ada Lovelace")
            await page.locator("#files button", has_text="bracket-v3.gcode").click()
            await page.click("#confirm-yes")
            await expect(page.locator("#screen-job")).to_be_visible()
            await page.click("#job-badge-out")
            await expect(page.locator("#job-note")).to_contain_text("badged out")
            await expect(page.locator("#pause")).to_be_visible()
            await expect(page.locator("#cancel")).to_be_visible()
            await expect(page.locator("#job-badge-out")).to_be_hidden()
            await screen.fits()
            await screen.shot("13-job-after-badge-out")

            # The emergency stop is always there and always works.
            await page.click("#estop")
            await expect(page.locator("#machine-state")).to_have_text("EMERGENCY STOP")
            await expect(page.locator("#screen-locked")).to_be_visible()
            await screen.shot("14-estop")

            # Refusal after refusal: the reader stops judging badges for a while.
            for _ in range(3):
                await page.locator("#sim-panel button", has_text="Unknown badge").click()
                await page.wait_for_timeout(300)
                if "Too many attempts" in await page.locator("#denial-text").inner_text():
                    break
            await expect(page.locator("#denial")).to_contain_text("Too many attempts")
            await screen.shot("15-too-many-attempts")
            # Marlin answers M112 with "Printer halted", which the machine reports as an error.
            assert gw.machine.status()["state"] in ("estop", "error")

            await wide_screen(browser, url, gw)
        finally:
            await browser.close()


async def wide_screen(browser: Any, url: str, gw: Gateway) -> None:
    """The 1024x600 panel: the same screens fit without scrolling."""
    from playwright.async_api import expect

    page = await browser.new_page(viewport={"width": 1024, "height": 600})
    screen = Screen(page, 1024, 600)
    await page.goto(url)
    await expect(page.locator("#screen-locked")).to_be_visible()
    await screen.fits()
    await screen.shot("20-locked-1024x600")
    await page.close()


async def test_remote_visitors_get_no_member_data(tmp_path: Path, kit: Any) -> None:
    """The kiosk page from another address shows nothing about the machine's members."""
    async with kit.running_gateway(kit.make_config(tmp_path / "s")) as gw:
        async with kit.client(gw) as c:
            html = (await c.get("/")).text
        assert '"kiosk": false' in html and "Ada" not in html and "sim-panel" not in html
        async with kit.client(gw, kit.KIOSK) as c:
            html = (await c.get("/")).text
        assert '"kiosk": true' in html and "Ada Lovelace" in html
