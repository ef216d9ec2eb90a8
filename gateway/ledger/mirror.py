"""The ledger's retained copy on the MQTT broker, for ``gateway ledger verify --from-broker``.

Under ``<prefix>/ledger/`` (all retained, QoS 1):

* ``public_key``: ``{"algorithm": "Ed25519", "public_key": <base64>, "key_id", "machine_id"}``
* ``record/<seq>``: each record in its signed JSON form, published in seq order;
* ``head``: ``{"seq", "hash"}`` of the newest record, published after it;
* ``conflict``: published instead of overwriting when the broker's head is not a
  record of this gateway's chain (an older backup was restored, or the state
  folder was replaced): the broker keeps the chain it had, and the operator
  decides (move the old copy aside by clearing those retained topics).

Published by its own small client (telemetry's outbox carries the records as
``event/ledger`` for live subscribers; this copy is what a verifier reads back
later).  How far it got is kept in the ledger table's meta, so a restart or an
outage resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiomqtt

from gateway.backoff import Backoff
from gateway.ledger.store import LedgerStore
from gateway.mqtt import BrokerSettingsError, client_options, tls_context
from gateway.telemetry.config import TelemetryConfig

log = logging.getLogger(__name__)

PAGE = 200
HEAD_WAIT = 2.0  # seconds to wait for the broker's retained head after subscribing


def topics(prefix: str) -> dict[str, str]:
    base = f"{prefix}/ledger"
    return {
        "key": f"{base}/public_key",
        "head": f"{base}/head",
        "records": f"{base}/record",
        "conflict": f"{base}/conflict",
    }


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class BrokerMirror:
    def __init__(
        self,
        store: LedgerStore,
        broker: TelemetryConfig,
        *,
        prefix: str,
        key_document: dict[str, Any],
        client_id: str,
        backoff: Backoff | None = None,
    ) -> None:
        self._store = store
        self._broker = broker
        self.topics = topics(prefix)
        self._key_document = key_document
        self._client_id = client_id
        self._backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        self.wake = asyncio.Event()
        self.connected = asyncio.Event()
        #: Why the copy stopped (the broker's head is not in this chain), else None.
        self.conflict: str | None = None

    async def run(self) -> None:
        try:
            tls = await asyncio.to_thread(tls_context, self._broker)
        except BrokerSettingsError as err:
            # The ledger itself goes on; only its broker copy waits for a fixed config.
            log.error("ledger: no broker copy: %s", err)
            return
        options = client_options(self._broker, identifier=self._client_id, tls=tls)
        while True:
            try:
                async with aiomqtt.Client(**options) as client:
                    await client.publish(
                        self.topics["key"], _json(self._key_document), qos=1, retain=True
                    )
                    self.connected.set()
                    self._backoff.reset()
                    if await self._conflicts(client):
                        await asyncio.Event().wait()  # parked until the daemon restarts
                    await self._mirror(client)
            except aiomqtt.MqttError as err:
                self.connected.clear()
                delay = self._backoff.next_delay()
                log.info("ledger: broker copy paused (%s); retrying in %.1f s", err, delay)
                await asyncio.sleep(delay)

    async def _broker_head(self, client: aiomqtt.Client) -> tuple[int, str] | None:
        """The retained head on the broker, if any (retained messages come at once)."""
        await client.subscribe(self.topics["head"], qos=1)
        head: tuple[int, str] | None = None
        try:
            async with asyncio.timeout(HEAD_WAIT):
                async for message in client.messages:
                    if message.topic.value != self.topics["head"]:
                        continue
                    body = message.payload if isinstance(message.payload, bytes) else b""
                    if body:
                        data = json.loads(body)
                        head = (int(data["seq"]), str(data["hash"]))
                    break
        except TimeoutError:
            pass
        except (ValueError, KeyError, TypeError):
            log.warning("ledger: the broker's %s is not a ledger head", self.topics["head"])
        await client.unsubscribe(self.topics["head"])
        return head

    async def _conflicts(self, client: aiomqtt.Client) -> bool:
        broker = await self._broker_head(client)
        if broker is None:
            return False
        seq, digest = broker
        local = await asyncio.to_thread(self._store.get, seq)
        if local is not None and local.hash == digest:
            return False
        mine = await asyncio.to_thread(self._store.head)
        self.conflict = (
            f"the broker holds ledger records up to seq {seq} that are not this gateway's "
            f"(its head is seq {mine[0] if mine else 0}): was an older backup restored? "
            "The broker's copy is left as it was; compare both with `gateway ledger verify` "
            f"and `--from-broker`, then clear {self.topics['records']}/# to start a new copy"
        )
        log.error("ledger: %s", self.conflict)
        document = {
            "broker_head": {"seq": seq, "hash": digest},
            "gateway_head": {"seq": mine[0], "hash": mine[1]} if mine else None,
            "message": self.conflict,
        }
        await client.publish(self.topics["conflict"], _json(document), qos=1, retain=True)
        return True

    async def _mirror(self, client: aiomqtt.Client) -> None:
        while True:
            self.wake.clear()
            done = await asyncio.to_thread(self._store.cursor, "published")
            records = await asyncio.to_thread(self._store.records, done, PAGE)
            if not records:
                await self.wake.wait()
                continue
            for r in records:
                await client.publish(
                    f"{self.topics['records']}/{r.seq}", _json(r.as_dict()), qos=1, retain=True
                )
            last = records[-1]
            await client.publish(
                self.topics["head"], _json({"seq": last.seq, "hash": last.hash}), qos=1, retain=True
            )
            await asyncio.to_thread(self._store.set_cursor, "published", last.seq)
