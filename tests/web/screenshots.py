"""``make screenshots``: every kiosk state and admin tab, at 800x480 and 1280x800.

Runs the real daemon in simulation (simulated Marlin moving in real time, simulated
badge reader, synthetic camera) and a real headless Chromium, walks through the
states a member and an admin meet, and writes one PNG per state and size to the
folder given (``docs/screenshots`` from the Makefile).  PNGs are reduced to a
256-colour palette so the committed set stays small.

Usage: python tests/web/screenshots.py OUT_DIR
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conftest as kit  # the web tests' helpers: config, gateway, tokens

from gateway.metering.config import MeteringConfig
from gateway.slicer.config import SlicerConfig
from gateway.web.auth import Scope
from gateway.web.site import SiteConfig

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SIZES = ((800, 480), (1280, 800))
CAMERA = {"enabled": True, "backend": "synthetic", "fps": 5}
# The running cost and the session total: the simulated power meter and some prices.
METERING = MeteringConfig(
    enabled=True,
    meter="simulated",
    sample_interval=0.5,
    prices={"per_busy_minute": "0.50", "per_idle_minute": "0.10", "per_kwh": "0.40"},  # type: ignore[arg-type]
)
SLICER = SlicerConfig(build_volume=(220, 220, 250))
# A supervised member (the EVE badge) so the kiosk can show "Supervised by" and the
# supervisor-left warning; the list keeps the web tests' count of members.
LEARNER = {
    "id": "m-sam",
    "name": "Sam Learner",
    "badges": [kit.EVE],
    "machines": {"test-printer": {"level": "supervised", "inducted_at": "2026-01-01T00:00:00Z"}},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def save_small(png: bytes, path: Path) -> None:
    """The screenshot as a palette PNG: a quarter of the bytes, the same to a reader."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


class Shots:
    """One page per size; ``take`` photographs all of them once ``ready`` holds."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.pages: list[tuple[str, Any]] = []
        self.names: list[str] = []

    async def open(self, browser: Any, url: str) -> None:
        for w, h in SIZES:
            page = await browser.new_page(viewport={"width": w, "height": h})
            await page.goto(url)
            self.pages.append((f"{w}x{h}", page))

    async def take(self, name: str, ready: str | None = None, text: str | None = None) -> None:
        from playwright.async_api import expect

        for size, page in self.pages:
            if ready is not None:
                loc = page.locator(ready).first
                await expect(loc).to_be_visible(timeout=20_000)
                if text is not None:
                    await expect(loc).to_contain_text(text, timeout=20_000)
            await page.wait_for_timeout(300)  # let a repaint land
            path = self.out / f"{name}-{size}.png"
            save_small(await page.screenshot(), path)
            self.names.append(path.name)

    async def each(self, action: str, *args: Any) -> None:
        for _, page in self.pages:
            await getattr(page, action)(*args)

    async def close(self) -> None:
        for _, page in self.pages:
            await page.close()
        self.pages = []


async def kiosk_states(gw: Any, browser: Any, shots: Shots, url: str) -> None:
    call = gw.commands.call
    await shots.open(browser, url)
    await shots.take("kiosk-01-badge-in", "#screen-locked")
    await call("present_badge", {"uid": kit.BOB})
    await shots.take("kiosk-02-refused", "#denial", "not inducted")
    await shots.each("click", "#denial")
    await call("present_badge", {"uid": kit.ADA})
    await shots.take("kiosk-03-session", "#hello", "Ada")
    await shots.each("click", "#files button >> nth=0")
    await shots.take("kiosk-04-confirm-start", "#confirm")
    await shots.pages[0][1].click("#confirm-yes")
    for _, page in shots.pages:  # some progress and a heating nozzle, as a member sees it
        await page.wait_for_function(
            "() => parseInt(document.querySelector('#progress-pct').textContent) >= 3",
            timeout=30_000,
        )
    await shots.take("kiosk-05-job-running", "#readings", "/")
    await call("pause", origin="kiosk")
    await shots.take("kiosk-06-job-paused", "#job-state", "Paused")
    await call("resume", origin="kiosk")
    await call("cancel", origin="kiosk")
    await shots.take("kiosk-07-job-cancelled", "#session-banner", "cancelled")
    await call("badge_out", origin="kiosk")
    await shots.take("kiosk-08-badged-out", "#locked-note")
    # A trainer (Max may train) inducts Bob.
    await call("present_badge", {"uid": kit.MAX})
    await shots.take("kiosk-09-trainer", "#hello", "Max")
    await call("present_badge", {"uid": kit.BOB})
    await shots.take("kiosk-10-induction-confirmed", "#induction-banner", "inducted")
    await call("badge_out", origin="kiosk")
    await call("lockout", {"reason": "Nozzle being replaced", "by": "Max"})
    await shots.take("kiosk-11-out-of-service", "#screen-lockout")
    await call("clear_lockout", {"by": "m-max"})
    await held_job_states(gw, shots, url)
    await booking_states(gw, shots)
    await supervision_states(gw, shots)
    await resume_states(gw, shots)
    await call("estop", origin="kiosk")
    await shots.take("kiosk-12-emergency-stop", "#locked-note", "emergency stop")


def layered_job(layers: int = 12, per_layer: int = 8) -> bytes:
    """A print with Cura's ``;LAYER:n`` marks, so an interrupted run can resume by layer."""
    lines = ["G28", "G21", "G90", "M140 S60", "M104 S210", "M83", "M106 S200"]
    for n in range(1, layers + 1):
        lines += [f";LAYER:{n}", f"G1 Z{0.2 * n:.2f} F600"]
        for i in range(per_layer):
            x, y = 20 + (i * 13) % 60, 20 + (i * 7) % 50
            lines.append(f"G1 X{x} Y{y} E0.08 F2400")
    lines += ["M107", "M104 S0", "M140 S0"]
    return ("\n".join(lines) + "\n").encode()


def printed_job(moves: int) -> bytes:
    """A sliced Marlin print that extrudes, about 2 s per move at time_scale 1."""
    lines = ["; sliced", "G28", "G90", "M82", "M104 S200", "G92 E0"]
    for i in range(moves):  # four moves a layer, 25 mm of filament each
        x, y, z = 40 if i % 2 == 0 else 10, 10 + 5 * (i % 5), 0.2 * (1 + i // 4)
        lines.append(f"G1 X{x} Y{y} Z{z:.1f} E{i * 25} F900")
    lines.append("M104 S0")
    return ("\n".join(lines) + "\n").encode()


async def wait_all(shots: Shots, script: str, timeout: float = 60_000) -> None:
    for _, page in shots.pages:
        await page.wait_for_function(script, timeout=timeout)


async def held_job_states(gw: Any, shots: Shots, url: str) -> None:
    """A slicer upload held for Ada, her key, Cura pairing, the job's cost and its end."""
    from playwright.async_api import expect

    call = gw.commands.call
    made = await call("slicer_key_create", {"member_id": "m-ada", "member_name": "Ada Lovelace"})
    async with httpx.AsyncClient(base_url=url) as slicer:
        r = await slicer.post(
            "/api/files/local",
            headers={"X-Api-Key": made["key"]},
            data={"print": "true", "path": "/"},
            files={"file": ("shelf-bracket.gcode", printed_job(24), "application/octet-stream")},
        )
        r.raise_for_status()
    await shots.take("kiosk-14-held-for-member", "#held-idle", "held for Ada L.")
    await call("present_badge", {"uid": kit.ADA})
    await shots.take("kiosk-15-held-job-first", "#held-mine .held-meta", "fits the machine")
    await shots.each("click", "#my-key")
    await shots.take("kiosk-16-my-slicer-key", "#key-qr svg")
    await shots.each("click", "#key-done")
    async with httpx.AsyncClient(base_url=url) as slicer:
        await slicer.post("/plugin/appkeys/request", json={"app": "Cura"})
        await shots.take("kiosk-17-cura-pairing", "#pairing", "Cura asks")
        await shots.pages[0][1].locator("#pairing button", has_text="Approve").click()
    for _, page in shots.pages:
        await expect(page.locator("#pairing")).to_be_hidden()
    await shots.pages[0][1].locator(".held-start").click()
    await wait_all(
        shots,
        "() => /\u20ac0\\.0[2-9]|\u20ac0\\.[1-9]/.test("
        "document.querySelector('#usage-job').textContent)",
    )
    await wait_all(
        shots, "() => parseInt(document.querySelector('#progress-pct').textContent) >= 10"
    )
    for _, page in shots.pages:  # "Cura can now send files as you." has gone
        await expect(page.locator("#toast")).to_be_hidden(timeout=20_000)
    await shots.take("kiosk-18-job-cost-so-far", "#usage-job", "So far:")
    await shots.take("kiosk-19-job-finishing", "#job-state", "Finishing moves")
    for _, page in shots.pages:
        await expect(page.locator("#screen-session")).to_be_visible(timeout=60_000)
    await call("badge_out", origin="kiosk")
    await shots.take("kiosk-20-session-total", "#usage-total", "Your session:")


async def booking_states(gw: Any, shots: Shots) -> None:
    """Max has the machine booked from now: the idle screen says so and Ada is refused."""
    call = gw.commands.call
    start = datetime.now(UTC) - timedelta(minutes=1)
    made = await call(
        "book",
        {
            "member_id": "m-max",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        },
    )
    await shots.take("kiosk-21-booked", "#next-booking", "Booked for Max Mender")
    await call("present_badge", {"uid": kit.ADA})
    await shots.take("kiosk-22-refused-booked", "#denial", "Booked for Max Mender until")
    await shots.each("click", "#denial")
    await call("cancel_booking", {"id": made["booking"]["id"]})


async def supervision_states(gw: Any, shots: Shots) -> None:
    """Sam may only work while a supervisor is present: Ada hands over, then leaves."""
    call = gw.commands.call
    await call("present_badge", {"uid": kit.ADA})
    await call("present_badge", {"uid": kit.EVE})
    await shots.take("kiosk-23-supervised", "#policy-note", "Supervised by Ada Lovelace")
    await call("present_badge", {"uid": kit.ADA})
    await shots.take("kiosk-24-supervisor-left", "#policy-note", "Ada Lovelace has left")
    await call("badge_out", origin="kiosk")


async def resume_states(gw: Any, shots: Shots) -> None:
    """The controller resets mid-print (as a power blip does): Ada is offered a resume."""
    call = gw.commands.call
    for _, page in shots.pages:
        await page.locator("#screen-locked").wait_for(timeout=20_000)
    tower = Path(gw.config.storage.state_dir) / "tower.gcode"
    tower.write_bytes(layered_job())
    gw.machine.files.add_path(tower)
    await call("present_badge", {"uid": kit.ADA})
    first = shots.pages[0][1]
    await first.locator("#files button", has_text="tower.gcode").click()
    await first.click("#confirm-yes")
    await wait_all(
        shots, "() => parseInt(document.querySelector('#progress-pct').textContent) >= 40"
    )
    gw.simulator.power_cycle()
    for _, page in shots.pages:
        await page.locator("#screen-session").wait_for(timeout=60_000)
    await call("badge_out", origin="kiosk")
    await call("present_badge", {"uid": kit.ADA})
    await shots.take("kiosk-25-resume-offer", "#resume-go", "Resume from layer")
    await call("badge_out", origin="kiosk")


async def admin_tabs(browser: Any, shots: Shots, url: str, secret: str) -> None:
    await shots.open(browser, url + "admin")
    await shots.take("admin-01-sign-in", "#login")
    await shots.each("fill", "#token", secret)
    await shots.each("click", "#login-form button")
    tabs = ["status", "timeline", "jobs", "files", "sessions", "access", "tokens", "camera"]
    for i, tab in enumerate(tabs, start=2):
        await shots.each("click", f"nav button[data-tab={tab}]")
        ready = {"status": "#live.on", "timeline": "#events tr", "jobs": "#jobs tr"}.get(tab)
        await shots.take(f"admin-{i:02d}-{tab}", ready or f"#tab-{tab}")


async def main(out: Path) -> list[str]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        config = kit.make_config(
            state, time_scale=1.0, camera=CAMERA, web={"port": free_port()}
        )
        # Max's badge as a trainer earlier must not still count as a supervisor's presence.
        policy = config.access.policy.model_copy(
            update={"supervision_window": 30.0}
        )
        config = config.model_copy(
            update={
                "site": SiteConfig(timezone="Europe/London"),
                "metering": METERING,
                "slicer": SLICER,
                "access": config.access.model_copy(update={"policy": policy}),
            }
        )
        members = [m for m in kit.DEMO_MEMBERS if m["badges"] != [kit.EVE]] + [LEARNER]
        doc = {
            "version": 1,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "count": len(members),
            "members": members,
        }
        assert config.access.source.path is not None
        config.access.source.path.write_text(json.dumps(doc, indent=2))
        shots = Shots(out)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                async with kit.running_gateway(config) as gw:
                    url = f"http://127.0.0.1:{gw.web.port}/"
                    for name, moves in (("bracket-v3.gcode", 400), ("benchy.gcode", 300)):
                        path = Path(tmp) / name
                        path.write_bytes(kit.gcode_file(moves))
                        gw.machine.files.add_path(path)
                    await kiosk_states(gw, browser, shots, url)
                    kiosk = shots.pages
                    shots.pages = []
                    secret = kit.new_token(gw, "ops-admin", Scope.ADMIN)
                    await admin_tabs(browser, shots, url, secret)
                    await shots.close()
                    shots.pages = kiosk
                # The gateway has stopped: the kiosk pages say so.
                await shots.take("kiosk-13-gateway-offline", "#screen-offline")
                await shots.close()
            finally:
                await browser.close()
    return sorted(set(shots.names))


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    names = asyncio.run(main(folder))
    print(f"{len(names)} screenshots written")
