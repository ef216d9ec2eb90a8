"""The HTML pages: the touchscreen (``/``) and the admin pages (``/admin``).

Both are rendered once on the server and then kept current by a little local
JavaScript (``static/``); nothing is loaded from the internet.  The kiosk page
carries its first state inline, so it shows the right screen before any request,
but only to the touchscreen itself (``web.kiosk_addresses``): a member's name is
not shown to anyone else without a token.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

import gateway
from gateway.access.config import FileSourceConfig
from gateway.web import sse
from gateway.web.guard import web

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
MAX_DEMO_BADGES = 6

templates = Jinja2Templates(directory=TEMPLATES)
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class DemoBadge:
    """A member from the demo access list, offered as a button in simulation mode."""

    name: str
    uid: str
    note: str


def _note(member: dict[str, Any], machine_id: str, now: datetime) -> str:
    if member.get("suspended"):
        return "suspended"
    until = member.get("valid_until")
    if isinstance(until, str):
        try:
            end = datetime.fromisoformat(until)
        except ValueError:
            end = None
        if end is not None:
            end = end if end.tzinfo else end.replace(tzinfo=UTC)
            if end < now:
                return "expired"
    machines = member.get("machines") or {}
    role = machines.get(machine_id) or machines.get("*")
    if isinstance(role, dict):  # an induction object: its level, else its role
        role = role.get("level") or role.get("role") or "user"
    return {"user": "member"}.get(str(role), str(role)) if role else "not inducted"


def read_demo_badges(path: Path, machine_id: str) -> list[DemoBadge]:
    """Members with a raw badge UID in the access list file at ``path`` (blocking)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    now = datetime.now(UTC)
    badges = []
    for m in doc.get("members", []) if isinstance(doc, dict) else []:
        if isinstance(m, dict) and m.get("badges") and isinstance(m.get("name"), str):
            badges.append(DemoBadge(m["name"], str(m["badges"][0]), _note(m, machine_id, now)))
    return badges[:MAX_DEMO_BADGES]


async def demo_badges(request: Request) -> list[DemoBadge]:
    ctx = web(request)
    access = ctx.access
    if (
        not ctx.simulation
        or access is None
        or not isinstance(access.config.source, FileSourceConfig)
    ):
        return []
    return await asyncio.to_thread(
        read_demo_badges, access.config.source.path, ctx.gw.config.machine.id
    )


@router.get("/", response_class=HTMLResponse)
async def kiosk_page(request: Request) -> HTMLResponse:
    ctx = web(request)
    kiosk = ctx.is_kiosk(request) and "authorization" not in request.headers
    cfg = ctx.gw.config
    return templates.TemplateResponse(
        request,
        "kiosk.html",
        {
            "version": gateway.__version__,
            "machine_name": cfg.machine.name,
            "machine_kind": {"printer": "printer", "laser": "laser", "cnc": "CNC"}[
                cfg.machine.kind
            ],
            "simulation": ctx.simulation and kiosk,
            "demo_badges": await demo_badges(request) if kiosk else [],
            # The live view is for the touchscreen only; elsewhere the page shows no machine.
            "camera": kiosk and ctx.gw.camera is not None,
            "initial": {"kiosk": kiosk, "state": sse.hello(ctx) if kiosk else None},
            "timezone": cfg.site.timezone,
            "heartbeat": sse.HEARTBEAT,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "admin.html",
        {
            "version": gateway.__version__,
            "machine_name": web(request).gw.config.machine.name,
            "camera": web(request).gw.camera is not None,
            "token_command": token_command(web(request).simulation),
            "timezone": web(request).gw.config.site.timezone,
        },
    )


def token_command(simulation: bool) -> str:
    """The command that makes an admin token for this gateway, as the sign-in page shows it.

    In simulation (``make run``) it runs in the checkout, whose ``config/sim.toml`` the
    CLI finds by itself; on an installed gateway it runs as the service's user, whose
    default config is /etc/gateway/gateway.toml.
    """
    if simulation:
        return ".venv/bin/gateway token create --name NAME --scope admin"
    return "sudo -u gateway gateway token create --name NAME --scope admin"
