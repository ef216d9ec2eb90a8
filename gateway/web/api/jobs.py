"""Jobs: history, starting a file, and pausing, resuming or cancelling the current job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gateway.web.api.deps import AUTH_ERRORS, Operator, Reader, Stopper, Web
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
    """Start a file from the library now (the machine must be idle and powered).

    Presence rule: a member must be badged in at the machine; without one the answer
    is 409 ``no_session`` ("badge in at the machine first").  Per machine,
    ``access.rules.remote_start = "never"`` refuses token callers with 409
    ``remote_start_off``.  The start is recorded with the caller and the member present.
    """
    return await ctx.gw.commands.call(
        "start_job", {"file": body.file}, origin=caller.origin, actor=caller.actor
    )


@router.post("/current/pause", responses=_ACTION_ERRORS)
async def pause(ctx: Web, caller: Stopper) -> dict[str, Any]:
    """Pause the running job (it can be resumed).  Anyone at the touchscreen may pause,
    also while a job finishes after its member badged out."""
    return await ctx.gw.commands.call("pause", origin=caller.origin, actor=caller.actor)


@router.post("/current/resume", responses=_ACTION_ERRORS)
async def resume(ctx: Web, caller: Operator) -> dict[str, Any]:
    """Resume the paused job: like a start, it needs a member badged in at the machine."""
    return await ctx.gw.commands.call("resume", origin=caller.origin, actor=caller.actor)


@router.post("/current/cancel", responses=_ACTION_ERRORS)
async def cancel(ctx: Web, caller: Stopper) -> dict[str, Any]:
    """Cancel the current job: motion stops, heaters or spindle are switched off.
    Anyone at the touchscreen may cancel, as with e-stop."""
    return await ctx.gw.commands.call("cancel", origin=caller.origin, actor=caller.actor)
