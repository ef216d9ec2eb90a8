"""The machine: its status, who is asking, e-stop and reset."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from gateway.web.api.deps import AUTH_ERRORS, Operator, Reader, Stopper, Web
from gateway.web.errors import responses

router = APIRouter(prefix="/api", tags=["machine"], responses=AUTH_ERRORS)


class WhoAmI(BaseModel):
    kind: Literal["token", "kiosk"]
    name: str
    scope: Literal["read", "operate", "admin"] | None
    session_open: bool


@router.get("/status")
async def status(ctx: Web, caller: Reader) -> dict[str, Any]:
    """Machine state, current job and its progress, temperatures or position."""
    return ctx.machine.status()


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


@router.post("/estop", responses=responses(409, 504))
async def estop(ctx: Web, caller: Stopper) -> dict[str, Any]:
    """Emergency stop: halts the controller at once and cuts the machine's power.

    Always allowed from the touchscreen.  The machine stays stopped until reset.
    """
    return await ctx.gw.commands.call("estop", origin=caller.origin, actor=caller.actor)


@router.post("/machine/reset", responses=responses(409, 504))
async def reset(ctx: Web, caller: Operator) -> dict[str, Any]:
    """Clear an e-stop or controller fault (reconnects the controller)."""
    return await ctx.gw.commands.call("reset", origin=caller.origin, actor=caller.actor)
