"""The ledger's broker copy and an MQTT meter over TLS, against a real Mosquitto with a
certificate made for the test (the same [telemetry] TLS files the daemon uses)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import aiomqtt

from gateway.backoff import Backoff
from gateway.ledger import keys
from gateway.ledger.mirror import BrokerMirror
from gateway.ledger.store import LedgerStore
from gateway.mqtt import tls_context
from gateway.telemetry.config import TelemetryConfig


async def test_the_broker_copy_goes_over_tls(tmp_path: Path, tls_broker: Any) -> None:
    config = TelemetryConfig(
        enabled=True, host=tls_broker.host, port=tls_broker.port, tls=True,
        ca_file=tls_broker.ca_file, keepalive=5,
    )
    key = keys.load_or_create(tmp_path / "k.pem")
    store = LedgerStore(tmp_path / "gateway.db", key, "printer-1")
    store.append("session", 1.0, {"n": 1})
    mirror = BrokerMirror(
        store, config, prefix="gateway/printer-1",
        key_document={"public_key": keys.public_text(key.public_key())}, client_id="tls-mirror",
        backoff=Backoff(initial=0.05, maximum=0.2, jitter=0.0),
    )
    task = asyncio.create_task(mirror.run())
    try:
        async with asyncio.timeout(10):
            while store.cursor("published") < 1:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    tls = tls_context(config)
    async with aiomqtt.Client(tls_broker.host, tls_broker.port, tls_context=tls) as client:
        await client.subscribe("gateway/printer-1/ledger/head", qos=1)
        async with asyncio.timeout(5):
            message = await anext(client.messages)
    assert isinstance(message.payload, bytes)
    assert json.loads(message.payload)["seq"] == 1
    store.close()


async def test_wrong_ca_is_refused_and_the_ledger_goes_on(
    tmp_path: Path, tls_broker: Any, make_certs: Any
) -> None:
    other_ca, _, _ = make_certs(tmp_path / "other")  # a CA that did not sign the broker
    config = TelemetryConfig(
        enabled=True, host=tls_broker.host, port=tls_broker.port, tls=True,
        ca_file=other_ca, keepalive=5,
    )
    key = keys.load_or_create(tmp_path / "k.pem")
    store = LedgerStore(tmp_path / "gateway.db", key, "printer-1")
    mirror = BrokerMirror(
        store, config, prefix="gateway/printer-1", key_document={}, client_id="tls-mirror",
        backoff=Backoff(initial=0.05, maximum=0.2, jitter=0.0),
    )
    task = asyncio.create_task(mirror.run())
    await asyncio.sleep(1.0)
    assert not mirror.connected.is_set()
    store.append("session", 1.0, {"n": 1})  # appending never waits for the broker
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert store.cursor("published") == 0
    store.close()
