"""Simulation mode: pull the simulated controller's USB cable out and plug it back in.

The pty the machine service has open goes away as a device node does when a
USB cable is pulled; plugging back in makes a new one and the board resets.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway.web.api.deps import AUTH_ERRORS, COMMAND_ERRORS, Stopper, Web
from gateway.web.api.models import Open
from gateway.web.errors import responses


class CableAction(BaseModel):
    action: Literal["plug", "unplug"]


class CableState(Open):
    plugged: bool = Field(description="Whether the simulated controller is plugged in")
    path: str = Field(description="Its device path while plugged in, else empty")


sim_controller_router = APIRouter(prefix="/api/sim", tags=["simulation"], responses=AUTH_ERRORS)


@sim_controller_router.post("/controller", responses=responses(*COMMAND_ERRORS))
async def simulate_cable(body: CableAction, ctx: Web, caller: Stopper) -> CableState:
    """Simulation mode: unplug the simulated controller (the machine sees its port
    lost, a running job fails and is offered for resume) or plug it back in."""
    reply = await ctx.gw.commands.call(
        "sim_controller", {"action": body.action}, origin=caller.origin, actor=caller.actor
    )
    return CableState.model_validate(reply)
