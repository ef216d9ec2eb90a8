"""The admin page's "Member keys" tab in a real headless Chromium: create a member's
key (shown once), see it listed, revoke it; the members' job record is shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.web.auth import Scope

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"

pytestmark = [pytest.mark.timeout(120)]


async def test_admin_creates_and_revokes_member_keys(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "s", web={"kiosk_addresses": ["192.0.2.1"]})
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        secret = kit.new_token(gw, "ops-admin", Scope.ADMIN)
        assert gw.web is not None
        url = f"http://127.0.0.1:{gw.web.port}"
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(url + "/admin")
            await page.fill("#token", secret)
            await page.click("#login-form button")
            await expect(page.locator("#tabs")).to_be_visible()
            await page.click("nav button[data-tab=members]")
            await expect(page.locator("#tab-members")).to_be_visible()
            await page.fill("#member-key-id", "m-bob")
            await page.fill("#member-key-name", "Bob Newcomer")
            await page.click("#member-key-form button")
            await expect(page.locator("#member-key-secret")).to_contain_text("gwm_")
            await expect(page.locator("#member-keys")).to_contain_text("Bob Newcomer")
            key = (await page.locator("#member-key-secret").inner_text()).split()[-1]
            async with httpx.AsyncClient(base_url=url) as slicer:
                r = await slicer.post(
                    "/api/files/local",
                    headers={"X-Api-Key": key},
                    data={"print": "true"},
                    files={"file": ("bob.gcode", kit.gcode_file(5), "text/plain")},
                )
                assert r.status_code == 201
                await page.click("nav button[data-tab=status]")
                await page.click("nav button[data-tab=members]")
                await expect(page.locator("#member-jobs")).to_contain_text("bob.gcode")
                await expect(page.locator("#member-jobs")).to_contain_text("slicer")
                SHOTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SHOTS / "slicer-07-admin-keys.png"))
                await page.locator("#member-keys button", has_text="Revoke").click()
                await expect(page.locator("#member-keys")).not_to_contain_text("Bob")
                r = await slicer.get("/api/version", headers={"X-Api-Key": key})
                assert r.status_code == 403
        finally:
            await browser.close()
