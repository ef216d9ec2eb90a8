"""The ledger service: appends every closed session and job, signed and chained.

* Takes ``SessionUsageClosed`` and ``JobUsageClosed`` off the bus (the metering
  capability's public events) and appends each as a record in a thread.
* Publishes ``LedgerRecorded``: the telemetry outbox stores it before sending,
  so records reach the broker in order after an outage.
* Keeps a retained copy (key, records, head) on the broker when telemetry is
  configured (:mod:`gateway.ledger.mirror`), and POSTs records to the webhook
  when one is configured (:mod:`gateway.ledger.webhook`).
* Commands: ``ledger_key`` (the public key and head), ``ledger_correct`` (a
  correction record naming an earlier record; records are never edited).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from gateway.backoff import Backoff
from gateway.bus import Event, EventBus, Subscription
from gateway.commands import CommandError, CommandRequest, CommandRouter
from gateway.ledger import keys
from gateway.ledger.chain import Record, key_id
from gateway.ledger.config import LedgerConfig
from gateway.ledger.events import LedgerRecorded
from gateway.ledger.mirror import BrokerMirror
from gateway.ledger.store import LedgerStore
from gateway.ledger.webhook import Webhook
from gateway.metering.events import JobUsageClosed, SessionUsageClosed
from gateway.supervisor import Service
from gateway.telemetry.config import TelemetryConfig

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def body_of(event: Event) -> dict[str, Any]:
    """An event's fields (without ``ts``, which is the record's own) as plain JSON."""
    return {
        f.name: _plain(getattr(event, f.name))
        for f in dataclasses.fields(event)
        if f.name != "ts"
    }


def correction_body(original: Record, *, reason: str, cost: str, by: str) -> dict[str, Any]:
    return {
        "corrects": {"seq": original.seq, "hash": original.hash},
        "reason": reason,
        "cost": cost,
        "currency": original.body.get("currency", ""),
        "member_id": original.body.get("member_id"),
        "session_id": original.body.get("session_id"),
        "by": by,
    }


class LedgerService(Service):
    name = "ledger"
    optional = True

    def __init__(
        self,
        config: LedgerConfig,
        *,
        machine_id: str,
        db_path: Path,
        state_dir: Path,
        bus: EventBus,
        commands: CommandRouter,
        telemetry: TelemetryConfig | None = None,
        mirror: BrokerMirror | None = None,
        webhook_backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.machine_id = machine_id
        self._db_path = db_path
        self._key_path = state_dir / config.key_file
        self._bus = bus
        self._telemetry = telemetry
        self.store: LedgerStore | None = None
        self.mirror: BrokerMirror | None = mirror
        self.webhook: Webhook | None = None
        self._webhook_backoff = webhook_backoff
        self.appended = 0
        commands.register("ledger_key", self._key_command)
        commands.register("ledger_correct", self._correct_command)

    async def run(self) -> None:
        if not self.config.enabled:
            self.ready.set()
            return
        key = await asyncio.to_thread(keys.load_or_create, self._key_path)
        store = await asyncio.to_thread(LedgerStore, self._db_path, key, self.machine_id)
        self.store = store
        public = keys.public_text(key.public_key())
        sub: Subscription[Event] = self._bus.subscribe(
            SessionUsageClosed, JobUsageClosed, maxsize=10_000
        )
        try:
            async with asyncio.TaskGroup() as tg:
                t = self._telemetry
                if self.mirror is None and t is not None and t.enabled:
                    self.mirror = BrokerMirror(
                        store,
                        t,
                        prefix=t.topic_prefix(self.machine_id),
                        key_document=self.key_document(),
                        client_id=f"{t.resolved_client_id(self.machine_id)}-ledger"[-64:],
                    )
                if self.mirror is not None:
                    tg.create_task(self.mirror.run())
                if self.config.webhook.url is not None:
                    self.webhook = Webhook(
                        store, self.config.webhook, public_key=public, backoff=self._webhook_backoff
                    )
                    tg.create_task(self.webhook.run())
                tg.create_task(self._record(sub))
                log.info("ledger: %d records, key %s", len(store), key_id(key.public_key()))
                self.ready.set()
        finally:
            sub.close()
            while (event := sub.get_nowait()) is not None:
                await self._append_event(event)
            self.store = None
            await asyncio.to_thread(store.close)

    async def _record(self, sub: Subscription[Event]) -> None:
        async for event in sub:
            await self._append_event(event)

    async def _append_event(self, event: Event) -> None:
        kind = "session" if isinstance(event, SessionUsageClosed) else "job"
        await self.append(kind, event.ts, body_of(event))

    async def append(self, kind: str, ts: float, body: dict[str, Any]) -> Record:
        store = self.store
        if store is None:
            raise CommandError("not_running", "the ledger is not open yet; try again shortly")
        record = await asyncio.to_thread(store.append, kind, ts, body)
        self.appended += 1
        self._bus.publish(LedgerRecorded(record=record.as_dict()))
        for waiter in (self.mirror, self.webhook):
            if waiter is not None:
                waiter.wake.set()
        return record

    # ------------------------------------------------------------------ read surface

    def key_document(self) -> dict[str, Any]:
        store = self.store
        if store is None:
            raise CommandError("not_running", "the ledger is not open yet; try again shortly")
        public = store.key.public_key()
        return {
            "algorithm": "Ed25519",
            "public_key": keys.public_text(public),
            "key_id": key_id(public),
            "machine_id": self.machine_id,
        }

    async def _key_command(self, request: CommandRequest) -> dict[str, Any]:
        doc = self.key_document()
        assert self.store is not None
        head = await asyncio.to_thread(self.store.head)
        return {
            **doc,
            "records": head[0] if head else 0,
            "head_hash": head[1] if head else "",
            "broker_conflict": self.mirror.conflict if self.mirror is not None else None,
        }

    async def _correct_command(self, request: CommandRequest) -> dict[str, Any]:
        store = self.store
        if store is None:
            raise CommandError("not_running", "the ledger is not open yet; try again shortly")
        args = request.args
        seq, reason, cost = args.get("seq"), args.get("reason"), args.get("cost", "0.00")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(reason, str):
            raise CommandError(
                "bad_args", 'send {"seq": <record number>, "reason": "...", "cost": "0.00"}'
            )
        try:
            valid_cost = isinstance(cost, str) and Decimal(cost).is_finite()
        except InvalidOperation:
            valid_cost = False
        if not valid_cost or not reason.strip():
            raise CommandError(
                "bad_args", 'cost is a decimal string such as "0.00" and a reason is required'
            )
        original = await asyncio.to_thread(store.get, seq)
        if original is None:
            raise CommandError("not_found", f"there is no ledger record {seq}")
        body = correction_body(original, reason=reason, cost=cost, by=request.actor or "admin")
        record = await self.append("correction", time.time(), body)
        return {"seq": record.seq, "hash": record.hash, "corrects": seq}

