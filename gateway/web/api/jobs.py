"""Jobs: history, starting a file, and pausing, resuming or cancelling the current job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gateway.web.api.deps import AUTH_ERRORS, Operator, Reader, Web
from gateway.web.errors import responses

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=AUTH_ERRORS)

_ACTION_ERRORS = responses(409, 504)


class JobHistory(BaseModel):
    jobs: list[dict[str, Any]]
    current: dict[str, Any] | None = Field(description="The current or last job, with progress")


class StartJob(BaseModel):
    file: str = Field(min_length=1, max_length=255, description="A file in the library")


@router.get("")
async def history(
    ctx: Web,
    caller: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JobHistory:
    """Past jobs of this machine, newest first."""
    limit = min(limit, ctx.gw.config.jobs.history_limit)
    jobs = await ctx.machine.job_history(limit, offset)
    return JobHistory(jobs=jobs, current=ctx.machine.status()["job"])


@router.post("", status_code=201, responses=responses(400, 404, 409, 504))
async def start(body: StartJob, ctx: Web, caller: Operator) -> dict[str, Any]:
    """Start a file from the library now (the machine must be idle and powered)."""
    return await ctx.gw.commands.call(
        "start_job", {"file": body.file}, origin=caller.origin, actor=caller.actor
    )


@router.post("/current/pause", responses=_ACTION_ERRORS)
async def pause(ctx: Web, caller: Operator) -> dict[str, Any]:
    """Pause the running job (it can be resumed)."""
    return await ctx.gw.commands.call("pause", origin=caller.origin, actor=caller.actor)


@router.post("/current/resume", responses=_ACTION_ERRORS)
async def resume(ctx: Web, caller: Operator) -> dict[str, Any]:
    """Resume the paused job."""
    return await ctx.gw.commands.call("resume", origin=caller.origin, actor=caller.actor)


@router.post("/current/cancel", responses=_ACTION_ERRORS)
async def cancel(ctx: Web, caller: Operator) -> dict[str, Any]:
    """Cancel the current job: motion stops, heaters or spindle are switched off."""
    return await ctx.gw.commands.call("cancel", origin=caller.origin, actor=caller.actor)
