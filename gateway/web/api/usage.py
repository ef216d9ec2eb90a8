"""Metered usage and the usage ledger: what the running session costs so far, the
ledger's public key.  Both come from the capabilities' commands (``usage``,
``ledger_key``), so MQTT ``cmd/`` answers the same."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from gateway.web.api.deps import AUTH_ERRORS, Reader, Web
from gateway.web.errors import responses

router = APIRouter(prefix="/api", tags=["usage"], responses=AUTH_ERRORS)


class SessionCost(BaseModel):
    """One session's usage and cost (so far, or in total once it ended)."""

    session_id: str
    member_name: str
    active: bool
    reason: str | None
    minutes: float
    busy_minutes: float
    idle_minutes: float
    energy_kwh: float
    grams: float
    cost: str
    currency: str
    symbol: str
    estimated: bool
    jobs: int
    text: str


class UsageNow(BaseModel):
    """The running session (``session``), the last one that ended, the meter's health."""

    enabled: bool
    meter: str
    session: SessionCost | None
    last_session: SessionCost | None
    power_w: float | None
    meter_ok: bool
    failures: dict[str, int]
    estimated_seconds: float
    counter_resets: int
    counter_mismatch: bool


class LedgerKey(BaseModel):
    """The Ed25519 public key that signs this gateway's ledger records."""

    algorithm: str
    public_key: str
    key_id: str
    machine_id: str
    records: int
    head_hash: str
    broker_conflict: str | None = None


@router.get("/metering/usage", responses=responses(409, 503))
async def usage(ctx: Web, caller: Reader) -> UsageNow:
    """The running session's time, energy, material and cost so far (409 when the
    gateway has no meter configured: see ``[metering]``)."""
    result = await ctx.gw.commands.call("usage", origin=caller.origin, actor=caller.actor)
    return UsageNow.model_validate(result)


@router.get("/ledger/key", responses=responses(409, 503))
async def ledger_key(ctx: Web, caller: Reader) -> LedgerKey:
    """The ledger's public key (check records with ``gateway ledger verify``)."""
    result = await ctx.gw.commands.call("ledger_key", origin=caller.origin, actor=caller.actor)
    return LedgerKey.model_validate(result)
