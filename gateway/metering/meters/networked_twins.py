"""Simulated twins of the Shelly Gen2+ (HTTP and MQTT) and Tasmota meters.

Their power follows the same :class:`~.load.SimulatedLoad` as the PZEM twin and
their counters the same exact :class:`~.load.EnergyCounter`; they speak the
devices' own formats (see :mod:`.networked`) on loopback only.  Faults: an HTTP
500, a connection closed without an answer (unplugged), a counter reset (what a
Shelly does when it restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import aiomqtt

from gateway.metering.config import SimulatedLoadConfig
from gateway.metering.meters.load import EnergyCounter, SimulatedLoad
from gateway.tasks import cancel_and_wait


class _Device:
    def __init__(self, load: SimulatedLoadConfig | None = None) -> None:
        self.load = SimulatedLoad(load or SimulatedLoadConfig())
        self.counter = EnergyCounter()
        self.counter.set_power(self.load.power_w(), time.monotonic())

    def set_extra_power(self, watts: float) -> None:
        self.load.extra_w = watts
        self.counter.set_power(self.load.power_w(), time.monotonic())

    def reset_counter(self) -> None:
        self.counter.reset(time.monotonic())

    @property
    def energy_wh(self) -> float:
        return self.counter.advance(time.monotonic())

    def shelly_status(self, switch_id: int = 0) -> dict[str, Any]:
        power = self.counter.power_w
        volts = self.load.config.voltage
        return {
            "id": switch_id,
            "source": "init",
            "output": True,
            "apower": round(power, 1),
            "voltage": volts,
            "current": round(power / volts, 3),
            "aenergy": {"total": round(self.energy_wh, 3), "by_minute": [0, 0, 0]},
            "temperature": {"tC": 41.2, "tF": 106.2},
        }

    def tasmota_sensor(self) -> dict[str, Any]:
        power = self.counter.power_w
        volts = self.load.config.voltage
        return {
            "Time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "ENERGY": {
                "TotalStartTime": "2026-01-01T00:00:00",
                "Total": round(self.energy_wh / 1000.0, 3),
                "Yesterday": 0.0,
                "Today": round(self.energy_wh / 1000.0, 3),
                "Power": round(power),
                "ApparentPower": round(power),
                "ReactivePower": 0,
                "Factor": 1.0,
                "Voltage": round(volts),
                "Current": round(power / volts, 3),
            },
        }


class ShellyHttpTwin(_Device):
    """A Shelly Gen2+ answering ``/rpc/Switch.GetStatus`` on a loopback port."""

    def __init__(self, load: SimulatedLoadConfig | None = None) -> None:
        super().__init__(load)
        self.url = ""
        self.requests: deque[str] = deque(maxlen=1000)
        self.fail_next = 0  # answer 500 to the next N requests
        self.unplugged = False  # close connections without answering
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ShellyHttpTwin:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode("ascii", "replace")
            self.requests.append(target)
            if self.unplugged:
                return
            path, _, query = target.partition("?")
            if self.fail_next > 0:
                self.fail_next -= 1
                status, body = "500 Internal Server Error", b'{"code":-103,"message":"busy"}'
            elif path == "/rpc/Switch.GetStatus":
                switch_id = int(query.partition("id=")[2] or 0)
                status, body = "200 OK", json.dumps(self.shelly_status(switch_id)).encode()
            else:
                status, body = "404 Not Found", b'{"code":404,"message":"No handler"}'
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class MqttMeterTwin(_Device):
    """A Shelly (``<topic>/status/switch:0``) or Tasmota (``tele/<topic>/SENSOR``)
    publishing its readings every ``interval`` seconds to a broker."""

    def __init__(
        self,
        kind: str,
        topic: str,
        *,
        host: str,
        port: int,
        interval: float = 1.0,
        load: SimulatedLoadConfig | None = None,
    ) -> None:
        super().__init__(load)
        if kind not in ("shelly", "tasmota"):
            raise ValueError("kind is 'shelly' or 'tasmota'")
        self.kind = kind
        self.topic = topic
        self.host = host
        self.port = port
        self.interval = interval
        self.silent = False  # stop publishing (unplugged)
        self.published = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def mqtt_topic(self) -> str:
        if self.kind == "shelly":
            return f"{self.topic}/status/switch:0"
        return f"tele/{self.topic}/SENSOR"

    def payload(self) -> bytes:
        doc = self.shelly_status() if self.kind == "shelly" else self.tasmota_sensor()
        return json.dumps(doc).encode()

    async def __aenter__(self) -> MqttMeterTwin:
        self._task = asyncio.create_task(self._run(), name=f"twin:{self.kind}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(aiomqtt.MqttError):
                async with aiomqtt.Client(self.host, self.port) as client:
                    while True:
                        if not self.silent:
                            await client.publish(self.mqtt_topic, self.payload(), qos=0)
                            self.published += 1
                        await asyncio.sleep(self.interval)
            await asyncio.sleep(0.2)

    async def send_raw(self, payload: bytes) -> None:
        """Publish anything on the meter's topic (a garbled or foreign message)."""
        async with aiomqtt.Client(self.host, self.port) as client:
            await client.publish(self.mqtt_topic, payload, qos=0)
