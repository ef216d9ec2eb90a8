"""The events timeline: what happened at the machine since the gateway started, in words."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gateway.web.api.deps import AUTH_ERRORS, Reporter, Web
from gateway.web.timeline import Entry

router = APIRouter(prefix="/api", tags=["live"], responses=AUTH_ERRORS)


class TimelinePage(BaseModel):
    entries: list[Entry]
    newest: int  # the highest seq there is; pass it as ?after= to get only newer rows


@router.get("/timeline")
async def timeline(
    ctx: Web,
    caller: Reporter,
    after: Annotated[int, Query(ge=0, description="Only rows with a higher seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> TimelinePage:
    """Badges, sessions, jobs, lockouts and faults, newest first, as readable sentences."""
    rows = ctx.timeline.after(after, limit)
    newest = ctx.timeline.entries[-1].seq if ctx.timeline.entries else 0
    return TimelinePage(entries=rows, newest=newest)
