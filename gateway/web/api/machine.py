"""The machine: its status, who is asking, e-stop and reset."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from gateway.web.api.deps import AUTH_ERRORS, COMMAND_ERRORS, Operator, Reader, Stopper, Web
from gateway.web.api.models import MachineStateReply, MachineStatusOut
from gateway.web.errors import responses

router = APIRouter(prefix="/api", tags=["machine"], responses=AUTH_ERRORS)


class WhoAmI(BaseModel):
    kind: Literal["token", "kiosk"]
    name: str
    scope: Literal["read", "operate", "admin"] | None
    session_open: bool


@router.get("/status")
async def status(ctx: Web, caller: Reader) -> MachineStatusOut:
    """Machine state, current job and its progress, temperatures or position."""
    return MachineStatusOut.model_validate(ctx.machine.status())


@router.get("/whoami")
async def whoami(ctx: Web, caller: Reader) -> WhoAmI:
    """The caller as the gateway sees it: a token's name and scope, or the kiosk."""
    scope = caller.scope.label if caller.scope is not None else None
    return WhoAmI(
        kind=caller.kind,
        name=caller.name,
        scope=scope,  # type: ignore[arg-type]
        session_open=ctx.session_open(),
    )


@router.post("/estop", responses=responses(*COMMAND_ERRORS))
async def estop(ctx: Web, caller: Stopper) -> MachineStateReply:
    """Emergency stop: halts the controller at once and cuts the machine's power.

    Always allowed from the touchscreen.  The machine stays stopped until reset.
    """
    reply = await ctx.gw.commands.call("estop", origin=caller.origin, actor=caller.actor)
    return MachineStateReply.model_validate(reply)


@router.post("/machine/reset", responses=responses(*COMMAND_ERRORS))
async def reset(ctx: Web, caller: Operator) -> MachineStateReply:
    """Clear an e-stop or controller fault (reconnects the controller)."""
    reply = await ctx.gw.commands.call("reset", origin=caller.origin, actor=caller.actor)
    return MachineStateReply.model_validate(reply)
