"""Prices: per-machine rules and the pure function that turns usage into a cost.

Rules (all optional, all non-negative, in the space's currency):

1. ``per_busy_minute`` and ``per_idle_minute`` charge the session's time.  Busy
   time is a job running (or, on machines without jobs, power above the
   threshold); idle is the rest of the powered time.
2. ``free_minutes`` (per role, e.g. ``trainer = 600``) and ``induction_free_minutes``
   (sessions started under an induction) are taken off busy minutes first, then
   idle minutes.  They never make energy or material free.
3. ``per_kwh`` charges the measured (or estimated) energy, ``per_gram`` the material.
4. ``minimum_charge`` raises a non-zero total to at least that amount; a session
   that cost nothing stays free.
5. The total is rounded once, half up, to the currency's cents; the lines are
   rounded for display only, so they may differ from the total by a cent.

Money is :class:`~decimal.Decimal`; floats never hold an amount.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

CENT = Decimal("0.01")
#: A price per unit above this is surely a typo (a price in cents, a missing point).
MAX_PRICE = Decimal(10_000)

Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, allow_inf_nan=False, max_digits=12)]


class PriceRules(BaseModel):
    """The ``[metering.prices]`` section: one machine's prices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    symbol: str = Field(default="€", min_length=1, max_length=4)
    per_busy_minute: Price = Decimal(0)
    per_idle_minute: Price = Decimal(0)
    per_kwh: Price = Decimal(0)
    per_gram: Price = Decimal(0)
    minimum_charge: Price = Decimal(0)
    free_minutes: dict[str, float] = Field(
        default_factory=dict, description="Free minutes per session by role, e.g. trainer = 600"
    )
    induction_free_minutes: float = Field(default=0.0, ge=0, le=24 * 60, allow_inf_nan=False)

    @field_validator("free_minutes")
    @classmethod
    def _free(cls, value: dict[str, float]) -> dict[str, float]:
        for role, minutes in value.items():
            if role not in ("user", "trainer", "maintainer"):
                raise ValueError(f"unknown role {role!r} (use user, trainer or maintainer)")
            if not math.isfinite(minutes) or minutes < 0 or minutes > 24 * 60:
                raise ValueError(f"free minutes for {role} must be 0 to 1440, got {minutes}")
        return value


@dataclass(frozen=True, slots=True)
class Usage:
    """What one session (or job) used; the input of :func:`price`."""

    busy_seconds: float
    idle_seconds: float
    energy_wh: float
    grams: float


@dataclass(frozen=True, slots=True)
class Line:
    label: str  # busy_time | idle_time | energy | material | minimum
    quantity: float
    unit: str  # min | kWh | g
    amount: Decimal  # rounded to cents, for display


@dataclass(frozen=True, slots=True)
class Quote:
    lines: tuple[Line, ...]
    free_minutes: float
    total: Decimal
    currency: str
    symbol: str

    def text(self) -> str:
        return f"{self.symbol}{self.total:.2f}"


def _non_negative(x: float) -> float:
    return x if math.isfinite(x) and x > 0 else 0.0


def free_minutes_for(rules: PriceRules, role: str | None, induction: bool) -> float:
    """The free minutes a session gets: the larger of its role's and an induction's."""
    by_role = rules.free_minutes.get(role or "", 0.0)
    return max(by_role, rules.induction_free_minutes if induction else 0.0)


def price(
    usage: Usage, rules: PriceRules, *, role: str | None = None, induction: bool = False
) -> Quote:
    """The cost of ``usage`` under ``rules`` (see the module docstring for the order)."""
    busy_min = _non_negative(usage.busy_seconds) / 60.0
    idle_min = _non_negative(usage.idle_seconds) / 60.0
    kwh = _non_negative(usage.energy_wh) / 1000.0
    grams = _non_negative(usage.grams)
    free = free_minutes_for(rules, role, induction)
    free_busy = min(free, busy_min)
    free_idle = min(free - free_busy, idle_min)
    billed_busy = busy_min - free_busy
    billed_idle = idle_min - free_idle
    exact = [
        ("busy_time", billed_busy, "min", rules.per_busy_minute * Decimal(repr(billed_busy))),
        ("idle_time", billed_idle, "min", rules.per_idle_minute * Decimal(repr(billed_idle))),
        ("energy", kwh, "kWh", rules.per_kwh * Decimal(repr(kwh))),
        ("material", grams, "g", rules.per_gram * Decimal(repr(grams))),
    ]
    subtotal = sum((amount for *_, amount in exact), Decimal(0))
    lines = [
        Line(label, quantity, unit, amount.quantize(CENT, ROUND_HALF_UP))
        for label, quantity, unit, amount in exact
        if amount > 0
    ]
    total = subtotal
    if Decimal(0) < subtotal < rules.minimum_charge:
        top_up = (rules.minimum_charge - subtotal).quantize(CENT, ROUND_HALF_UP)
        lines.append(Line("minimum", 1.0, "", top_up))
        total = rules.minimum_charge
    return Quote(
        lines=tuple(lines),
        free_minutes=free_busy + free_idle,
        total=total.quantize(CENT, ROUND_HALF_UP),
        currency=rules.currency,
        symbol=rules.symbol,
    )
