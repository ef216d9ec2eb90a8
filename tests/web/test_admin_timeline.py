"""The admin page's timeline and job history, read as an admin would, in a real headless
Chromium against the real daemon: who did what, in words and in the space's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.web.auth import Scope
from gateway.web.site import SiteConfig

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [pytest.mark.timeout(120)]


async def test_timeline_says_who_did_what_and_filters(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "s", web={"kiosk_addresses": ["192.0.2.1"]})
    config = config.model_copy(update={"site": SiteConfig(timezone="Pacific/Auckland")})
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        assert gw.web is not None and gw.access is not None
        job = tmp_path / "benchy.gcode"
        job.write_bytes(kit.gcode_file(20))
        gw.machine.files.add_path(job)
        secret = kit.new_token(gw, "ops", Scope.ADMIN)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"http://127.0.0.1:{gw.web.port}/admin")
            await page.fill("#token", secret)
            await page.click("#login-form button")
            await expect(page.locator("#live")).to_have_text("live")
            await page.click("nav button[data-tab=timeline]")
            await expect(page.locator("#tl-zone")).to_have_text("times in Pacific/Auckland")

            # At the machine: a refused badge, Ada badges in and starts a job there.
            await gw.commands.call("present_badge", {"uid": kit.BOB})
            await gw.commands.call("present_badge", {"uid": kit.ADA})
            await kit.wait_for(lambda: gw.access.status()["session"] is not None, what="session")
            await gw.commands.call("start_job", {"file": "benchy.gcode"}, origin="kiosk")
            await kit.wait_for(
                lambda: (gw.machine.status()["job"] or {}).get("state") == "completed",
                what="the job to finish",
            )

            events = page.locator("#events")
            await expect(events).to_contain_text("Ada L. started benchy.gcode from the touchscreen")
            await expect(events).to_contain_text("Ada L. badged in (user)")
            await expect(events).to_contain_text("benchy.gcode finished in")
            await expect(events).to_contain_text("Badge refused: Bob Newcomer")
            # Rows carry the space's local time (Auckland here, not the test machine's UTC),
            # not epoch numbers or JSON.
            first_when = await page.locator("#events tr td").first.inner_text()
            async with kit.client(gw) as c:
                page_json = (
                    await c.get("/api/timeline", headers={"Authorization": f"Bearer {secret}"})
                ).json()
            at = page_json["entries"][0]["at"]
            local = datetime.fromtimestamp(at, ZoneInfo("Pacific/Auckland")).strftime("%H:%M:%S")
            assert local in first_when, (local, first_when)
            assert datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S") not in first_when
            text = await events.inner_text()
            assert '"job_id"' not in text and "{" not in text

            await page.select_option("#tl-kind", "problems")
            await expect(events).to_contain_text("Badge refused")
            await expect(events).not_to_contain_text("started benchy.gcode")
            await page.select_option("#tl-kind", "")
            await page.fill("#tl-search", "benchy")
            await expect(events).to_contain_text("finished in")
            await expect(events).not_to_contain_text("badged in")

            # The job history says who ran it, by which door, and how it ended.
            await page.click("nav button[data-tab=jobs]")
            row = page.locator("#jobs tr").first
            await expect(row).to_contain_text("benchy.gcode")
            await expect(row).to_contain_text("Ada Lovelace")
            await expect(row).to_contain_text("touchscreen")
            await expect(row).to_contain_text("finished")

            # Temperatures in words.
            await page.click("nav button[data-tab=status]")
            await expect(page.locator("#machine-facts")).to_contain_text("Nozzle")
            await expect(page.locator("#machine-facts")).to_contain_text("\u00b0C")
        finally:
            await browser.close()
