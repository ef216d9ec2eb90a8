"""config/mosquitto/bridge.conf: a room broker forwarding its gateways to a central one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.bus import EventBus
from gateway.commands import CommandRequest, CommandRouter
from gateway.machine.events import JobPaused

BRIDGE = Path(__file__).resolve().parents[2] / "config" / "mosquitto" / "bridge.conf"


def bridge_to(port: int) -> str:
    """The example with the central broker on loopback and without TLS and login."""
    lines = []
    for line in BRIDGE.read_text().splitlines():
        if line.startswith(("bridge_cafile", "remote_username", "remote_password")):
            continue
        if line.startswith("address "):
            line = f"address 127.0.0.1:{port}"
        lines.append(line)
    return "\n".join(lines) + "\n"


async def test_events_go_out_and_commands_come_in(
    broker_factory: Callable[..., Any], harness: Any
) -> None:
    central = broker_factory("central")
    central.start()
    room = broker_factory("room", extra=bridge_to(central.port))
    room.start()
    router = CommandRouter()
    calls: list[str] = []

    async def pause(request: CommandRequest) -> dict[str, Any]:
        calls.append(request.name)
        return {"paused": True}

    router.register("pause", pause)
    bus = EventBus()
    service = harness.service(harness.config(port=room.port), bus=bus, commands=router)
    topics = ("gateway/+/status", "gateway/+/event/#", "gateway/+/cmd/+/result")
    async with (
        harness.running(service),
        central.client() as operator,
    ):
        for t in topics:
            await operator.subscribe(t, qos=1)
        bus.publish(JobPaused(job_id=1))
        seen: dict[str, Any] = {}
        async with asyncio.timeout(10):
            async for m in operator.messages:
                seen[m.topic.value] = m.payload
                if "gateway/m1/event/job_paused" in seen and "cmd_sent" not in seen:
                    seen["cmd_sent"] = True
                    await operator.publish("gateway/m1/cmd/pause", b'{"request_id": "c1"}', qos=1)
                if "gateway/m1/cmd/pause/result" in seen:
                    break
    assert seen["gateway/m1/status"] == b"online"
    assert b'"ok":true' in seen["gateway/m1/cmd/pause/result"]
    assert calls == ["pause"]
