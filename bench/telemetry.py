"""Telemetry benchmark: events per second through the outbox, and backlog drain time.

Starts its own Mosquitto on a free loopback port (persistence on), runs the
TelemetryService with the SQLite outbox as the daemon does, and counts events
at an MQTT subscriber in a child process, so this process's CPU time is the
gateway's own (bus, outbox, MQTT client).

1. Throughput: N events published on the bus; events/s = N / time until the
   subscriber has the last one (every event written to SQLite, published at
   QoS 1, PUBACKed and deleted).  Target >= 2,000 events/s.
2. Outage: the broker is stopped, 10,000 events are published into the outbox,
   the broker is started; drain time = broker start until the subscriber has
   all 10,000.  Target < 10 s.

Ratios are printed so that > 1 means better than the target.  Figures are
printed, never asserted; the exit status is non-zero only if Mosquitto is
missing.

    python bench/telemetry.py [--events 20000] [--backlog 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from gateway.backoff import Backoff
from gateway.bus import EventBus
from gateway.commands import CommandRouter
from gateway.machine.events import JobPaused
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.service import TelemetryService

RATE_TARGET = 2000.0  # events/s
DRAIN_TARGET = 10.0  # seconds for a 10,000-event backlog
CHUNK = 500  # events published on the bus between yields to the event loop


class Mosquitto:
    def __init__(self, directory: Path) -> None:
        self.executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.conf = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {directory}/",
            "max_queued_messages 0",
            "max_inflight_messages 100",
            "log_dest none",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.executable, "-c", str(self.conf)], stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None


class Counter:
    """A persistent-session subscriber counting distinct event ids; survives outages.

    It runs in a child process (``--counter PORT``) so that the parent's CPU time
    is the gateway's alone; it prints its count whenever it changes.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.ids: set[str] = set()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="bench-counter", clean_session=False
                ) as client:
                    await client.subscribe("gateway/bench/event/#", qos=1)
                    print("connected", flush=True)
                    async for message in client.messages:
                        payload = message.payload
                        if isinstance(payload, bytes | bytearray):
                            self.ids.add(json.loads(payload)["event_id"])
                            self.changed.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def report(self) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            print(len(self.ids), flush=True)
            await asyncio.sleep(0.02)


async def count(port: int) -> None:
    counter = Counter(port)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(counter.run())
        tg.create_task(counter.report())


class CounterProcess:
    """The parent's view of the counting child."""

    def __init__(self) -> None:
        self.count = 0
        self.connected = asyncio.Event()
        self.changed = asyncio.Event()
        self.process: asyncio.subprocess.Process | None = None

    async def run(self, port: int) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--counter", str(port), stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        try:
            async for line in self.process.stdout:
                text = line.decode().strip()
                if text == "connected":
                    self.connected.set()
                elif text.isdigit():
                    self.count = int(text)
                    self.changed.set()
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()

    async def wait_for(self, count: int, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while self.count < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self.changed.wait()
        return True


async def until(predicate: Callable[[], bool], limit: float) -> bool:
    """Poll a counter of another component every 5 ms for up to ``limit`` s."""
    for _ in range(int(limit / 0.005)):
        if predicate():
            return True
        await asyncio.sleep(0.005)
    return predicate()


async def publish(bus: EventBus, count: int, start: int) -> None:
    for n in range(start, start + count):
        bus.publish(JobPaused(job_id=n))
        if n % CHUNK == 0:
            await asyncio.sleep(0)


async def bench(events: int, backlog: int) -> None:
    with tempfile.TemporaryDirectory(prefix="telemetry-bench-") as tmp:
        directory = Path(tmp)
        broker = Mosquitto(directory)
        broker.start()
        bus = EventBus()
        config = TelemetryConfig(
            enabled=True,
            host="127.0.0.1",
            port=broker.port,
            telemetry_interval=0,
            home_assistant=False,
            outbox_max_events=max(100_000, 2 * backlog),
        )
        service = TelemetryService(
            config,
            "bench",
            "Bench",
            directory / "gateway.db",
            directory,
            bus,
            CommandRouter(),
            "bench",
            backoff=Backoff(initial=0.1, maximum=0.5),
        )
        counter = CounterProcess()
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(service.run()), tg.create_task(counter.run(broker.port))]
                async with asyncio.timeout(10):
                    await service.connected.wait()
                    await counter.connected.wait()

                cpu0, t0 = time.process_time(), time.perf_counter()
                await publish(bus, events, 1)
                await until(lambda: service.stats.delivered >= events, 120)
                acked = time.perf_counter() - t0
                cpu = time.process_time() - cpu0
                complete = await counter.wait_for(events, 120)
                elapsed = time.perf_counter() - t0
                rate = counter.count / elapsed
                print(
                    f"throughput: {counter.count}/{events} events in {elapsed:.2f} s = "
                    f"{rate:,.0f} events/s (target >= {RATE_TARGET:,.0f}/s: "
                    f"ratio {rate / RATE_TARGET:.2f})"
                    + ("" if complete else "  [INCOMPLETE after 120 s]")
                )
                print(
                    f"  all PUBACKed by the broker after {acked:.2f} s ({events / acked:,.0f}"
                    f" events/s); gateway CPU {cpu / events * 1e6:.0f} us/event"
                )

                broker.stop()
                await until(lambda: not service.connected.is_set(), 10)
                before = counter.count
                recorded = service.stats.recorded
                await publish(bus, backlog, events + 1)
                await until(lambda: service.stats.recorded >= recorded + backlog, 60)
                t0 = time.perf_counter()
                broker.start()
                complete = await counter.wait_for(before + backlog, 120)
                drain = time.perf_counter() - t0
                got = counter.count - before
                print(
                    f"outage: {got}/{backlog}-event backlog drained in {drain:.2f} s after "
                    f"the broker came back (target < {DRAIN_TARGET:.0f} s: "
                    f"ratio {DRAIN_TARGET / drain:.2f})"
                    + ("" if complete else "  [INCOMPLETE after 120 s]")
                )
                print(f"dropped by the outbox bounds: {service.stats.dropped}")
                for task in tasks:
                    task.cancel()
        finally:
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--backlog", type=int, default=10_000)
    ap.add_argument("--counter", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.getLogger("mqtt").setLevel(logging.CRITICAL)  # paho's socket errors in the outage
    if args.counter:
        asyncio.run(count(args.counter))
        return
    if not os.path.exists(shutil.which("mosquitto") or "/usr/sbin/mosquitto"):
        print("mosquitto is not installed: apt-get install mosquitto", file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(bench(args.events, args.backlog))


if __name__ == "__main__":
    main()
