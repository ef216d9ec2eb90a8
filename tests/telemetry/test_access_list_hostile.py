"""Hostile access lists over MQTT, end to end: a real Mosquitto, the telemetry service
forwarding the retained list topic, and the access service with an ``mqtt`` source
and a member's session open.  Every body ends as a refused list with its reason;
the session, the relay and the last good list are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from pathlib import Path
from typing import Any

from gateway.access.config import AccessConfig, MqttSourceConfig
from gateway.access.events import AccessListUpdated
from gateway.access.readers.config import SimulatedReaderConfig
from gateway.access.service import AccessService
from gateway.bus import EventBus
from gateway.commands import CommandRouter

TOPIC = "space/access-list"
ADA = "04A1B2C3"
MB = 1024 * 1024


def good_list(n: int = 1) -> bytes:
    members = [
        {"id": f"m-{i}", "name": f"Member {i}", "badges": [f"{i:08X}"], "machines": {"*": "user"}}
        for i in range(2, n + 1)
    ]
    members.append({"id": "m-ada", "name": "Ada", "badges": [ADA], "machines": {"*": "user"}})
    return json.dumps(
        {
            "version": 1,
            "generated_at": "2024-05-01T00:00:00Z",
            "count": len(members),
            "members": members,
        }
    ).encode()


def gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(packer.compress(b" " * MB) for _ in range(64)) + packer.flush()


HEAD = b'{"version": 1, "generated_at": "2024-05-01T00:00:00Z", "count": 1, "members": '
HOSTILE: dict[str, tuple[bytes, str]] = {
    "nested 100,000 deep": (HEAD + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    "a number of 100,000 digits": (b'{"count": ' + b"9" * 100_000 + b"}", "100000 digits"),
    "invalid UTF-8": (HEAD + b'[{"id": "m-1", "name": "\xff\xfe"}]}', "not UTF-8"),
    "a gzip bomb": (gzip_bomb(), "larger than"),
    "50 MB": (HEAD + b"[" + b" " * (50 * MB) + b"]}", "larger than"),
}


async def until(check: Any, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.02)


async def test_hostile_lists_over_mqtt_never_touch_the_session(
    harness: Any, tmp_path: Path
) -> None:
    async with harness.broker.client() as admin:
        await admin.publish(TOPIC, good_list(), qos=1, retain=True)
    bus, commands = EventBus(), CommandRouter()
    updates = bus.subscribe(AccessListUpdated, maxsize=100)
    access = AccessService(
        AccessConfig(
            gpio="mock",
            site_secret="site-secret-for-tests-0123456789",  # type: ignore[arg-type]
            readers=[SimulatedReaderConfig(name="sim", repeat_suppress=0)],
            source=MqttSourceConfig(),
        ),
        "laser-1",
        tmp_path / "access.db",
        bus,
        commands,
    )
    telemetry = harness.service(harness.config(access_list_topic=TOPIC), bus=bus)
    access_task = asyncio.create_task(access.run())
    try:
        async with harness.running(telemetry), harness.broker.client() as admin:
            first = await asyncio.wait_for(updates.get(), 10)
            assert first.ok, first.error
            await commands.call("present_badge", {"uid": ADA})
            await until(lambda: access.status()["relay_on"])
            for name, (body, phrase) in HOSTILE.items():
                await admin.publish(TOPIC, body, qos=1, retain=True)
                result = await asyncio.wait_for(updates.get(), 30)
                assert not result.ok and phrase in (result.error or ""), (name, result)
                status = access.status()
                assert status["relay_on"] and status["session"]["member_id"] == "m-ada", name
                assert status["access_list"]["members"] == 1
                assert not access_task.done()
            await admin.publish(TOPIC, good_list(3), qos=1, retain=True)
            result = await asyncio.wait_for(updates.get(), 10)
            assert result.ok and result.members == 3
            assert access.status()["session"]["member_id"] == "m-ada"
    finally:
        access_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await access_task
