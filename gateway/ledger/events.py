"""Events the ledger publishes.  ``LedgerRecorded`` goes out through the telemetry
outbox as ``<prefix>/event/ledger`` (stored before it is sent, resent until the
broker acknowledges it), so a broker outage delays records but loses none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.bus import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRecorded(Event):
    """A record was appended; ``record`` is its full signed form (see chain.Record)."""

    topic = "ledger"
    record: dict[str, Any]
