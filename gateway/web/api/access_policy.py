"""The access policy through the web: bookings, lapsing inductions, presence, grant levels.

Everything goes through the access capability's commands (``book``,
``cancel_booking``, ``bookings``, ``lapsing``, ``presence``,
``choose_grant_level``) and its status, so the web, MQTT and the CLI see the
same rules and the same refusals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from gateway.web.api.access_models import (
    AccessNowWithPolicy,
    BookingCancelled,
    BookingMade,
    BookingsOut,
    LapsingOut,
    PolicyNow,
    PresenceNoted,
)
from gateway.web.api.deps import (
    AUTH_ERRORS,
    COMMAND_ERRORS,
    Admin,
    Operator,
    Reader,
    Reporter,
    Web,
    require_access,
)
from gateway.web.errors import responses

router = APIRouter(prefix="/api", tags=["access policy"], responses=AUTH_ERRORS)

_ID = r"^[A-Za-z0-9._:@-]{1,64}$"


class BookingRequest(BaseModel):
    member_id: str = Field(pattern=_ID, description="The booker's member id in the access list")
    start: datetime = Field(description="ISO 8601; without a zone, the gateway's local time")
    end: datetime


class PresenceRequest(BaseModel):
    member_id: str = Field(pattern=_ID)
    event: Literal["in", "out"]
    source: str = Field(
        pattern=_ID, description="'door', or a gateway listed in access.policy.nearby_gateways"
    )


class GrantLevel(BaseModel):
    level: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="e.g. supervised")


def _naive_to_iso(t: datetime) -> str:
    return t.isoformat() if t.tzinfo else t.astimezone().isoformat()


@router.get("/access/policy", responses=responses(409))
async def policy_status(ctx: Web, caller: Reader) -> PolicyNow:
    """For screens: the next booking, supervision, the expiry notice, the grant picker."""
    require_access(ctx)
    assert ctx.access is not None
    return PolicyNow.model_validate(ctx.access.status()["policy"])


@router.get("/bookings", responses=responses(*COMMAND_ERRORS))
async def bookings(ctx: Web, caller: Reporter) -> BookingsOut:
    """Bookings of this machine that have not ended, from the list and made here."""
    require_access(ctx)
    reply = await ctx.gw.commands.call("bookings", origin="web", actor=caller.actor)
    return BookingsOut.model_validate(reply)


@router.post("/bookings", responses=responses(400, *COMMAND_ERRORS))
async def book(body: BookingRequest, ctx: Web, caller: Admin) -> BookingMade:
    """Book the machine for a member; refused if it overlaps another booking."""
    require_access(ctx)
    args = {
        "member_id": body.member_id,
        "start": _naive_to_iso(body.start),
        "end": _naive_to_iso(body.end),
    }
    reply = await ctx.gw.commands.call("book", args, origin="web", actor=caller.actor)
    return BookingMade.model_validate(reply)


@router.delete("/bookings/{booking_id}", responses=responses(400, 404, *COMMAND_ERRORS))
async def cancel_booking(
    booking_id: Annotated[str, Path(pattern=_ID)], ctx: Web, caller: Admin
) -> BookingCancelled:
    """Cancel a booking made here (list bookings are changed in the membership system)."""
    require_access(ctx)
    reply = await ctx.gw.commands.call(
        "cancel_booking", {"id": booking_id}, origin="web", actor=caller.actor
    )
    return BookingCancelled.model_validate(reply)


@router.get("/access/lapsing", responses=responses(400, *COMMAND_ERRORS))
async def lapsing(
    ctx: Web, caller: Reporter, days: Annotated[int, Query(ge=0, le=3650)] = 30
) -> LapsingOut:
    """Members whose induction on this machine has lapsed or lapses within ``days``."""
    require_access(ctx)
    reply = await ctx.gw.commands.call(
        "lapsing", {"days": days}, origin="web", actor=caller.actor
    )
    return LapsingOut.model_validate(reply)


@router.post("/access/presence", responses=responses(400, *COMMAND_ERRORS))
async def presence(body: PresenceRequest, ctx: Web, caller: Admin) -> PresenceNoted:
    """A door reader or nearby gateway says who is in the space (also MQTT cmd/presence)."""
    require_access(ctx)
    reply = await ctx.gw.commands.call(
        "presence", body.model_dump(), origin="web", actor=caller.actor
    )
    return PresenceNoted.model_validate(reply)


@router.post("/access/grant-level", responses=responses(400, *COMMAND_ERRORS))
async def grant_level(body: GrantLevel, ctx: Web, caller: Operator) -> AccessNowWithPolicy:
    """The trainer in session picks the level their next induction grants."""
    require_access(ctx)
    reply = await ctx.gw.commands.call(
        "choose_grant_level", {"level": body.level}, origin=caller.origin, actor=caller.actor
    )
    return AccessNowWithPolicy.model_validate(reply)
