"""Events the telemetry capability publishes on the bus."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.bus import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxDropped(Event):
    """Events were discarded without reaching the broker.

    ``reason`` is ``full`` (the outbox reached ``outbox_max_events``), ``expired``
    (older than ``outbox_max_age``) or ``queue_overflow`` (the bus produced events
    faster than they could be stored).  This event is itself delivered over MQTT.
    """

    topic = "outbox_dropped"
    count: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConnected(Event):
    """The telemetry link to the MQTT broker is up."""

    host: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerDisconnected(Event):
    """The telemetry link is down; events wait in the outbox until ``retry_in`` s."""

    error: str
    retry_in: float
