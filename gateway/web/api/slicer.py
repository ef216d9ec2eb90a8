"""Members' jobs and keys through the gateway's own API: the touchscreen's held-job
list and its start button, "My slicer key", pairing approvals; admins' key management;
a member's own jobs with their key.

Everything goes through the slicer capability's commands; starting a held job is only
ever a tap on the touchscreen by the member it is held for.
"""

from __future__ import annotations

import asyncio
import io
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Depends, Path, Request, Security
from pydantic import BaseModel, Field

from gateway.commands import CommandError
from gateway.machine.files import FileRejected
from gateway.web.api.deps import AUTH_ERRORS, COMMAND_ERRORS, Admin, Reader, Stopper, Web
from gateway.web.api.octoprint import Member, api_key, identify_member
from gateway.web.api.slicer_models import (
    FileOwners,
    HeldJobOut,
    HeldJobView,
    HeldList,
    HoldOutcome,
    KeyList,
    KeysRevoked,
    MyHeld,
    MyKey,
    NewMemberKey,
    PairingDecided,
    PairingList,
    SlicerUsage,
    StickSimulated,
    UsbFiles,
)
from gateway.web.auth import Scope
from gateway.web.context import WebContext
from gateway.web.errors import ApiError, responses
from gateway.web.guard import Caller, allow

#: Refusals that are about who is asking (the rest map as in :mod:`gateway.web.errors`).
_FORBIDDEN = frozenset({"not_yours", "no_session", "not_from_kiosk"})


async def _call(
    ctx: WebContext, name: str, args: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    try:
        return await ctx.gw.commands.call(name, args, **kw)
    except CommandError as err:
        if err.code in _FORBIDDEN:
            raise ApiError(403, err.code, err.message) from err
        raise


router = APIRouter(prefix="/api/slicer", tags=["slicer"], responses=AUTH_ERRORS)

#: The touchscreen while a member is badged in (tokens: operate, but commands that
#: need a member refuse anything but the kiosk).
AtMachine = Annotated[Caller, Depends(allow(Scope.OPERATE, kiosk="session"))]


async def _member(
    request: Request, _key: Annotated[str | None, Security(api_key)] = None
) -> Member:
    class _Err(ApiError):
        def __init__(self, status: int, message: str) -> None:
            super().__init__(status, "unauthorised" if status == 401 else "forbidden", message)

    return await identify_member(request, _Err)


MemberKey = Annotated[Member, Depends(_member)]
JobId = Annotated[int, Path(ge=1, le=2**62, description="A held job's id")]
Token = Annotated[str, Path(min_length=1, max_length=64, description="A pairing request")]
MemberId = Annotated[str, Path(min_length=1, max_length=64, description="e.g. m-ada")]


def fits(analysis: dict[str, Any], volume: tuple[float, float, float] | None) -> bool | None:
    """Whether every position the file moves to lies in the build volume (None: unknown)."""
    extents = analysis.get("extents")
    if volume is None or not isinstance(extents, dict):
        return None
    low, high = extents.get("min") or {}, extents.get("max") or {}
    for axis, size in zip("xyz", volume, strict=True):
        lo, hi = low.get(axis), high.get(axis)
        if lo is None or hi is None:
            continue
        if lo < -0.5 or hi > size + 0.5:
            return False
    return True


async def _with_analysis(ctx: WebContext, jobs: list[dict[str, Any]]) -> list[HeldJobView]:
    """Each held job whose file is still in the library, with what the file does."""
    volume = ctx.gw.config.slicer.build_volume
    out = []
    for j in jobs:
        try:
            stored = await asyncio.to_thread(ctx.machine.files.get, j["file"])
        except FileRejected:
            continue
        out.append(
            HeldJobView.model_validate(
                {
                    **j,
                    "estimated_seconds": stored.estimated_seconds,
                    "filament_mm": stored.filament_mm,
                    "extents": stored.analysis.get("extents"),
                    "print_extents": stored.analysis.get("print_extents"),
                    "fits": fits(stored.analysis, volume),
                }
            )
        )
    return out


#: Every route here calls a slicer command: refused (409), the slicer capability not
#: running (503) or not answering in time (504).
_ERRORS = responses(*COMMAND_ERRORS)
#: A member's key: missing (401), wrong, revoked or suspended (403), too many wrong
#: keys (429), slicer uploads turned off (503).
_KEY_ERRORS = responses(401, 403, 429, *COMMAND_ERRORS)


@router.get("/held", responses=_ERRORS)
async def held(ctx: Web, caller: Reader) -> HeldList:
    """Jobs waiting for their member, the badged-in member's first."""
    jobs = (await _call(ctx, "slicer_held", origin=caller.origin))["held"]
    status = ctx.access_status()
    session = status.get("session") if status else None
    me = session["member_id"] if session else None
    jobs.sort(key=lambda j: (j["member_id"] != me, j["uploaded_at"]))
    return HeldList(held=await _with_analysis(ctx, jobs), session_member=me)


class StartHeld(BaseModel):
    discard_interrupted: bool = Field(
        False,
        description="Start although an interrupted job is offered for resume, discarding "
        "that offer (the member has cleared the bed)",
    )


@router.post("/held/{job_id}/start", responses=responses(403, 404, 413, *COMMAND_ERRORS))
async def start_held(
    job_id: JobId, ctx: Web, caller: AtMachine, body: StartHeld | None = None
) -> HoldOutcome:
    """The "Bed is clear — start" tap: only by the member the job is held for, at the machine.

    403 ``not_yours``, ``no_session`` or ``not_from_kiosk``; 409 when it expired, has
    ended, or the machine refuses the start (busy, not powered, or ``interrupted_pending``:
    an interrupted job is offered for resume; confirm with ``discard_interrupted``); 404
    for no such job (or its file gone from the library)."""
    args: dict[str, Any] = {"id": job_id}
    if body is not None and body.discard_interrupted:
        args["discard_interrupted"] = True
    started = await _call(ctx, "slicer_release", args, origin=caller.origin, actor=caller.actor)
    return HoldOutcome.model_validate(started)


@router.post("/held/{job_id}/cancel", responses=responses(403, 404, *COMMAND_ERRORS))
async def cancel_held(job_id: JobId, ctx: Web, caller: AtMachine) -> HeldJobOut:
    """The badged-in member cancels one of their held jobs (admins: any)."""
    args: dict[str, Any] = {"id": job_id}
    if caller.kind == "token":
        if caller.scope is None or caller.scope < Scope.ADMIN:
            raise ApiError(
                403, "insufficient_scope", "cancelling others' jobs needs an admin token"
            )
        args["admin"] = True
    cancelled = await _call(ctx, "slicer_cancel", args, origin=caller.origin, actor=caller.actor)
    return HeldJobOut.model_validate(cancelled)


def qr_svg(text: str) -> str:
    buf = io.BytesIO()
    segno.make(text, error="m").save(
        buf, kind="svg", scale=5, border=2, xmldecl=False, svgns=True, dark="#000", light="#fff"
    )
    return buf.getvalue().decode()


@router.post("/my-key", responses=responses(403, *COMMAND_ERRORS))
async def my_key(ctx: Web, caller: AtMachine) -> MyKey:
    """A new slicer key for the badged-in member (their previous one stops working),
    shown once as text and as a QR code made here."""
    made = await _call(ctx, "slicer_my_key", origin=caller.origin, actor=caller.actor)
    return MyKey(key=made["key"], member_name=made["member_name"], qr_svg=qr_svg(made["key"]))


@router.get("/pairings", responses=_ERRORS)
async def pairings(ctx: Web, caller: AtMachine) -> PairingList:
    """Slicers waiting for a badged-in member to approve them."""
    return PairingList.model_validate(await _call(ctx, "appkey_pending", origin=caller.origin))


class Decision(BaseModel):
    approve: bool


@router.post("/pairings/{token}", responses=responses(403, 404, *COMMAND_ERRORS))
async def decide(token: Token, body: Decision, ctx: Web, caller: AtMachine) -> PairingDecided:
    """The badged-in member approves a slicer (it receives their own key) or denies it."""
    decided = await _call(
        ctx,
        "appkey_decide",
        {"token": token, "approve": body.approve},
        origin=caller.origin,
        actor=caller.actor,
    )
    return PairingDecided.model_validate(decided)


# -- a member's own jobs, with their key ------------------------------------------------------


@router.get("/mine", responses=_KEY_ERRORS)
async def mine(ctx: Web, member: MemberKey) -> MyHeld:
    """The key's member's held jobs."""
    jobs = (await _call(ctx, "slicer_held", {"member_id": member.member_id}))["held"]
    return MyHeld(member_id=member.member_id, held=await _with_analysis(ctx, jobs))


@router.delete("/mine/{job_id}", responses=responses(401, 403, 404, 429, *COMMAND_ERRORS))
async def cancel_mine(job_id: JobId, ctx: Web, member: MemberKey) -> HeldJobOut:
    """The key's member cancels one of their held jobs (403 ``not_yours`` for others')."""
    cancelled = await _call(
        ctx,
        "slicer_cancel",
        {"id": job_id, "member_id": member.member_id},
        origin="web",
        actor=f"member:{member.member_id}",
    )
    return HeldJobOut.model_validate(cancelled)


# -- admins -----------------------------------------------------------------------------------


class NewKey(BaseModel):
    member_id: str = Field(min_length=1, max_length=64)
    member_name: str = Field(min_length=1, max_length=120)


@router.get("/keys", responses=_ERRORS)
async def keys(ctx: Web, caller: Admin) -> KeyList:
    """Every member's slicer keys (records only: secrets are never kept)."""
    return KeyList.model_validate(
        await _call(ctx, "slicer_keys", origin=caller.origin, actor=caller.actor)
    )


@router.post("/keys", status_code=201, responses=_ERRORS)
async def create_key(body: NewKey, ctx: Web, caller: Admin) -> NewMemberKey:
    """Create (or replace) a member's key; the secret is in this reply only."""
    made = await _call(
        ctx,
        "slicer_key_create",
        {"member_id": body.member_id, "member_name": body.member_name, "label": "admin"},
        origin=caller.origin,
        actor=caller.actor,
    )
    return NewMemberKey.model_validate(made)


@router.delete("/keys/{member_id}", responses=_ERRORS)
async def revoke_key(member_id: MemberId, ctx: Web, caller: Admin) -> KeysRevoked:
    """Revoke all of a member's keys: their slicers get 403 from now on."""
    revoked = await _call(
        ctx, "slicer_key_revoke", {"member_id": member_id}, origin=caller.origin, actor=caller.actor
    )
    return KeysRevoked.model_validate(revoked)


@router.get("/usage", responses=_ERRORS)
async def usage(ctx: Web, caller: Admin) -> SlicerUsage:
    """Members' held jobs: who uploaded, through which door, who released."""
    return SlicerUsage.model_validate(
        await _call(ctx, "slicer_usage", origin=caller.origin, actor=caller.actor)
    )


# -- the library's owners, USB sticks ---------------------------------------------------------


@router.get("/owners", responses=_ERRORS)
async def owners(ctx: Web, caller: Reader) -> FileOwners:
    """Who put each library file there, its name as they wrote it, and through which door."""
    return FileOwners.model_validate(await _call(ctx, "slicer_files", origin=caller.origin))


@router.get("/usb", responses=_ERRORS)
async def usb_files(ctx: Web, caller: Reader) -> UsbFiles:
    """G-code files on the USB sticks plugged into the gateway."""
    return UsbFiles.model_validate(await _call(ctx, "usb_files", origin=caller.origin))


class StickChoice(BaseModel):
    volume: str = Field(min_length=1, max_length=255)
    path: str = Field(min_length=1, max_length=1024)


@router.post("/usb/hold", responses=responses(403, 404, 413, *COMMAND_ERRORS))
async def usb_hold(body: StickChoice, ctx: Web, caller: AtMachine) -> HoldOutcome:
    """Copy a stick's file into the library for the badged-in member and hold it for them.

    400 a file that is not G-code by name, 413 too large, 422 not valid G-code, 409
    ``stick_pulled`` or ``no_stick`` when the stick went away (nothing is kept)."""
    held = await _call(
        ctx,
        "usb_hold",
        {"volume": body.volume, "path": body.path},
        origin=caller.origin,
        actor=caller.actor,
        timeout=120.0,
    )
    return HoldOutcome.model_validate(held)


class StickAction(BaseModel):
    action: Literal["plug", "unplug"]
    name: str = Field(default="STICK", min_length=1, max_length=64)


sim_router = APIRouter(prefix="/api/sim", tags=["simulation"], responses=AUTH_ERRORS)


@sim_router.post("/usb", responses=responses(400, *COMMAND_ERRORS))
async def simulate_usb(body: StickAction, ctx: Web, caller: Stopper) -> StickSimulated:
    """Simulation mode: plug a USB stick (with a demo job) in, or pull it out."""
    done = await _call(
        ctx, "usb_simulate", {"action": body.action, "name": body.name}, origin=caller.origin
    )
    return StickSimulated.model_validate(done)
