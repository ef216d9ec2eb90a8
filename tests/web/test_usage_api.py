"""GET /api/metering/usage and /api/ledger/key: typed answers from the real daemon, and
the admin page showing the ledger's public key (headless Chromium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.ledger import keys
from gateway.metering.config import MeteringConfig
from gateway.web.auth import Scope

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [pytest.mark.timeout(120)]


def metered(kit: Any, state: Path, **kw: Any) -> Any:
    config = kit.make_config(state, **kw)
    return config.model_copy(
        update={"metering": MeteringConfig(enabled=True, meter="simulated", sample_interval=0.2)}
    )


async def test_usage_and_key_routes(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(metered(kit, tmp_path / "s")) as gw:
        token = kit.new_token(gw, "reader", Scope.READ)
        async with kit.client(gw) as http:
            r = await http.get("/api/metering/usage", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["enabled"] and body["meter"] == "simulated" and body["session"] is None
            r = await http.get("/api/ledger/key", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            key = r.json()
            on_disk = keys.load_or_create(tmp_path / "s" / "ledger-ed25519.pem")
            assert key["public_key"] == keys.public_text(on_disk.public_key())
            assert key["records"] == 0
            r = await http.get("/api/ledger/key")
            assert r.status_code == 401


async def test_without_a_meter_the_route_says_so(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "s")) as gw:
        token = kit.new_token(gw, "reader", Scope.READ)
        async with kit.client(gw) as http:
            r = await http.get("/api/metering/usage", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 409
            assert r.json()["error"]["code"] == "unknown_command"


async def test_admin_page_shows_the_public_key(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = metered(kit, tmp_path / "s", web={"kiosk_addresses": ["192.0.2.1"]})
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        secret = kit.new_token(gw, "ops-admin", Scope.ADMIN)
        assert gw.web is not None and gw.ledger is not None
        public = gw.ledger.key_document()["public_key"]
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"http://127.0.0.1:{gw.web.port}/admin")
            await page.fill("#token", secret)
            await page.click("#login-form button")
            await expect(page.locator("#ledger-box")).to_be_visible(timeout=10_000)
            await expect(page.locator("#ledger-facts")).to_contain_text(public)
        finally:
            await browser.close()
