"""The camera in the pages: the kiosk's live view at 800x480 and the admin's Camera tab,
in a real headless Chromium against the real daemon with the synthetic camera; and who
may read the camera's pictures.

Screenshots go to ``test-artefacts/screenshots/`` (40-...).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.daemon import Gateway
from gateway.web.auth import Scope

CHROMIUM = "/usr/bin/chromium"
# gateway.test is loopback under another name: not the kiosk, so the admin page needs its token.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--host-resolver-rules=MAP gateway.test 127.0.0.1",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"
CAMERA = {
    "enabled": True,
    "backend": "synthetic",
    "fps": 5,
    "width": 320,
    "height": 240,
    "timelapse": {"mode": "interval", "interval_s": 0.2},
}
#: The buttons a member must reach without scrolling, on whichever screen shows them.
MAIN_ACTIONS = ["#estop", "#badge-out", "#files button", "#pause", "#resume", "#cancel",
                "#job-badge-out"]  # fmt: skip

pytestmark = pytest.mark.timeout(90)


def camera(gw: Gateway) -> Any:
    assert gw.camera is not None
    return gw.camera


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


async def fits(page: Any, width: int = 800, height: int = 480) -> None:
    """No scrolling, and every visible main action wholly on the screen."""
    size = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert size[0] <= width and size[1] <= height, size
    boxes = await page.evaluate(
        """(sels) => sels.flatMap(s => [...document.querySelectorAll(s)])
             .filter(b => b.offsetParent !== null)
             .map(b => { const r = b.getBoundingClientRect();
               return [b.id || b.textContent.trim(), r.left, r.top, r.right, r.bottom]; })""",
        MAIN_ACTIONS,
    )
    assert boxes, "no main action visible"
    for name, left, top, right, bottom in boxes:
        assert bottom - top >= 48, (name, bottom - top)
        assert left >= 0 and top >= 0, name
        assert right <= width + 0.5 and bottom <= height + 0.5, (name, right, bottom)


async def live_view_loaded(page: Any, figure: str) -> None:
    await page.wait_for_function(
        f"() => {{ const i = document.querySelector('#{figure} img');"
        " return i.offsetParent !== null && i.complete && i.naturalWidth > 0; }",
        timeout=10_000,
    )


async def streaming(page: Any) -> list[str]:
    """The ids of the live views that have a stream open."""
    ids: list[str] = await page.evaluate(
        "() => [...document.querySelectorAll('.live-img')]"
        ".filter(i => i.getAttribute('src')).map(i => i.parentNode.id)"
    )
    return ids


async def wait_viewers(gw: Gateway, count: int) -> None:
    deadline = time.monotonic() + 10
    while camera(gw).fanout.viewers != count:
        assert time.monotonic() < deadline, f"{camera(gw).fanout.viewers} viewers, not {count}"
        await asyncio.sleep(0.05)


async def test_live_view_on_the_kiosk_and_snapshots_in_admin(tmp_path: Path, kit: Any) -> None:
    from playwright.async_api import async_playwright, expect

    config = kit.make_config(tmp_path / "state", time_scale=1.0, camera=CAMERA)
    async with kit.running_gateway(config) as gw, async_playwright() as pw:
        job = tmp_path / "bracket-v3.gcode"
        job.write_bytes(kit.gcode_file(240))
        gw.machine.files.add_path(job)
        assert gw.web is not None
        port = gw.web.port
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await page.goto(f"http://127.0.0.1:{port}/")
            await expect(page.locator("#screen-locked")).to_be_visible()
            await expect(page.locator("#live-dot.live")).to_be_visible()
            assert await streaming(page) == []
            assert camera(gw).fanout.viewers == 0

            # In session: the live view beside the files, the only stream open.
            await page.locator("#sim-panel button", has_text="Ada Lovelace").click()
            await expect(page.locator("#screen-session")).to_be_visible()
            await live_view_loaded(page, "cam-session")
            await expect(page.locator("#files button", has_text="bracket-v3.gcode")).to_be_enabled()
            assert await streaming(page) == ["cam-session"]
            await fits(page)
            await shot(page, "40-camera-session")

            # A job: the live view beside its progress, the buttons below.
            await page.locator("#files button", has_text="bracket-v3.gcode").click()
            await page.click("#confirm-yes")
            await expect(page.locator("#screen-job")).to_be_visible()
            await expect(page.locator("#progress-pct")).not_to_have_text("0 %", timeout=15_000)
            await expect(page.locator("#readings")).to_contain_text("Nozzle")
            await live_view_loaded(page, "cam-job")
            assert await streaming(page) == ["cam-job"]
            await wait_viewers(gw, 1)
            await fits(page)
            # The figures beside the live view are read whole, not cut off ("1 min 0...").
            cut = await page.evaluate(
                """() => ['59 min 59 s', '11 h 05 min'].filter(t => {
                     const el = document.querySelector('#job-eta'), old = el.textContent;
                     el.textContent = t;
                     const cut = el.scrollWidth > el.clientWidth;
                     el.textContent = old;
                     return cut; })"""
            )
            assert cut == [], cut
            await shot(page, "41-camera-job")

            await page.click("#pause")
            await expect(page.locator("#resume")).to_be_visible()
            await fits(page)
            await shot(page, "42-camera-job-paused")

            await page.click("#cancel")
            await page.click("#confirm-yes")
            await expect(page.locator("#session-banner")).to_contain_text("cancelled")

            # Off screen, no stream: the Pi stops sending pictures nobody sees.
            await page.click("#badge-out")
            await expect(page.locator("#screen-locked")).to_be_visible()
            assert await streaming(page) == []
            await wait_viewers(gw, 0)
            await page.close()

            # The cancelled job's timelapse, made into a video.
            deadline = time.monotonic() + 20
            while not any(t["video_url"] for t in await camera(gw).timelapse_list()):
                assert time.monotonic() < deadline, await camera(gw).timelapse_list()
                await asyncio.sleep(0.2)

            # The admin's Camera tab, with a read token, from a name that is not the kiosk.
            secret = kit.new_token(gw, "viewer", Scope.READ)
            admin = await browser.new_page(viewport={"width": 1280, "height": 800})
            await admin.goto(f"http://gateway.test:{port}/admin")
            await admin.fill("#token", secret)
            await admin.click("#login-form button")
            await expect(admin.locator("#who-text")).to_contain_text("viewer (read)")
            await admin.click("nav button[data-tab=camera]")
            img = admin.locator("#cam-snapshot")
            await expect(img).to_have_attribute("src", _blob())
            await admin.wait_for_function(
                "() => document.querySelector('#cam-snapshot').naturalWidth === 320"
            )
            first = await img.get_attribute("src")
            await expect(img).not_to_have_attribute("src", first or "", timeout=5000)
            # The previous picture's URL was released.
            assert await admin.evaluate(
                "async (u) => { try { await fetch(u); return false; } catch (e) { return true; } }",
                first,
            )
            await expect(admin.locator("#cam-facts")).to_contain_text("running (synthetic)")
            await expect(admin.locator("#timelapses")).to_contain_text("bracket-v3.gcode")
            await shot(admin, "43-admin-camera")
            async with admin.expect_download() as download:
                await admin.locator("#timelapses button", has_text="Download").first.click()
            saved = await download.value
            assert saved.suggested_filename.endswith("-timelapse.mp4")
            video = await asyncio.to_thread(Path(await saved.path()).read_bytes)
            assert video[4:8] == b"ftyp", video[:16]

            # Another tab: the snapshots stop.
            await admin.click("nav button[data-tab=jobs]")
            await expect(img).not_to_have_attribute("src", _blob())
        finally:
            await browser.close()


def _blob() -> Any:
    import re

    return re.compile(r"^blob:")


async def test_who_may_read_the_camera(tmp_path: Path, kit: Any) -> None:
    config = kit.make_config(tmp_path / "state", camera=CAMERA)
    async with kit.running_gateway(config) as gw:
        read = kit.new_token(gw, "reader", Scope.READ)
        async with kit.client(gw) as remote:
            for path in ("/api/camera/snapshot.jpg", "/api/camera/timelapses"):
                refused = await remote.get(path)
                assert refused.status_code == 401, (path, refused.text)
                assert refused.json()["error"]["code"]
            wrong = await remote.get(
                "/api/camera/snapshot.jpg", headers={"Authorization": "Bearer gwt_nonsense"}
            )
            assert wrong.status_code == 401
            snap = await remote.get(
                "/api/camera/snapshot.jpg", headers={"Authorization": f"Bearer {read}"}
            )
            assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
            assert snap.headers["content-type"] == "image/jpeg"
            listing = await remote.get(
                "/api/camera/timelapses", headers={"Authorization": f"Bearer {read}"}
            )
            assert listing.status_code == 200 and listing.json() == []
            # The page itself: no live view for anyone but the touchscreen; the admin tab.
            assert "live-view" not in (await remote.get("/")).text
            assert 'id="tab-camera"' in (await remote.get("/admin")).text
        async with kit.client(gw, kit.KIOSK) as kiosk:
            snap = await kiosk.get("/api/camera/snapshot.jpg")
            assert snap.status_code == 200
            html = (await kiosk.get("/")).text
            assert html.count('class="live-view"') == 2


async def test_no_camera_no_camera_section(gw: Gateway, kit: Any) -> None:
    async with kit.client(gw, kit.KIOSK) as kiosk:
        html = (await kiosk.get("/")).text
        assert "live-view" not in html and "stream.mjpg" not in html
        assert "tab-camera" not in (await kiosk.get("/admin")).text
        assert (await kiosk.get("/api/camera/snapshot.jpg")).status_code == 404
