"""The presence rule at the touchscreen, in a real headless Chromium at 800x480 against
the real daemon (uvicorn on loopback, simulated Marlin, simulated badge reader).

A remote ``operate`` caller cannot start a job while nobody is badged in at the
machine, and is told to badge in first; once a member badges out mid-job, the job
finishes under its rule, anyone at the screen may pause or cancel it, a remote
resume is refused, and the screen says how the job ended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.web.auth import Scope

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"

pytestmark = [pytest.mark.timeout(150)]


async def test_a_remote_start_without_a_session_is_refused(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "state", time_scale=1.0)
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        job = tmp_path / "bracket.gcode"
        job.write_bytes(kit.gcode_file(600))
        gw.machine.files.add_path(job)
        token = kit.new_token(gw, "remote-op", Scope.OPERATE)
        assert gw.web is not None
        base = f"http://127.0.0.1:{gw.web.port}"
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await page.goto(base + "/")
            await expect(page.locator("#screen-locked")).to_be_visible()
            await expect(page.locator("#live-dot.live")).to_be_visible()
            # The remote caller (a token: its address does not matter) from the browser.
            remote = await pw.request.new_context(
                base_url=base, extra_http_headers={"Authorization": f"Bearer {token}"}
            )
            try:
                r = await remote.post("/api/jobs", data={"file": "bracket.gcode"})
                assert r.status == 409
                error = (await r.json())["error"]
                assert error["code"] == "no_session"
                assert "badge in at the machine first" in error["message"]
                # Nothing started: the screen still waits for a badge.
                await expect(page.locator("#screen-locked")).to_be_visible()
                assert gw.machine.job is None

                # With Ada badged in, the same remote start works and the screen follows.
                await page.locator("#sim-panel button", has_text="Ada Lovelace").click()
                await expect(page.locator("#screen-session")).to_be_visible()
                r = await remote.post("/api/jobs", data={"file": "bracket.gcode"})
                assert r.status == 201, await r.text()
                await expect(page.locator("#screen-job")).to_be_visible()

                # Ada badges out: the job goes on and anyone at the screen may stop it.
                await page.click("#job-badge-out")
                await expect(page.locator("#job-note")).to_contain_text("badged out")
                await expect(page.locator("#pause")).to_be_visible()
                await expect(page.locator("#cancel")).to_be_visible()
                await page.click("#pause")
                await expect(page.locator("#job-state")).to_have_text("Paused")
                await expect(page.locator("#resume")).to_be_hidden()
                await expect(page.locator("#job-note")).to_contain_text("Badge in to resume")
                layout = await page.evaluate(
                    "() => [document.documentElement.scrollWidth,"
                    " document.documentElement.scrollHeight]"
                )
                assert layout[0] <= 800 and layout[1] <= 480, layout
                r = await remote.post("/api/jobs/current/resume")
                assert r.status == 409
                assert "badge in at the machine first" in (await r.json())["error"]["message"]
                SHOTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SHOTS / "presence-01-paused-after-badge-out.png"))

                await page.click("#cancel")
                await page.click("#confirm-yes")
                await expect(page.locator("#screen-locked")).to_be_visible()
                await expect(page.locator("#locked-note")).to_contain_text(
                    "bracket.gcode was cancelled."
                )
                await page.screenshot(path=str(SHOTS / "presence-02-how-the-job-ended.png"))
            finally:
                await remote.dispose()
        finally:
            await browser.close()


async def test_a_suspension_arriving_mid_session_is_shown_with_its_reason(
    tmp_path: Path, kit: Any
) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "state")
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        assert gw.web is not None
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await page.goto(f"http://127.0.0.1:{gw.web.port}/")
            await expect(page.locator("#live-dot.live")).to_be_visible()
            await page.locator("#sim-panel button", has_text="Ada Lovelace").click()
            await expect(page.locator("#screen-session")).to_be_visible()
            members = [
                dict(m, suspended="safety briefing overdue") if m["id"] == "m-ada" else m
                for m in kit.DEMO_MEMBERS
            ]
            doc = {
                "version": 1,
                "generated_at": "2030-01-01T00:00:00Z",
                "count": len(members),
                "members": members,
            }
            list_path = tmp_path / "state" / "demo-members.json"
            list_path.write_text(json.dumps(doc))
            await expect(page.locator("#screen-locked")).to_be_visible(timeout=10_000)
            await expect(page.locator("#denial")).to_contain_text("safety briefing overdue")
            await expect(page.locator("#locked-note")).to_contain_text("suspended")
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "presence-03-suspended-mid-session.png"))
        finally:
            await browser.close()
