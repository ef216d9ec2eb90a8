"""``gateway fleet``: a live terminal table of every gateway publishing to a broker.

It subscribes to ``<root>/+/status``, ``<root>/+/state`` and ``<root>/+/event/#``
and redraws one row per machine.  :class:`FleetView` is the pure part (topics
and payloads in, text out); :func:`run_fleet` owns the connection and the
terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import aiomqtt

from gateway.backoff import Backoff
from gateway.telemetry.errors import TelemetryError

CLEAR = "\x1b[H\x1b[2J"
REDRAW_INTERVAL = 0.5
COLUMNS = ("MACHINE", "STATUS", "STATE", "JOB", "MEMBER", "LAST SEEN", "LAST EVENT")


class FleetError(TelemetryError):
    """The fleet view cannot reach or read the broker."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...`` (TLS, port 8883)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise FleetError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as err:
        raise FleetError(f"broker URL {url!r} has a bad port: {err}") from err
    return BrokerAddress(
        host=parts.hostname or "localhost",
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


@dataclass
class GatewayRow:
    machine_id: str
    status: str = "?"
    state: str = ""
    job_progress: float | None = None
    member: str | None = None
    last_seen: float = 0.0
    last_event: str = ""


def _timestamp(document: dict[str, Any], fallback: float) -> float:
    ts = document.get("ts")
    if isinstance(ts, str):
        with contextlib.suppress(ValueError):
            return min(datetime.fromisoformat(ts).timestamp(), fallback)
    return fallback


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h ago"
    return f"{seconds / 86400:.1f}d ago"


class FleetView:
    """The table's rows, updated from MQTT messages."""

    def __init__(self, prefix_root: str = "gateway") -> None:
        self.prefix_root = prefix_root.rstrip("/")
        self.rows: dict[str, GatewayRow] = {}

    @property
    def filters(self) -> tuple[str, ...]:
        root = self.prefix_root
        return (f"{root}/+/status", f"{root}/+/state", f"{root}/+/event/#")

    def update(self, topic: str, payload: bytes, now: float) -> bool:
        """Apply one message; return whether it changed anything."""
        head = f"{self.prefix_root}/"
        if not topic.startswith(head):
            return False
        machine_id, _, rest = topic[len(head) :].partition("/")
        if not machine_id or not rest:
            return False
        text = payload.decode("utf-8", errors="replace")
        if rest == "status":
            if not text:
                return False  # a cleared retained status
            row = self.rows.setdefault(machine_id, GatewayRow(machine_id))
            row.status = text.strip()
            row.last_seen = max(row.last_seen, now)
            return True
        try:
            document = json.loads(text)
        except ValueError:
            return False
        if not isinstance(document, dict):
            return False
        row = self.rows.setdefault(machine_id, GatewayRow(machine_id))
        row.last_seen = max(row.last_seen, _timestamp(document, now))
        if rest == "state":
            row.state = str(document.get("state") or "")
            job = document.get("job")
            progress = job.get("progress") if isinstance(job, dict) else None
            row.job_progress = float(progress) if isinstance(progress, int | float) else None
            session = document.get("session")
            member = session.get("member") if isinstance(session, dict) else None
            row.member = str(member) if member else None
            return True
        if rest.startswith("event/"):
            row.last_event = str(document.get("type") or rest[len("event/") :])
            return True
        return False

    def render(self, now: float) -> str:
        """A plain-text table, one row per machine, sorted by id."""
        lines: list[tuple[str, ...]] = [COLUMNS]
        for row in sorted(self.rows.values(), key=lambda r: r.machine_id):
            lines.append(
                (
                    row.machine_id,
                    row.status,
                    row.state or "-",
                    f"{row.job_progress:.1f}%" if row.job_progress is not None else "-",
                    row.member or "-",
                    _age(now - row.last_seen) if row.last_seen else "-",
                    row.last_event or "-",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
        text = [
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
            for line in lines
        ]
        if not self.rows:
            text.append(f"(no gateways under {self.prefix_root}/ yet)")
        return "\n".join(text) + "\n"


def _client(address: BrokerAddress) -> aiomqtt.Client:
    return aiomqtt.Client(
        address.host,
        address.port,
        username=address.username,
        password=address.password,
        tls_context=ssl.create_default_context() if address.tls else None,
        timeout=10.0,
    )


async def _watch(client: aiomqtt.Client, view: FleetView, changed: asyncio.Event) -> None:
    for topic_filter in view.filters:
        await client.subscribe(topic_filter, qos=0)
    async for message in client.messages:
        payload = message.payload
        data = payload if isinstance(payload, bytes) else str(payload or "").encode()
        if view.update(message.topic.value, data, time.time()):
            changed.set()


async def run_fleet(
    broker_url: str,
    prefix_root: str = "gateway",
    once: bool = False,
    out: TextIO = sys.stdout,
    *,
    settle: float = 1.5,
) -> None:
    """Show the fleet on ``out``: live until cancelled, or once after ``settle`` s.

    With ``once`` the retained ``status``/``state`` messages arrive within the
    settle time; the table is printed once without terminal control codes.
    """
    address = parse_broker_url(broker_url)
    view = FleetView(prefix_root)
    changed = asyncio.Event()
    if once:
        try:
            async with _client(address) as client:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settle):
                        await _watch(client, view, changed)
        except aiomqtt.MqttError as err:
            where = f"{address.host}:{address.port}"
            raise FleetError(f"cannot read the fleet from {where}: {err}") from err
        out.write(view.render(time.time()))
        out.flush()
        return

    backoff = Backoff(initial=0.5, maximum=10.0)
    error = ""

    async def draw() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await changed.wait()  # redraw on change, and each second for the ages
            changed.clear()
            footer = f"\n{error}\n" if error else ""
            out.write(CLEAR + view.render(time.time()) + footer)
            out.flush()
            await asyncio.sleep(REDRAW_INTERVAL)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(draw())
        while True:
            try:
                async with _client(address) as client:
                    backoff.reset()
                    error = ""
                    changed.set()
                    await _watch(client, view, changed)
            except aiomqtt.MqttError as err:
                delay = backoff.next_delay()
                error = f"broker {address.host}:{address.port}: {err}; retrying in {delay:.0f} s"
                changed.set()
                await asyncio.sleep(delay)
