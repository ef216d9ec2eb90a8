"""The access policy at the touchscreen, in a real headless Chromium at 800x480 against the
real daemon (uvicorn on loopback, simulated reader): an expiry warning at badge-in, a
supervised member admitted only while a supervisor is present, the supervisor-left
countdown, a booking shown on the badge screen and enforced, every refusal naming its rule.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.access.policy_config import PolicyConfig
from gateway.web.auth import Scope

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"
MACHINE = "test-printer"

pytestmark = [pytest.mark.timeout(150)]


def policy_list(kit: Any) -> list[dict[str, Any]]:
    now = datetime.now(UTC)

    def ago(days: int) -> str:
        return (now - timedelta(days=days)).isoformat(timespec="seconds")

    return [
        {
            "id": "m-ada",
            "name": "Ada Lovelace",
            "badges": [kit.ADA],
            "machines": {MACHINE: {"inducted_at": ago(200), "last_used": ago(80)}},
        },
        {"id": "m-max", "name": "Max Mender", "badges": [kit.MAX], "machines": {"*": "maintainer"}},
        {
            "id": "m-bob",
            "name": "Bob Newcomer",
            "badges": [kit.BOB],
            "machines": {MACHINE: {"level": "supervised", "inducted_at": ago(3)}},
        },
        {
            "id": "m-eve",
            "name": "Eve Booker",
            "badges": [kit.EVE],
            "machines": {MACHINE: {"inducted_at": ago(3)}},
        },
    ]


async def test_supervision_expiry_and_bookings_at_the_kiosk(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    base_config = kit.make_config(tmp_path / "state")
    assert base_config.access.source.type == "file"
    doc = {
        "version": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": 4,
        "members": policy_list(kit),
    }
    base_config.access.source.path.write_text(json.dumps(doc))
    policy = PolicyConfig(
        expiry={"rule": "disuse", "days": 90, "warn_days": 14},
        supervision_grace=3.0,
    )
    config = base_config.model_copy(
        update={"access": base_config.access.model_copy(update={"policy": policy})}
    )
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        assert gw.web is not None
        base = f"http://127.0.0.1:{gw.web.port}"
        admin = kit.new_token(gw, "desk", Scope.ADMIN)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await page.goto(base + "/")
            await expect(page.locator("#screen-locked")).to_be_visible()
            await expect(page.locator("#live-dot.live")).to_be_visible()

            async def badge(uid: str) -> None:
                r = await page.request.post(base + "/api/sim/badge", data={"uid": uid})
                assert r.ok, await r.text()

            # Bob's induction is supervised: alone he is refused, and told why.
            await badge(kit.BOB)
            await expect(page.locator("#denial")).to_contain_text("needs a supervisor")
            await page.click("#denial")

            # Ada badges in: her induction lapses soon unless she uses it.
            await badge(kit.ADA)
            await expect(page.locator("#screen-session")).to_be_visible()
            await expect(page.locator("#policy-note")).to_contain_text(
                "lapses in 9 days unless you use it"
            )
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "policy-01-expiry-warning.png"))

            # Bob badges while Ada is at the machine: she hands it over and supervises.
            await badge(kit.BOB)
            await expect(page.locator("#hello")).to_contain_text("Bob")
            await expect(page.locator("#policy-note")).to_contain_text(
                "Supervised by Ada Lovelace"
            )
            await page.screenshot(path=str(SHOTS / "policy-02-supervised.png"))

            # Ada badges off: Bob is warned, and the session ends after the grace.
            await badge(kit.ADA)
            await expect(page.locator("#policy-note")).to_contain_text("Ada Lovelace has left")
            await expect(page.locator("#policy-note")).to_contain_text("ends in")
            await page.screenshot(path=str(SHOTS / "policy-03-supervisor-left.png"))
            await fits(page)
            await expect(page.locator("#screen-locked")).to_be_visible(timeout=15_000)
            await expect(page.locator("#locked-note")).to_contain_text("no supervisor was present")
            assert not gw.access.status()["relay_on"]  # type: ignore[union-attr]

            # With no supervisor present any more, Bob is refused again.
            await badge(kit.BOB)
            await expect(page.locator("#denial")).to_contain_text("needs a supervisor")
            await page.click("#denial")

            # A trainer (here the maintainer) picks the level to grant; Bob's next badge
            # promotes him to independent and hands him the machine.
            await badge(kit.MAX)
            levels = page.locator("#grant-levels")
            await expect(levels).to_be_visible()
            await expect(levels.locator("button")).to_have_count(3)
            for box in [await b.bounding_box() for b in await levels.locator("button").all()]:
                assert box is not None and box["height"] >= 48 and box["width"] >= 48
            await levels.locator("button", has_text="independent").click()
            await expect(levels.locator("button.chosen")).to_have_text("independent")
            await page.screenshot(path=str(SHOTS / "policy-04-grant-level.png"))
            await fits(page)
            await badge(kit.BOB)
            await expect(page.locator("#hello")).to_contain_text("Bob")
            await expect(page.locator("#policy-note")).to_be_hidden()  # independent now
            await badge(kit.BOB)
            await expect(page.locator("#screen-locked")).to_be_visible(timeout=15_000)

            # Ada is at the machine when the desk books it for Eve from now.
            await badge(kit.ADA)
            await expect(page.locator("#hello")).to_contain_text("Ada")
            start = datetime.now(UTC) - timedelta(minutes=1)
            remote = await pw.request.new_context(
                base_url=base, extra_http_headers={"Authorization": f"Bearer {admin}"}
            )
            try:
                r = await remote.post(
                    "/api/bookings",
                    data={
                        "member_id": "m-eve",
                        "start": start.isoformat(),
                        "end": (start + timedelta(hours=2)).isoformat(),
                    },
                )
                assert r.status == 200, await r.text()
                end_local = (start + timedelta(hours=2)).astimezone().strftime("%H:%M")
                # Ada is told; Eve's badge then takes the machine over.
                await expect(page.locator("#policy-note")).to_contain_text(
                    "Eve Booker's booking has started"
                )
                await fits(page)
                await page.screenshot(path=str(SHOTS / "policy-05a-booking-started.png"))
                await badge(kit.EVE)
                await expect(page.locator("#hello")).to_contain_text("Eve")
                await expect(page.locator("#policy-note")).to_be_hidden()
                await badge(kit.EVE)  # and out again: shown and enforced on the badge screen
                await expect(page.locator("#screen-locked")).to_be_visible(timeout=15_000)
                await expect(page.locator("#next-booking")).to_have_text(
                    f"Booked for Eve Booker until {end_local}."
                )
                await page.screenshot(path=str(SHOTS / "policy-05-booked.png"))
                await badge(kit.ADA)
                await expect(page.locator("#denial")).to_contain_text(
                    f"Booked for Eve Booker until {end_local}"
                )
                await page.click("#denial")
                await badge(kit.EVE)
                await expect(page.locator("#hello")).to_contain_text("Eve")
                # Every refusal was recorded with the rule that made it.
                r = await remote.get("/api/bookings")
                assert [b["member_id"] for b in (await r.json())["bookings"]] == ["m-eve"]
            finally:
                await remote.dispose()
            reasons = [row["reason"] for row in await _denials(gw)]
            assert reasons == ["booked", "needs_supervision", "needs_supervision"]
        finally:
            await browser.close()


async def fits(page: Any) -> None:
    """The 800x480 screen needs no scrolling with the policy's notes shown."""
    size = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert size[0] <= 800 and size[1] <= 480, size


async def _denials(gw: Any) -> list[dict[str, Any]]:
    import asyncio

    store = gw.access._store
    assert store is not None
    rows: list[dict[str, Any]] = await asyncio.to_thread(store.denials, 10)
    return rows


async def test_admins_see_who_is_about_to_lapse_and_manage_bookings(
    tmp_path: Path, kit: Any
) -> None:
    from playwright.async_api import async_playwright, expect

    base_config = kit.make_config(tmp_path / "s", web={"kiosk_addresses": ["192.0.2.1"]})
    assert base_config.access.source.type == "file"
    doc = {
        "version": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": 4,
        "members": policy_list(kit),
    }
    base_config.access.source.path.write_text(json.dumps(doc))
    policy = PolicyConfig(expiry={"rule": "disuse", "days": 90, "warn_days": 14})
    config = base_config.model_copy(
        update={"access": base_config.access.model_copy(update={"policy": policy})}
    )
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        secret = kit.new_token(gw, "desk-admin", Scope.ADMIN)
        assert gw.web is not None
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"http://127.0.0.1:{gw.web.port}/admin")
            await page.fill("#token", secret)
            await page.click("#login-form button")
            await expect(page.locator("#who-text")).to_contain_text("desk-admin")
            await page.click("nav button[data-tab=access]")
            await expect(page.locator("#lapsing")).to_contain_text("Ada Lovelace (m-ada)")
            await expect(page.locator("#lapsing")).to_contain_text("9")
            await expect(page.locator("#lapsing-rule")).to_contain_text("disuse")

            await page.fill("#booking-member", "m-eve")
            await page.fill("#booking-start", "2030-05-01T13:00")
            await page.fill("#booking-end", "2030-05-01T15:00")
            await page.click("#booking-form button")
            await expect(page.locator("#bookings")).to_contain_text("Eve Booker (m-eve)")
            # An overlapping booking is refused with the one it overlaps.
            await page.fill("#booking-member", "m-ada")
            await page.fill("#booking-start", "2030-05-01T14:00")
            await page.fill("#booking-end", "2030-05-01T16:00")
            await page.click("#booking-form button")
            await expect(page.locator("#booking-error")).to_contain_text("overlaps")
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "policy-06-admin.png"), full_page=True)
            await page.locator("#bookings button", has_text="Cancel").click()
            await expect(page.locator("#bookings")).not_to_contain_text("Eve Booker")
        finally:
            await browser.close()
