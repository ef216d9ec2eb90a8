"""The membership webhook: records POSTed in order, retried with backoff until accepted."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.backoff import Backoff
from gateway.bus import EventBus
from gateway.commands import CommandRouter
from gateway.ledger.chain import Record, verify_chain
from gateway.ledger.config import LedgerConfig
from gateway.ledger.keys import parse_public
from gateway.ledger.service import LedgerService
from gateway.metering.events import JobUsageClosed


class Receiver:
    """A membership system's endpoint on loopback: refuses the first ``refuse`` posts."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.accepted: list[dict[str, Any]] = []
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:] if line)
        }
        body = json.loads(await reader.readexactly(int(headers["content-length"])))
        self.posts.append((headers, body))
        if self.refuse > 0:
            self.refuse -= 1
            status = "503 Service Unavailable"
        else:
            self.accepted.append(body)
            status = "204 No Content"
        reply = f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        writer.write(reply.encode())
        await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def receiver(refuse: int) -> AsyncIterator[Receiver]:
    r = Receiver(refuse)
    server = await asyncio.start_server(r.serve, "127.0.0.1", 0)
    r.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks/usage"
    try:
        yield r
    finally:
        server.close()
        await server.wait_closed()


def job(n: int) -> JobUsageClosed:
    return JobUsageClosed(
        job_id=n, file="cube.gcode", outcome="completed", started=1.7e9, ended=1.7e9 + 60,
        busy_seconds=60.0, energy_wh=5.0, estimated=False, grams=3.0, lines_done=10,
        lines_total=10, session_id="s1", member_id="m-ada", cost="0.20", currency="EUR",
    )


async def test_records_reach_the_membership_system_in_order_after_refusals(
    tmp_path: Path,
) -> None:
    async with receiver(refuse=3) as r:
        bus = EventBus()
        config = LedgerConfig(webhook={"url": r.url, "secret": "s3cret", "timeout": 2})  # type: ignore[arg-type]
        service = LedgerService(
            config, machine_id="printer-1", db_path=tmp_path / "gateway.db",
            state_dir=tmp_path, bus=bus, commands=CommandRouter(),
            webhook_backoff=Backoff(initial=0.05, maximum=0.2, jitter=0.0),
        )
        task = asyncio.create_task(service.run())
        try:
            await asyncio.wait_for(service.ready.wait(), 10)
            for n in range(1, 6):
                bus.publish(job(n))
            async with asyncio.timeout(15):
                while len(r.accepted) < 5:
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [b["record"]["seq"] for b in r.accepted] == [1, 2, 3, 4, 5]
    assert len(r.posts) == 8  # three refusals of record 1, then each once
    headers, first = r.posts[0]
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["idempotency-key"] == "printer-1-1"
    assert first["schema"] == 1 and first["machine_id"] == "printer-1"
    records = [Record.from_dict(b["record"]) for b in r.accepted]
    assert verify_chain(records, parse_public(first["public_key"])).ok
