"""What every request of one web app shares: the gateway, the token table, the metrics.

One :class:`WebContext` per app, stored as ``app.state.web``.  Its constructor
only validates; :meth:`WebContext.start` opens the token table (the app's
lifespan calls it) and :meth:`WebContext.close` releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from gateway.bus import Event
from gateway.store import Store
from gateway.web import auth
from gateway.web.metrics import WebMetrics
from gateway.web.timeline import Timeline

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gateway.access.service import AccessService
    from gateway.daemon import Gateway


def _local_name(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        return False
    return True


#: A token's ``last_used_at`` is written at most this often (seconds), sparing the SD card.
TOUCH_INTERVAL = 60.0


class WebContext:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.config = gw.config.web
        self.machine = gw.machine
        self.simulation = gw.config.simulation.enabled
        self.kiosk_networks = [
            ipaddress.ip_network(a, strict=False) for a in self.config.kiosk_addresses
        ]
        self.auth_limit = auth.FailedAuthLimit(self.config.auth_failures_per_minute)
        self.metrics = WebMetrics(gw)
        self.timeline = Timeline()
        #: Set when the server begins to stop, so live streams end at once.
        self.stopping = asyncio.Event()
        self._store: Store | None = None
        self._touched: dict[str, float] = {}

    @property
    def access(self) -> AccessService | None:
        """The access capability when it is configured and enabled."""
        access = self.gw.access
        if access is None or not access.config.enabled:
            return None
        return access

    def access_status(self) -> dict[str, Any] | None:
        access = self.access
        return None if access is None else access.status()

    def session_open(self) -> bool:
        """True if a member's badge session is open (always, without access control)."""
        status = self.access_status()
        return status is None or status.get("session") is not None

    # -- lifetime ------------------------------------------------------------------------

    async def start(self) -> None:
        self.stopping.clear()
        if self._store is None:
            store = await asyncio.to_thread(Store, self.gw.config.storage.database, "web")
            await store.run(auth.ensure_schema, store.db)
            self._store = store

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await asyncio.to_thread(store.close)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """The app's lifespan: the token table and the metrics' event counter."""
        await self.start()
        try:
            async with asyncio.TaskGroup() as tg:
                counter = tg.create_task(self.metrics.count_events(), name="web:metrics")
                recorder = tg.create_task(self.record_timeline(), name="web:timeline")
                try:
                    yield
                finally:
                    self.stopping.set()
                    counter.cancel()
                    recorder.cancel()
        finally:
            await self.close()

    async def record_timeline(self) -> None:
        """Feed the admin page's timeline from the bus, for as long as the app runs."""
        with self.gw.bus.subscribe(Event, maxsize=1000) as events:
            async for event in events:
                self.timeline.record(event)

    # -- callers -------------------------------------------------------------------------

    def is_kiosk(self, conn: HTTPConnection) -> bool:
        """From the touchscreen: a kiosk address, asking for the gateway by IP or localhost.

        The name check stops DNS rebinding: a web page whose own name resolves to
        127.0.0.1 would otherwise act as the kiosk from a browser on the Pi.
        """
        client = conn.client.host if conn.client else ""
        try:
            addr = ipaddress.ip_address(client)
        except ValueError:
            return False
        if not any(addr in net for net in self.kiosk_networks):
            return False
        return _local_name(conn.url.hostname or "")

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the web app's token table is not open (lifespan not started)")
        return self._store

    async def find_token(self, secret: str) -> auth.TokenRecord | None:
        store = self.store
        record = await store.run(auth.find_token, store.db, secret)
        if record is not None:
            now = time.time()
            if now - self._touched.get(record.name, 0.0) >= TOUCH_INTERVAL:
                self._touched[record.name] = now
                await store.run(auth.touch_token, store.db, record.name, now)
        return record
