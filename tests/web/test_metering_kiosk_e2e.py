"""The touchscreen shows the running cost while a member works and the total when they
badge out: real headless Chromium, the real daemon, the PZEM twin on a pty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.metering.config import MeteringConfig

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"

pytestmark = [pytest.mark.timeout(150)]

METERING = MeteringConfig(
    enabled=True,
    meter="simulated",
    sample_interval=0.5,
    prices={"per_busy_minute": "0.50", "per_idle_minute": "0.10", "per_kwh": "0.40"},  # type: ignore[arg-type]
)


async def test_running_cost_while_working_and_total_at_the_end(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "state", time_scale=1.0)
    config = config.model_copy(update={"metering": METERING})
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        job = tmp_path / "plate.gcode"
        job.write_bytes(kit.gcode_file(200))
        gw.machine.files.add_path(job)
        assert gw.web is not None and gw.metering is not None
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await page.goto(f"http://127.0.0.1:{gw.web.port}/")
            await expect(page.locator("#screen-locked")).to_be_visible()
            await expect(page.locator("#usage-total")).to_be_hidden()

            await page.locator("#sim-panel button", has_text="Ada Lovelace").click()
            await expect(page.locator("#screen-session")).to_be_visible()
            so_far = page.locator("#usage-session")
            await expect(so_far).to_be_visible(timeout=10_000)
            await expect(so_far).to_contain_text("So far:")
            await expect(so_far).to_contain_text("kWh")
            await expect(so_far).to_contain_text("\u20ac")

            await page.locator("#files button", has_text="plate.gcode").click()
            await page.click("#confirm-yes")
            await expect(page.locator("#screen-job")).to_be_visible()
            running = page.locator("#usage-job")
            await expect(running).to_be_visible(timeout=10_000)
            await expect(running).to_contain_text("So far:")
            # The cost grows while the machine works (busy minutes at 0.50 a minute).
            await page.wait_for_function(
                "() => /\u20ac0\\.0[2-9]|\u20ac0\\.[1-9]/.test("
                "document.querySelector('#usage-job').textContent)",
                timeout=20_000,
            )
            size = await page.evaluate("() => document.documentElement.scrollHeight")
            assert size <= 480, size
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "metering-01-job-so-far.png"))

            await page.click("#cancel")
            await page.click("#confirm-yes")
            await expect(page.locator("#screen-session")).to_be_visible()
            await page.click("#badge-out")
            await expect(page.locator("#screen-locked")).to_be_visible()
            total = page.locator("#usage-total")
            await expect(total).to_be_visible(timeout=10_000)
            await expect(total).to_contain_text("Your session:")
            last = gw.metering.usage()["last_session"]
            assert last is not None and float(last["cost"]) > 0
            await expect(total).to_contain_text(last["text"])
            await page.screenshot(path=str(SHOTS / "metering-02-session-total.png"))
        finally:
            await browser.close()
