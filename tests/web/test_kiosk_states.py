"""The touchscreen's honest states, in a real headless Chromium against the real daemon:
the gateway going away (and coming back), and a trainer's induction confirmed on screen.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [pytest.mark.timeout(150)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def present(page: Any, name: str) -> None:
    await page.locator("#sim-panel button", has_text=name).click()


async def test_kiosk_says_offline_and_disabled_when_the_gateway_stops(
    tmp_path: Path, kit: Any
) -> None:
    from playwright.async_api import async_playwright, expect

    # A fixed port, so the page can find the gateway again when it is restarted.
    config = kit.make_config(tmp_path / "state", web={"port": free_port()})
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            async with kit.running_gateway(config) as gw:
                assert gw.web is not None
                await page.goto(f"http://127.0.0.1:{gw.web.port}/")
                await expect(page.locator("#live-dot.live")).to_be_visible()
                await present(page, "Ada Lovelace")
                await expect(page.locator("#screen-session")).to_be_visible()
                await kit.wait_for(lambda: gw.access.status()["relay_on"], what="relay on")

            # The daemon is gone: no "Ready", no invitation to badge in.
            offline = page.locator("#screen-offline")
            await expect(offline).to_be_visible(timeout=20_000)
            await expect(offline).to_contain_text("Gateway offline \u2014 the machine is disabled")
            await expect(page.locator("#machine-state")).to_have_text("Gateway offline")
            await expect(page.locator("#offline-facts")).to_contain_text(
                "Machine power was last reported"
            )
            for hidden in ("#screen-locked", "#screen-session", "#sim-panel"):
                await expect(page.locator(hidden)).to_be_hidden()
            # The STOP button stays, and says where to stop the machine instead.
            await page.click("#estop")
            await expect(page.locator("#toast")).to_contain_text("stop switch on the machine")
            size = await page.evaluate(
                "() => [document.documentElement.scrollWidth,"
                " document.documentElement.scrollHeight]"
            )
            assert size[0] <= 800 and size[1] <= 480, size

            # Back again: the screen reconnects by itself and shows the real state.
            async with kit.running_gateway(config):
                await expect(page.locator("#screen-locked")).to_be_visible(timeout=20_000)
                await expect(page.locator("#machine-state")).to_have_text("Ready")
                await expect(offline).to_be_hidden()
        finally:
            await browser.close()


async def test_trainer_induction_is_confirmed_on_screen(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "state")
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        assert gw.web is not None
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await page.goto(f"http://127.0.0.1:{gw.web.port}/")
            await expect(page.locator("#screen-locked")).to_be_visible()
            # Max may train (a maintainer); Bob is not inducted yet.
            await present(page, "Max Mender")
            await expect(page.locator("#hello")).to_have_text("Hello, Max Mender")
            await expect(page.locator("#induction-banner")).to_be_hidden()
            await page.click("#sim-toggle")
            await present(page, "Bob Newcomer")
            banner = page.locator("#induction-banner")
            await expect(banner).to_be_visible()
            await expect(banner).to_contain_text("Bob Newcomer is now inducted on this printer")
            await expect(banner).to_contain_text("Recorded by Max Mender")
            await expect(page.locator("#hello")).to_have_text("Hello, Bob Newcomer")
            await page.click("#sim-toggle")
            box = await page.locator("#induction-ok").bounding_box()
            assert box is not None and box["height"] >= 48 and box["width"] >= 48, box
            await page.click("#induction-ok")
            await expect(banner).to_be_hidden()
        finally:
            await browser.close()


async def test_kiosk_says_offline_when_the_gateway_hangs(
    tmp_path: Path, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway that accepts the connection but sends nothing (hung) is offline too."""
    from playwright.async_api import async_playwright, expect

    from gateway.web import sse

    monkeypatch.setattr(sse, "HEARTBEAT", 1.0)  # a ping a second; silent for 7 s: hung
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        assert gw.web is not None
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = await browser.new_page(viewport={"width": 800, "height": 480})
                held: list[Any] = []

                async def hold(route: Any) -> None:
                    held.append(route)  # never answered: the stream stays silent

                await page.route("**/api/events", hold)
                await page.goto(f"http://127.0.0.1:{gw.web.port}/")
                await expect(page.locator("#screen-locked")).to_be_visible()
                await expect(page.locator("#screen-offline")).to_be_visible(timeout=30_000)
                await expect(page.locator("#machine-state")).to_have_text("Gateway offline")

                assert held  # the stream was asked for, and got nothing
                # The gateway answers again: the screen's next attempt gets through.
                await page.unroute("**/api/events")
                await expect(page.locator("#screen-locked")).to_be_visible(timeout=30_000)
                await expect(page.locator("#live-dot.live")).to_be_visible()
            finally:
                await browser.close()
