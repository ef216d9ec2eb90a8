"""Jobs: history, starting a file, and pausing, resuming or cancelling the current job."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gateway.access.errors import AccessError
from gateway.web.api.deps import AUTH_ERRORS, COMMAND_ERRORS, Operator, Reader, Stopper, Web
from gateway.web.api.models import CurrentJob, JobRecordOut
from gateway.web.context import WebContext
from gateway.web.errors import responses

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=AUTH_ERRORS)

_ACTION_ERRORS = responses(*COMMAND_ERRORS)


class JobHistory(BaseModel):
    jobs: list[JobRecordOut]
    current: CurrentJob | None = Field(description="The current or last job, with progress")


async def _with_members(ctx: WebContext, jobs: list[dict[str, Any]]) -> list[JobRecordOut]:
    """Each job with the member whose badge session was open when it started.

    Sessions come from the access capability's records; without access control, or
    for a job started outside any session, ``member_name`` stays empty.
    """
    sessions: list[dict[str, Any]] = []
    if ctx.access is not None and jobs:
        # The history is the machine's; without the access records it still answers.
        with contextlib.suppress(AccessError):
            sessions = await ctx.access.sessions(max(200, 2 * len(jobs)))
    out = []
    for job in jobs:
        started = job.get("started_at")
        member = None
        if started is not None:
            for s in sessions:
                end = s.get("ended_at")
                if s["started_at"] <= started and (end is None or started <= end):
                    member = s["member_name"]
                    break
        out.append(JobRecordOut.model_validate({**job, "member_name": member}))
    return out


class StartJob(BaseModel):
    file: str = Field(min_length=1, max_length=255, description="A file in the library")
    discard_interrupted: bool = Field(
        False,
        description="Start although an interrupted job is offered for resume, discarding "
        "that offer (the member has cleared the bed)",
    )


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
    current = ctx.machine.status()["job"]
    return JobHistory(
        jobs=await _with_members(ctx, jobs),
        current=None if current is None else CurrentJob.model_validate(current),
    )


@router.post("", status_code=201, responses=responses(404, 413, *COMMAND_ERRORS))
async def start(body: StartJob, ctx: Web, caller: Operator) -> CurrentJob:
    """Start a file from the library now (the machine must be idle and powered).

    Presence rule: a member must be badged in at the machine; without one the answer
    is 409 ``no_session`` ("badge in at the machine first").  Per machine,
    ``access.rules.remote_start = "never"`` refuses token callers with 409
    ``remote_start_off``.  The start is recorded with the caller and the member present.
    While an interrupted job is offered for resume, the answer is 409
    ``interrupted_pending`` (which job, where it stopped) unless ``discard_interrupted``
    is true: its print is on the bed, and a new job means it is gone.
    """
    args: dict[str, object] = {"file": body.file}
    if body.discard_interrupted:
        args["discard_interrupted"] = True
    job = await ctx.gw.commands.call("start_job", args, origin=caller.origin, actor=caller.actor)
    return CurrentJob.model_validate(job)


@router.post("/current/pause", responses=_ACTION_ERRORS)
async def pause(ctx: Web, caller: Stopper) -> CurrentJob:
    """Pause the running job (it can be resumed).  Anyone at the touchscreen may pause,
    also while a job finishes after its member badged out."""
    job = await ctx.gw.commands.call("pause", origin=caller.origin, actor=caller.actor)
    return CurrentJob.model_validate(job)


@router.post("/current/resume", responses=_ACTION_ERRORS)
async def resume(ctx: Web, caller: Operator) -> CurrentJob:
    """Resume the paused job: like a start, it needs a member badged in at the machine."""
    job = await ctx.gw.commands.call("resume", origin=caller.origin, actor=caller.actor)
    return CurrentJob.model_validate(job)


@router.post("/current/cancel", responses=_ACTION_ERRORS)
async def cancel(ctx: Web, caller: Stopper) -> CurrentJob:
    """Cancel the current job: motion stops, heaters or spindle are switched off.
    Anyone at the touchscreen may cancel, as with e-stop."""
    job = await ctx.gw.commands.call("cancel", origin=caller.origin, actor=caller.actor)
    return CurrentJob.model_validate(job)
