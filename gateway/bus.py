"""A small typed in-process event bus.

Capabilities never import each other's internals: they publish frozen event
dataclasses here and subscribe to the types they care about.  Publishing never
blocks and never awaits, so a slow subscriber (a web page, the MQTT outbox) can
never delay a badge decision or a serial ``ok``.  Each subscriber has a bounded
queue; when it is full the oldest event is dropped and counted, so memory stays
bounded on a 512 MB Pi.

    async with bus.subscribe(JobProgress, JobFinished) as events:
        async for event in events:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Generic, TypeVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event on the bus.  ``ts`` is wall-clock seconds since the epoch.

    ``topic`` names the event for the outside world (MQTT ``event/<topic>``, the
    web UI's live stream); events without one stay inside the daemon.
    """

    topic: ClassVar[str | None] = None
    ts: float = field(default_factory=time.time)


E = TypeVar("E", bound=Event)


class Subscription(Generic[E]):
    """A bounded queue of events of the subscribed types, read with ``async for``."""

    def __init__(self, bus: EventBus, types: tuple[type[E], ...], maxsize: int) -> None:
        self._bus = bus
        self.types = types
        self._queue: asyncio.Queue[E] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def _offer(self, event: E) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> E:
        return await self._queue.get()

    def get_nowait(self) -> E | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def pending(self) -> int:
        return self._queue.qsize()

    def __aiter__(self) -> AsyncIterator[E]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[E]:
        while True:
            yield await self._queue.get()

    def close(self) -> None:
        self._bus._remove(self)

    async def __aenter__(self) -> Subscription[E]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __enter__(self) -> Subscription[E]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventBus:
    """Fan-out of events to subscribers by type (subclasses match their bases)."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription[Event]] = []
        self.published = 0

    def subscribe(self, *types: type[E], maxsize: int = 1000) -> Subscription[E]:
        """Subscribe to events that are instances of any of ``types``."""
        if not types:
            raise ValueError("subscribe() needs at least one event type")
        sub: Subscription[E] = Subscription(self, types, maxsize)
        self._subscriptions.append(sub)  # type: ignore[arg-type]
        return sub

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every matching subscriber without blocking."""
        self.published += 1
        for sub in self._subscriptions:
            if isinstance(event, sub.types):
                sub._offer(event)

    def _remove(self, sub: Subscription[E]) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(sub)  # type: ignore[arg-type]

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
