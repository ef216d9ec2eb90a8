"""Resuming an interrupted job: the offer, the preamble preview, the resume itself.

Each route calls one of the machine's commands (``resume_offer``,
``resume_preview``, ``resume_job``, ``resume_discard``); the machine decides
who may see and resume the job (the member who ran it, badged in).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway.web.api.deps import AUTH_ERRORS, Operator, Reader, Web
from gateway.web.errors import responses

router = APIRouter(prefix="/api/jobs/interrupted", tags=["jobs"], responses=AUTH_ERRORS)

_ERRORS = responses(400, 404, 409, 504)


class ChosenLayer(BaseModel):
    job_id: int = Field(ge=1, description="The interrupted job (from the offer)")
    layer: int = Field(ge=1, le=10_000_000, description="Resume from the start of this layer")


class InterruptedJobRef(BaseModel):
    job_id: int | None = Field(
        default=None, ge=1, description="The interrupted job (from the offer; null if unknown)"
    )


@router.get("")
async def offer(ctx: Web, caller: Reader) -> dict[str, Any]:
    """The interrupted job this machine can resume for the member badged in, if any."""
    return await ctx.gw.commands.call("resume_offer", origin=caller.origin, actor=caller.actor)


@router.post("/preview", responses=_ERRORS)
async def preview(body: ChosenLayer, ctx: Web, caller: Operator) -> dict[str, Any]:
    """The preamble that would run before the chosen layer, to show before resuming."""
    return await ctx.gw.commands.call(
        "resume_preview", body.model_dump(), origin=caller.origin, actor=caller.actor
    )


@router.post("/resume", status_code=201, responses=_ERRORS)
async def resume(body: ChosenLayer, ctx: Web, caller: Operator) -> dict[str, Any]:
    """Start the job again from the chosen layer, preamble first."""
    return await ctx.gw.commands.call(
        "resume_job", body.model_dump(), origin=caller.origin, actor=caller.actor, timeout=60.0
    )


@router.post("/discard", responses=_ERRORS)
async def discard(body: InterruptedJobRef, ctx: Web, caller: Operator) -> dict[str, Any]:
    """Forget the interrupted job: it is no longer offered."""
    return await ctx.gw.commands.call(
        "resume_discard", body.model_dump(), origin=caller.origin, actor=caller.actor
    )
