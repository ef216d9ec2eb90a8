"""Access control through the web: list status, sessions, usage, lockouts, badge-out.

Everything here goes through the access capability's public surface
(:meth:`AccessService.status`, ``sessions``, ``usage``) and its commands; CSV
exports use :func:`gateway.access.cli.sessions_export` on the database file.
"""

from __future__ import annotations

import asyncio
import io
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gateway.access.cli import sessions_export
from gateway.web.api.deps import (
    AUTH_ERRORS,
    Admin,
    Operator,
    Reporter,
    Stopper,
    Web,
    require_access,
)
from gateway.web.context import WebContext
from gateway.web.errors import ApiError, responses

router = APIRouter(prefix="/api", tags=["access"], responses=AUTH_ERRORS)

_CSV_OR_JSON: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    **responses(400, 409, 503),
}


class AccessListStatus(BaseModel):
    enabled: bool
    running: bool = False
    state: str | None = None
    source: str | None = None
    generated_at: str | None = None
    age_seconds: float | None = Field(
        default=None, description="Seconds since the list was generated"
    )
    members: int = 0
    last_error: str | None = None
    lockout: dict[str, Any] | None = None
    readers: list[str] = []
    pending_inductions: int = 0


class Sessions(BaseModel):
    sessions: list[dict[str, Any]]


class Usage(BaseModel):
    usage: list[dict[str, Any]]


class LockoutRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=200, description="Shown on the touchscreen")


class SimBadge(BaseModel):
    uid: str = Field(min_length=1, max_length=40, description="Badge UID in hex, e.g. 04A1B2C3")
    reader: str | None = Field(default=None, max_length=40)


def _age(generated_at: str | None) -> float | None:
    if generated_at is None:
        return None
    try:
        return round(time.time() - datetime.fromisoformat(generated_at).timestamp(), 1)
    except ValueError:
        return None


async def _csv(
    ctx: WebContext, *, usage: bool, since: datetime | None, until: datetime | None
) -> Response:
    if since is not None and until is not None and until <= since:
        raise ApiError(400, "bad_range", "'until' must be later than 'since'")
    out = io.StringIO()
    await asyncio.to_thread(
        sessions_export,
        ctx.gw.config.storage.database,
        out,
        since=since,
        until=until,
        usage=usage,
    )
    what = "usage" if usage else "sessions"
    name = f"{what}-{ctx.gw.config.machine.id}-{datetime.now():%Y%m%d}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _between(
    rows: list[dict[str, Any]], since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    lo = since.timestamp() if since else float("-inf")
    hi = until.timestamp() if until else float("inf")
    return [r for r in rows if lo <= float(r.get("started_at") or 0.0) < hi]


@router.get("/access")
async def access_status(ctx: Web, caller: Reporter) -> AccessListStatus:
    """The access list: where it came from, how old it is, members, last error."""
    access = ctx.access
    if access is None:
        return AccessListStatus(enabled=False)
    s = access.status()
    lst = s["access_list"]
    return AccessListStatus(
        enabled=True,
        running=s["running"],
        state=s["state"],
        source=lst["source"],
        generated_at=lst["generated_at"],
        age_seconds=_age(lst["generated_at"]),
        members=lst["members"],
        last_error=lst["last_error"],
        lockout=s["lockout"],
        readers=s["readers"],
        pending_inductions=s["pending_inductions"],
    )


@router.post("/access/refresh", responses=responses(409, 503, 504))
async def refresh(ctx: Web, caller: Admin) -> dict[str, Any]:
    """Fetch the access list from its source now."""
    require_access(ctx)
    return await ctx.gw.commands.call("refresh_access_list", origin="web", actor=caller.actor)


@router.get("/sessions", response_model=Sessions, responses=_CSV_OR_JSON)
async def sessions(
    ctx: Web,
    caller: Reporter,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    since: Annotated[datetime | None, Query(description="ISO 8601; started from then")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; started before then")] = None,
    format: Literal["json", "csv"] = "json",
) -> Sessions | Response:
    """Badge sessions on this machine, newest first; ``format=csv`` downloads them all."""
    require_access(ctx)
    if format == "csv":
        return await _csv(ctx, usage=False, since=since, until=until)
    assert ctx.access is not None
    return Sessions(sessions=_between(await ctx.access.sessions(limit), since, until))


@router.get("/usage", response_model=Usage, responses=_CSV_OR_JSON)
async def usage(
    ctx: Web,
    caller: Reporter,
    since: Annotated[datetime | None, Query(description="ISO 8601 (CSV only)")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601 (CSV only)")] = None,
    format: Literal["json", "csv"] = "json",
) -> Usage | Response:
    """Totals per member: sessions, powered time, job time, filament."""
    require_access(ctx)
    if format == "csv":
        return await _csv(ctx, usage=True, since=since, until=until)
    assert ctx.access is not None
    return Usage(usage=await ctx.access.usage())


@router.post("/lockout", responses=responses(400, 409, 503, 504))
async def lockout(body: LockoutRequest, ctx: Web, caller: Admin) -> dict[str, Any]:
    """Lock the machine out for maintenance: power off, only maintainers may badge in."""
    require_access(ctx)
    return await ctx.gw.commands.call(
        "lockout", {"reason": body.reason, "by": caller.name}, origin="web", actor=caller.actor
    )


@router.delete("/lockout", responses=responses(400, 409, 503, 504))
async def clear_lockout(
    ctx: Web,
    caller: Admin,
    by: Annotated[
        str | None,
        Query(max_length=64, description="Member id of the maintainer clearing the lockout"),
    ] = None,
) -> dict[str, Any]:
    """Clear the lockout (the access capability requires a maintainer's member id)."""
    require_access(ctx)
    args = {"by": by} if by else {}
    return await ctx.gw.commands.call("clear_lockout", args, origin="web", actor=caller.actor)


class JobStarts(BaseModel):
    job_starts: list[dict[str, Any]] = Field(
        description="Newest first: at, action (start | resume | gcode), caller "
        "(e.g. web:token:NAME, mqtt:CLIENT, kiosk), session_id and member_id of the member "
        "present (null only under remote_start = always)"
    )


@router.get("/access/job-starts")
async def job_starts(
    ctx: Web, caller: Reporter, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> JobStarts:
    """Who started or resumed each job, and which member was badged in at the time."""
    require_access(ctx)
    assert ctx.access is not None
    return JobStarts(job_starts=await ctx.access.job_starts(limit))


@router.post("/access/cut-power", responses=responses(409, 503, 504))
async def cut_power(ctx: Web, caller: Admin) -> dict[str, Any]:
    """Cut the machine's power now, even under a job that would finish by its rule
    (a member suspended mid-job, say).  The job is stopped as by a power cut."""
    require_access(ctx)
    return await ctx.gw.commands.call("cut_power", origin="web", actor=caller.actor)


@router.post("/badge-out", responses=responses(409, 503, 504))
async def badge_out(ctx: Web, caller: Operator) -> dict[str, Any]:
    """End the current member's session, as if they had badged again."""
    require_access(ctx)
    return await ctx.gw.commands.call("badge_out", origin=caller.origin, actor=caller.actor)


sim_router = APIRouter(prefix="/api/sim", tags=["simulation"], responses=AUTH_ERRORS)


@sim_router.post("/badge", responses=responses(400, 409, 503, 504))
async def present_badge(body: SimBadge, ctx: Web, caller: Stopper) -> dict[str, Any]:
    """Simulation mode only: hold a badge against the simulated reader."""
    require_access(ctx)
    if "present_badge" not in ctx.gw.commands.names:
        raise ApiError(
            409,
            "no_simulated_reader",
            "no simulated reader is configured ([[access.readers]] type = simulated)",
        )
    args: dict[str, Any] = {"uid": body.uid}
    if body.reader:
        args["reader"] = body.reader
    return await ctx.gw.commands.call(
        "present_badge", args, origin=caller.origin, actor=caller.actor
    )
