"""Inductions granted at the machine, pushed to the membership system's webhook.

Every grant is first a row in ``access_inductions`` (the ``unsynced_inductions``
queue) and an ``induction`` event, which the telemetry capability stores in its
outbox and publishes over MQTT (``<prefix>/event/induction``) until the broker
has it.  With ``[access.policy.grants] webhook`` set, this pusher also POSTs
the queue there::

    {"machine_id": "laser-1",
     "inductions": [{"id": 7, "trainer_id": "m-tess", "member_id": "m-nia",
                     "machine_id": "laser-1", "level": "supervised",
                     "at": "2026-11-30T10:00:00+00:00"}]}

A 2xx answer marks the rows pushed; anything else is retried with the shared
backoff, and rows survive restarts.  A row stays in the queue (``synced`` 0)
until an access list shows the induction, so the machine honours it meanwhile.

Over MQTT the whole queue is also re-announced as an ``inductions_pending``
event at start-up and every ``resend_interval`` while it is not empty: a
membership system that was offline when the ``induction`` event went out (a
subscriber without a persistent session misses it) still gets every grant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from gateway.access.events import InductionsPending
from gateway.access.policy_config import GrantsConfig
from gateway.access.store import AccessStore
from gateway.backoff import Backoff
from gateway.bus import EventBus

log = logging.getLogger(__name__)

IDLE_CHECK = 30.0  # look at the queue at least this often
SETTLE = 0.2  # let the store's writer thread insert the row that woke us


class GrantPusher:
    """Posts unpushed inductions to the webhook; ``wake`` after recording one."""

    def __init__(
        self,
        cfg: GrantsConfig,
        machine_id: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.cfg = cfg
        self.machine_id = machine_id
        self.enabled = cfg.webhook is not None
        self.pushed = 0
        self.last_error: str | None = None
        self._transport = transport
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def push_once(self, client: httpx.AsyncClient, store: AccessStore) -> bool | None:
        """One attempt: True if rows were delivered, None if there was nothing to send."""
        assert self.cfg.webhook is not None
        queue = await asyncio.to_thread(store.unsynced_inductions)
        pending = [i for i in queue if not i.pushed and i.machine_id == self.machine_id]
        if not pending:
            return None
        body = {"machine_id": self.machine_id, "inductions": [i.as_dict() for i in pending]}
        try:
            response = await client.post(self.cfg.webhook, json=body)
        except httpx.HTTPError as err:
            self.last_error = f"{type(err).__name__} {err}".strip()
            return False
        if not 200 <= response.status_code < 300:
            denied = response.status_code in (401, 403)
            hint = " (check access.policy.grants.token)" if denied else ""
            self.last_error = f"the webhook answered HTTP {response.status_code}{hint}"
            return False
        await asyncio.to_thread(store.mark_inductions_pushed, [i.id for i in pending])
        self.pushed += len(pending)
        self.last_error = None
        return True

    async def run(self, store: AccessStore) -> None:
        headers = {"Content-Type": "application/json"}
        if self.cfg.token is not None:
            headers["Authorization"] = f"Bearer {self.cfg.token.get_secret_value()}"
        backoff = Backoff(initial=2.0, maximum=self.cfg.retry_max)
        async with httpx.AsyncClient(
            timeout=self.cfg.timeout, headers=headers, transport=self._transport
        ) as client:
            while True:
                await asyncio.sleep(SETTLE)
                result = await self.push_once(client, store)
                if result is False:
                    delay = backoff.next_delay()
                    log.warning(
                        "could not push inductions to the grant webhook (%s); retrying in %.0f s",
                        self.last_error,
                        delay,
                    )
                    await self._sleep(delay)
                    continue
                backoff.reset()
                if result is None:
                    await self._sleep(IDLE_CHECK)


async def announce_pending(
    store: AccessStore, bus: EventBus, machine_id: str, interval: float
) -> None:
    """Publish the unconfirmed grants now and every ``interval`` seconds while any remain."""
    while True:
        queue = await asyncio.to_thread(store.unsynced_inductions)
        mine = tuple(i.as_dict() for i in queue if i.machine_id == machine_id)
        if mine:
            log.info("re-announcing %d induction(s) not yet in the access list", len(mine))
            bus.publish(InductionsPending(machine_id=machine_id, inductions=mine))
        await asyncio.sleep(interval)
