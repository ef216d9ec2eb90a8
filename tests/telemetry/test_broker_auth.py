"""The example broker config and ACL in config/mosquitto, with the gateway logging in."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.access.events import AccessListReceived
from gateway.bus import EventBus
from gateway.commands import CommandRequest, CommandRouter
from gateway.telemetry.events import BrokerDisconnected

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "mosquitto"
USERS = {
    "m1": "pw-m1",
    "admin": "pw-admin",
    "intruder": "pw-intruder",
    "registry": "pw-registry",
    "homeassistant": "pw-ha",
}


def example_broker_config() -> str:
    """gateway-broker.conf with paths moved into the test's directory."""
    text = (EXAMPLES / "gateway-broker.conf").read_text()
    replacements = {
        "listener 1883\n": "listener {port} 127.0.0.1\n",
        "/etc/mosquitto/passwd": "{dir}/passwd",
        "/etc/mosquitto/acl": str(EXAMPLES / "acl"),
        "/var/lib/mosquitto/": "{dir}/",
        "log_dest syslog": "log_dest file {dir}/mosquitto.log",
    }
    for old, new in replacements.items():
        assert old in text, f"gateway-broker.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text + ("user root\n" if os.geteuid() == 0 else "")


@pytest.fixture
def secured(broker_factory: Callable[..., Any]) -> Any:
    broker = broker_factory("secured", users=USERS, config_text=example_broker_config())
    broker.start()
    return broker


def login(broker: Any, user: str, **kwargs: Any) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, username=user, password=USERS[user], **kwargs)


async def test_anonymous_clients_are_refused(secured: Any) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with secured.client():
            pass


async def test_acl_lets_admin_command_and_keeps_others_out(
    secured: Any, tmp_path: Any, harness: Any
) -> None:
    router = CommandRouter()
    calls: list[str] = []

    async def pause(request: CommandRequest) -> dict[str, Any]:
        calls.append(str(request.args.get("who")))
        return {"paused": True}

    router.register("pause", pause)
    async with login(secured, "registry") as registry:
        await registry.publish("space/access-list", b"[]", qos=1, retain=True)
    bus = EventBus()
    access_lists = bus.subscribe(AccessListReceived)
    config = harness.config(
        port=secured.port,
        username="m1",
        password="pw-m1",
        access_list_topic="space/access-list",
        home_assistant=True,
    )
    service = harness.service(config, bus=bus, commands=router)
    async with (
        harness.running(service),
        login(secured, "admin") as admin,
        login(secured, "intruder") as intruder,
        login(secured, "homeassistant") as ha,
    ):
        await admin.subscribe("gateway/#", qos=1)
        await ha.subscribe("homeassistant/#", qos=1)
        body = b'{"request_id": "%s", "args": {"who": "%s"}}'
        await intruder.publish("gateway/m1/cmd/pause", body % (b"r1", b"intruder"), qos=1)
        await admin.publish("gateway/m1/cmd/pause", body % (b"r2", b"admin"), qos=1)
        seen: dict[str, bytes] = {}
        async with asyncio.timeout(5):
            async for m in admin.messages:
                seen[m.topic.value] = m.payload if isinstance(m.payload, bytes) else b""
                if "gateway/m1/cmd/pause/result" in seen and "gateway/m1/status" in seen:
                    break
        async with asyncio.timeout(5):
            discovery = await anext(aiter(ha.messages))
        async with asyncio.timeout(5):
            access_list = await access_lists.get()
        await asyncio.sleep(0.3)
    assert calls == ["admin"]  # the intruder's command never reached the router
    assert b'"request_id":"r2"' in seen["gateway/m1/cmd/pause/result"]
    assert seen["gateway/m1/status"] == b"online"
    assert discovery.topic.value.startswith("homeassistant/")
    assert access_list.payload == b"[]"


async def test_wrong_password_is_retried_not_fatal(secured: Any, harness: Any) -> None:
    bus = EventBus()
    down = bus.subscribe(BrokerDisconnected)
    config = harness.config(port=secured.port, username="m1", password="wrong")
    service = harness.service(config, bus=bus)
    async with harness.running(service, connected=False):
        async with asyncio.timeout(5):
            event = await down.get()
        await asyncio.sleep(0.3)
        assert not service.connected.is_set()
    assert "password" in event.error
