"""What a member is shown: "so far: 23 min, 0.14 kWh, 18 g — €1.85" (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.metering.pricing import PriceRules, Quote, Usage, price
from gateway.metering.usage import JobUsage, SessionUsage


def session_quote(s: SessionUsage, rules: PriceRules) -> Quote:
    usage = Usage(s.busy_seconds, s.idle_seconds, s.energy_wh, s.grams)
    return price(usage, rules, role=s.role, induction=s.inducted_by is not None)


def job_quote(j: JobUsage, rules: PriceRules) -> Quote:
    """A job's share at its session's rates (busy time, energy, material), for
    information: billing is per session, so no minimum charge and no free minutes."""
    share = rules.model_copy(update={"minimum_charge": Decimal(0), "free_minutes": {}})
    return price(Usage(j.busy_seconds, 0.0, j.energy_wh, j.grams), share)


def usage_text(minutes: float, energy_wh: float, grams: float, quote: Quote) -> str:
    parts = [f"{minutes:.0f} min", f"{energy_wh / 1000:.2f} kWh"]
    if grams >= 0.5:
        parts.append(f"{grams:.0f} g")
    return f"{', '.join(parts)} \u2014 {quote.text()}"


def session_view(s: SessionUsage, rules: PriceRules) -> dict[str, Any]:
    """The JSON-friendly summary the web API and the kiosk show."""
    quote = session_quote(s, rules)
    minutes = s.powered_seconds / 60.0
    return {
        "session_id": s.session_id,
        "member_name": s.member_name,
        "active": s.ended is None,
        "reason": s.reason,
        "minutes": round(minutes, 2),
        "busy_minutes": round(s.busy_seconds / 60.0, 2),
        "idle_minutes": round(s.idle_seconds / 60.0, 2),
        "energy_kwh": round(s.energy_wh / 1000.0, 4),
        "grams": round(s.grams, 1),
        "cost": f"{quote.total:.2f}",
        "currency": quote.currency,
        "symbol": quote.symbol,
        "estimated": s.estimated,
        "jobs": len(s.jobs),
        "text": usage_text(minutes, s.energy_wh, s.grams, quote),
    }
