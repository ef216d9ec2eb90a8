"""Resuming an interrupted job: the offer, the preamble preview, the resume itself.

Each route calls one of the machine's commands (``resume_offer``,
``resume_preview``, ``resume_job``, ``resume_discard``); the machine decides
who may see and resume the job (the member who ran it, badged in).
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway.web.api.deps import AUTH_ERRORS, Operator, Reader, Web
from gateway.web.api.models import Open
from gateway.web.errors import responses

router = APIRouter(prefix="/api/jobs/interrupted", tags=["jobs"], responses=AUTH_ERRORS)

_ERRORS = responses(400, 404, 409, 503, 504)


class ChosenLayer(BaseModel):
    job_id: int = Field(ge=1, description="The interrupted job (from the offer)")
    layer: int = Field(ge=1, le=10_000_000, description="Resume from the start of this layer")


class InterruptedJobRef(BaseModel):
    job_id: int | None = Field(
        default=None, ge=1, description="The interrupted job (from the offer; null if unknown)"
    )


class LayerChoice(Open):
    layer: int = Field(description="Layer number, counted from the first")
    line: int = Field(description="The layer's first line in the file, 1-based")
    z: float | None = Field(description="Height of the layer, mm (None where unknown)")


class InterruptedOut(Open):
    """A job the last run left unfinished, as the touchscreen offers it."""

    job_id: int | None
    file: str | None
    line: int | None = Field(description="Lines the machine confirmed before the stop")
    lines_total: int | None
    member_name: str = Field(description="Who ran it: only they may resume it")
    interrupted_at: float | None = Field(description="Unix time of the last checkpoint")
    resumable: bool
    reason: str = Field(description="Why it cannot be resumed; empty if it can")
    code: str = Field(description="Machine-readable form of the reason")
    layers: list[LayerChoice] = Field(description="Layers it may resume from, newest first")


class ResumeOffer(Open):
    interrupted: InterruptedOut | None


class ResumePreview(Open):
    job_id: int
    file: str
    layer: int
    line: int
    z: float | None
    preamble: list[str] = Field(description="G-code run before the layer, to restore the state")
    lines: int = Field(description="Lines of the file from the layer to the end")


class ResumeStarted(Open):
    job_id: int = Field(description="The new job")
    resumed_from: int = Field(description="The interrupted job it continues")
    layer: int
    line: int
    z: float | None


class ResumeDiscarded(Open):
    discarded: int | None = Field(description="The interrupted job no longer offered")


@router.get("", responses=responses(503, 504))
async def offer(ctx: Web, caller: Reader) -> ResumeOffer:
    """The interrupted job this machine can resume for the member badged in, if any."""
    reply = await ctx.gw.commands.call("resume_offer", origin=caller.origin, actor=caller.actor)
    return ResumeOffer.model_validate(reply)


@router.post("/preview", responses=_ERRORS)
async def preview(body: ChosenLayer, ctx: Web, caller: Operator) -> ResumePreview:
    """The preamble that would run before the chosen layer, to show before resuming."""
    reply = await ctx.gw.commands.call(
        "resume_preview", body.model_dump(), origin=caller.origin, actor=caller.actor
    )
    return ResumePreview.model_validate(reply)


@router.post("/resume", status_code=201, responses=_ERRORS)
async def resume(body: ChosenLayer, ctx: Web, caller: Operator) -> ResumeStarted:
    """Start the job again from the chosen layer, preamble first.  Like any start, it
    needs a member badged in at the machine (the presence rule)."""
    reply = await ctx.gw.commands.call(
        "resume_job", body.model_dump(), origin=caller.origin, actor=caller.actor, timeout=60.0
    )
    return ResumeStarted.model_validate(reply)


@router.post("/discard", responses=_ERRORS)
async def discard(body: InterruptedJobRef, ctx: Web, caller: Operator) -> ResumeDiscarded:
    """Forget the interrupted job: it is no longer offered."""
    reply = await ctx.gw.commands.call(
        "resume_discard", body.model_dump(), origin=caller.origin, actor=caller.actor
    )
    return ResumeDiscarded.model_validate(reply)
