"""``GET /api/events``: the daemon's events pushed to screens as server-sent events.

The stream opens with ``hello`` (the machine's and the access capability's full
status, so a screen needs no other request), then carries every bus event that
has a ``topic`` (``state``, ``job_progress``, ``session_started``,
``access_denied``...) plus the access snapshot as ``access_state``, each as
``event: <topic>`` and ``data: <the event's fields as JSON>``.  A ``ping`` event
after ``HEARTBEAT`` quiet seconds keeps proxies from closing an idle stream and
lets a screen tell a quiet gateway from a hung one (a comment line would do the
first, but scripts never see comments).

A slow client never slows the daemon: its subscription is bounded (the bus
drops the oldest event), and when several snapshots of one kind are waiting
only the newest is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.access.events import AccessState
from gateway.bus import Event
from gateway.machine.events import MachineStatus
from gateway.tasks import cancel_and_wait
from gateway.web.context import WebContext

HEARTBEAT = 15.0
MAX_STREAMS = 32
#: Events that are whole snapshots: only the newest waiting one of each is sent.
SNAPSHOTS = (MachineStatus, AccessState)


def topic_of(event: Event) -> str | None:
    if isinstance(event, AccessState):
        return "access_state"
    return type(event).topic


def frame(name: str, data: Any) -> str:
    text = json.dumps(data, default=str, separators=(",", ":"))
    return f"event: {name}\ndata: {text}\n\n"


def hello(ctx: WebContext) -> dict[str, Any]:
    return {
        "machine": ctx.machine.status(),
        "access": ctx.access_status(),
        "simulation": ctx.simulation,
    }


def _coalesce(events: list[Event]) -> list[Event]:
    newest: dict[type[Event], int] = {}
    for i, e in enumerate(events):
        if isinstance(e, SNAPSHOTS):
            newest[type(e)] = i
    return [e for i, e in enumerate(events) if not isinstance(e, SNAPSHOTS) or newest[type(e)] == i]


async def stream(ctx: WebContext) -> AsyncIterator[str]:
    """The frames of one client's stream, until the client leaves or the server stops."""
    ctx.metrics.live_streams += 1
    try:
        with ctx.gw.bus.subscribe(Event, maxsize=256) as events:
            yield "retry: 2000\n\n"
            yield frame("hello", hello(ctx))
            stopping = asyncio.create_task(ctx.stopping.wait())
            try:
                while not ctx.stopping.is_set():
                    get = asyncio.create_task(events.get())
                    try:
                        done, _ = await asyncio.wait(
                            {get, stopping},
                            timeout=HEARTBEAT,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                    finally:
                        await cancel_and_wait([get])
                    if get not in done or get.cancelled():
                        if not ctx.stopping.is_set():
                            yield frame("ping", {"ts": round(time.time(), 3)})
                        continue
                    batch = [get.result()]
                    while (more := events.get_nowait()) is not None:
                        batch.append(more)
                    chunk = "".join(
                        frame(name, dataclasses.asdict(e))
                        for e in _coalesce(batch)
                        if (name := topic_of(e)) is not None
                    )
                    if chunk:
                        yield chunk
            finally:
                await cancel_and_wait([stopping])
    finally:
        ctx.metrics.live_streams -= 1
