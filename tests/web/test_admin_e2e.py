"""The admin pages in a real headless Chromium against the real daemon: sign in with a
token, watch the machine, upload G-code, lock out, export CSV, manage tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.web.auth import Scope

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"

pytestmark = [
    pytest.mark.timeout(120),
]


async def test_admin_pages(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    good = tmp_path / "calibration-cube.gcode"
    good.write_bytes(kit.gcode_file(30))
    bad = tmp_path / "broken.gcode"
    bad.write_bytes(b"G28\nG1 X5 (no end\n")
    # Loopback is not the kiosk here: the admin page must work with its token alone.
    config = kit.make_config(tmp_path / "s", web={"kiosk_addresses": ["192.0.2.1"]})
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        secret = kit.new_token(gw, "ops-admin", Scope.ADMIN)
        assert gw.web is not None
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"http://127.0.0.1:{gw.web.port}/admin")
            # Before signing in there is nothing but the sign-in form.
            await expect(page.locator("#login")).to_be_visible()
            for hidden in ("#tabs", "#who", "#error-box", ".tab"):
                for el in await page.locator(hidden).all():
                    await expect(el).to_be_hidden()
            await page.screenshot(path=str(SHOTS / "29-admin-sign-in.png"))
            await page.fill("#token", "gwt_not-a-token")
            await page.click("#login-form button")
            await expect(page.locator("#login-error")).to_contain_text("not valid")

            await page.fill("#token", secret)
            await page.click("#login-form button")
            await expect(page.locator("#who-text")).to_have_text("Signed in as ops-admin (admin)")
            await expect(page.locator("#live")).to_have_text("live")
            await expect(page.locator("#machine-facts")).to_contain_text("Ready")
            await expect(page.locator("#access-facts")).to_contain_text("Waiting for a badge")
            await page.screenshot(path=str(SHOTS / "30-admin-status.png"))

            await page.click("nav button[data-tab=files]")
            await page.set_input_files("#upload-file", str(bad))
            await page.click("#upload-form button")
            await expect(page.locator("#error")).to_contain_text("line 2")
            await page.set_input_files("#upload-file", str(good))
            await page.click("#upload-form button")
            await expect(page.locator("#upload-status")).to_contain_text("Uploaded")
            await expect(page.locator("#files")).to_contain_text("calibration-cube.gcode")
            await page.screenshot(path=str(SHOTS / "31-admin-files.png"))

            await page.click("nav button[data-tab=access]")
            await expect(page.locator("#list-facts")).to_contain_text("4")
            await page.fill("#lockout-reason", "Bed levelling")
            await page.click("#lockout-form button")
            await expect(page.locator("#lockout-now")).to_contain_text(
                "Locked out by ops-admin: Bed levelling"
            )
            await page.screenshot(path=str(SHOTS / "32-admin-access.png"))
            assert gw.access is not None and gw.access.status()["lockout"] is not None

            await page.click("nav button[data-tab=sessions]")
            async with page.expect_download() as download:
                await page.click("button[data-csv='/api/sessions?format=csv']")
            csv_file = await (await download.value).path()
            assert "member_name" in await asyncio.to_thread(Path(csv_file).read_text)

            await page.click("nav button[data-tab=tokens]")
            await expect(page.locator("#tokens")).to_contain_text("ops-admin")
            # A bad name is explained in words, and the message stays until dismissed.
            await page.fill("#token-name", "bad name!")
            await page.click("#token-form button")
            error = page.locator("#error")
            await expect(error).to_contain_text("a token name is 1-64 letters")
            assert "[A-Za-z" not in await error.inner_text()
            await page.wait_for_timeout(9000)  # longer than any timer of the old page
            await expect(error).to_be_visible()
            await page.click("#error-dismiss")
            await expect(error).to_be_hidden()
            await page.fill("#token-name", "grafana")
            await page.select_option("#token-scope", "read")
            await page.click("#token-form button")
            await expect(page.locator("#token-secret")).to_contain_text("gwt_")
            await expect(page.locator("#tokens")).to_contain_text("grafana")
            await page.screenshot(path=str(SHOTS / "33-admin-tokens.png"))

            await page.click("nav button[data-tab=jobs]")
            await expect(page.locator("#jobs")).to_contain_text("Nothing yet")

            # Signing out leaves only the sign-in form again.
            await page.click("#sign-out")
            await expect(page.locator("#login")).to_be_visible()
            await expect(page.locator("#tabs")).to_be_hidden()
            for el in await page.locator(".tab").all():
                await expect(el).to_be_hidden()
        finally:
            await browser.close()
