"""Shelly Gen2+ (HTTP or MQTT) and Tasmota (MQTT) meters.

* Shelly Gen2+ (Shelly API docs, "Switch" component): ``GET /rpc/Switch.GetStatus?id=N``
  answers ``apower`` (W, instantaneous) and ``aenergy.total`` (Wh since boot; it
  resets when the plug restarts, which the integrator sees as a counter reset).
  Over MQTT, with "generic status update" enabled, the same status object is
  published on ``<prefix>/status/switch:N`` whenever it changes (and every minute).
  Gen1 devices count watt-minutes and are not supported.
* Tasmota (``SetOption`` defaults, ``TelePeriod`` 300 s, settable down to 10 s):
  ``tele/<topic>/SENSOR`` carries ``{"ENERGY": {"Total": kWh, "Power": W, ...}}``.

MQTT meters push: :meth:`MqttMeter.read` answers the newest reading while it is
younger than ``max_age``; older, it fails with ``no_data`` and the interval is
estimated.  Parsing is pure and rejects anything malformed with ``bad_reply``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import httpx

from gateway.backoff import Backoff
from gateway.metering.config import MeteringConfig
from gateway.metering.errors import MeterError
from gateway.metering.meters.base import Meter, Reading
from gateway.mqtt import BrokerSettingsError, client_options, tls_context
from gateway.tasks import cancel_and_wait
from gateway.telemetry.config import TelemetryConfig

log = logging.getLogger(__name__)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MeterError("bad_reply", f"{what} is not a number: {value!r}")
    return float(value)


def _object(payload: bytes | str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as err:
        raise MeterError("bad_reply", f"{what} is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise MeterError("bad_reply", f"{what} is not a JSON object")
    return data


def parse_shelly_status(payload: bytes | str) -> Reading:
    """A Shelly Gen2+ ``Switch.GetStatus`` result (HTTP body or MQTT status)."""
    data = _object(payload, "the Shelly's status")
    energy = data.get("aenergy")
    if not isinstance(energy, dict):
        raise MeterError("bad_reply", "the Shelly's status has no aenergy; is it a Gen2+ device?")
    return Reading(
        power_w=_number(data.get("apower"), "apower"),
        energy_wh=_number(energy.get("total"), "aenergy.total"),
        voltage_v=_number(data["voltage"], "voltage") if "voltage" in data else None,
        current_a=_number(data["current"], "current") if "current" in data else None,
    )


def parse_tasmota_sensor(payload: bytes | str) -> Reading:
    """A Tasmota ``tele/<topic>/SENSOR`` message with an ``ENERGY`` object."""
    data = _object(payload, "the Tasmota SENSOR message")
    energy = data.get("ENERGY")
    if not isinstance(energy, dict):
        raise MeterError("bad_reply", "the Tasmota SENSOR message has no ENERGY object")
    return Reading(
        power_w=_number(energy.get("Power"), "ENERGY.Power"),
        energy_wh=_number(energy.get("Total"), "ENERGY.Total") * 1000.0,
        voltage_v=_number(energy["Voltage"], "ENERGY.Voltage") if "Voltage" in energy else None,
        current_a=_number(energy["Current"], "ENERGY.Current") if "Current" in energy else None,
    )


class ShellyHttpMeter(Meter):
    kind = "shelly_http"

    def __init__(self, url: str, *, switch_id: int = 0, timeout: float = 1.0) -> None:
        self.url = url.rstrip("/")
        self.switch_id = switch_id
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def read(self) -> Reading:
        if self._client is None:
            await self.open()
        assert self._client is not None
        url = f"{self.url}/rpc/Switch.GetStatus"
        try:
            reply = await self._client.get(url, params={"id": self.switch_id})
        except httpx.TimeoutException as err:
            raise MeterError("timeout", f"no answer from the Shelly at {self.url}") from err
        except httpx.HTTPError as err:
            raise MeterError(
                "unplugged", f"cannot reach the Shelly at {self.url}: {err}; is it on the network?"
            ) from err
        if reply.status_code != 200:
            raise MeterError("http", f"the Shelly at {self.url} answered {reply.status_code}")
        return parse_shelly_status(reply.content)


class MqttMeter(Meter):
    """A meter that publishes its readings on an MQTT topic."""

    def __init__(
        self,
        *,
        kind: str,
        topic: str,
        parse: Callable[[bytes], Reading],
        broker: TelemetryConfig,
        client_id: str,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self.topic = topic
        self._parse = parse
        self._broker = broker
        self._client_id = client_id
        self.max_age = max_age
        self._clock = clock
        self.latest: tuple[float, Reading] | None = None
        self.bad_messages = 0
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name=f"meter:{self.kind}")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _listen(self) -> None:
        backoff = Backoff(initial=0.2, maximum=30.0)
        try:
            tls = await asyncio.to_thread(tls_context, self._broker)
        except BrokerSettingsError as err:
            log.error("metering: cannot listen to the %s: %s", self.kind, err)
            return  # read() answers no_data: the intervals are estimated, nothing crashes
        options = client_options(self._broker, identifier=self._client_id, tls=tls)
        while True:
            try:
                async with aiomqtt.Client(**options) as client:
                    await client.subscribe(self.topic, qos=0)
                    self.connected.set()
                    backoff.reset()
                    async for message in client.messages:
                        body = message.payload if isinstance(message.payload, bytes) else b""
                        self.receive(body)
            except aiomqtt.MqttError as err:
                self.connected.clear()
                delay = backoff.next_delay()
                log.debug("metering: MQTT for %s lost (%s); retry in %.1f s", self.kind, err, delay)
                await asyncio.sleep(delay)

    def receive(self, body: bytes) -> None:
        try:
            reading = self._parse(body)
        except MeterError as err:
            self.bad_messages += 1
            log.info("metering: ignoring a message on %s: %s", self.topic, err)
            return
        self.latest = (self._clock(), reading)

    async def read(self) -> Reading:
        if self.latest is None:
            raise MeterError("no_data", f"nothing from the {self.kind} on {self.topic} yet")
        at, reading = self.latest
        if self._clock() - at > self.max_age:
            raise MeterError(
                "no_data",
                f"nothing from the {self.kind} on {self.topic} for {self._clock() - at:.0f} s; "
                "is it online (and its TelePeriod short enough)?",
            )
        return reading


@contextlib.asynccontextmanager
async def networked_meter(
    config: MeteringConfig, broker: TelemetryConfig | None, machine_id: str
) -> AsyncIterator[Meter]:
    """The Shelly or Tasmota meter ``config`` names (the PZEM is made by the service)."""
    if config.meter == "shelly_http":
        yield ShellyHttpMeter(config.url, switch_id=config.switch_id, timeout=config.read_timeout)
        return
    if broker is None:
        raise MeterError("unplugged", f"meter = {config.meter!r} needs the [telemetry] broker")
    if config.meter == "shelly_mqtt":
        topic = f"{config.topic}/status/switch:{config.switch_id}"
        parse: Callable[[bytes], Reading] = parse_shelly_status
    else:
        topic = f"tele/{config.topic}/SENSOR"
        parse = parse_tasmota_sensor
    yield MqttMeter(
        kind=config.meter,
        topic=topic,
        parse=parse,
        broker=broker,
        client_id=f"gateway-{machine_id}-meter",
        max_age=config.max_gap,
    )
