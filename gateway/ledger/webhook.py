"""The optional webhook: each ledger record POSTed to the membership system, in order.

The ledger table is the outbox: a cursor (``webhook_seq``) remembers the last
record the endpoint acknowledged with a 2xx, so a restart, an outage or a 500
resumes from there, in seq order, with the shared backoff between attempts.
The body (see the README's "JSON payload for membership systems")::

    {"schema": 1, "machine_id": ..., "public_key": <base64 Ed25519>, "record": {...}}

``Idempotency-Key: <machine_id>-<seq>`` lets the receiver ignore a repeat (a
timeout after it had already stored the record).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from gateway.backoff import Backoff
from gateway.ledger.chain import Record
from gateway.ledger.config import WebhookConfig
from gateway.ledger.store import LedgerStore

log = logging.getLogger(__name__)

SCHEMA = 1


def payload(record: Record, *, public_key: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "machine_id": record.machine_id,
        "public_key": public_key,
        "record": record.as_dict(),
    }


class Webhook:
    def __init__(
        self,
        store: LedgerStore,
        config: WebhookConfig,
        *,
        public_key: str,
        backoff: Backoff | None = None,
    ) -> None:
        if config.url is None:
            raise ValueError("the webhook needs ledger.webhook.url")
        self._store = store
        self._config = config
        self._url = str(config.url)
        self._public_key = public_key
        self._backoff = backoff or Backoff(initial=2.0, maximum=config.max_delay)
        self.wake = asyncio.Event()
        self.delivered = 0
        self.failures = 0

    def _headers(self, record: Record) -> dict[str, str]:
        headers = {"Idempotency-Key": f"{record.machine_id}-{record.seq}"}
        if self._config.secret is not None:
            headers["Authorization"] = f"Bearer {self._config.secret.get_secret_value()}"
        return headers

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self._config.timeout) as client:
            while True:
                self.wake.clear()
                done = await asyncio.to_thread(self._store.cursor, "webhook")
                records = await asyncio.to_thread(self._store.records, done, 50)
                if not records:
                    await self.wake.wait()
                    continue
                for record in records:
                    while not await self._post(client, record):
                        await asyncio.sleep(self._backoff.next_delay())
                    self._backoff.reset()
                    await asyncio.to_thread(self._store.set_cursor, "webhook", record.seq)
                    self.delivered += 1

    async def _post(self, client: httpx.AsyncClient, record: Record) -> bool:
        try:
            reply = await client.post(
                self._url,
                json=payload(record, public_key=self._public_key),
                headers=self._headers(record),
            )
        except httpx.HTTPError as err:
            self.failures += 1
            log.warning(
                "ledger webhook: %s unreachable (%s); record %d will be retried",
                self._url,
                str(err) or type(err).__name__,
                record.seq,
            )
            return False
        if 200 <= reply.status_code < 300:
            return True
        self.failures += 1
        log.warning(
            "ledger webhook: %s answered %d to record %d; retrying (fix the receiver: "
            "records wait in order until it accepts them)",
            self._url,
            reply.status_code,
            record.seq,
        )
        return False
