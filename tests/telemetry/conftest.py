"""A real Mosquitto broker per test, on a free loopback port, that tests can stop
and restart on the same port; plus an MQTT subscriber that survives the outage.

Needs ``apt-get install mosquitto mosquitto-clients``; tests that use the broker
fail with that hint when ``/usr/sbin/mosquitto`` is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import pytest

from gateway.backoff import Backoff
from gateway.bus import EventBus
from gateway.commands import CommandRouter
from gateway.telemetry.config import TelemetryConfig

if TYPE_CHECKING:
    from gateway.telemetry.service import TelemetryService

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One mosquitto process with persistence in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        acl_file: Path | None = None,
        extra: str = "",
        config_text: str | None = None,
    ) -> None:
        """``extra`` is appended to the generated config; ``config_text`` replaces
        it (``{port}`` and ``{dir}`` are filled in; users are still created)."""
        if not os.path.exists(MOSQUITTO):
            pytest.fail("mosquitto is not installed: run `make test` (it installs mosquitto)")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.users = users or {}
        self.acl_file = acl_file
        self.extra = extra
        self.config_text = config_text
        self.process: subprocess.Popen[bytes] | None = None
        self.conf = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        self._write_config()

    def _write_users(self) -> Path:
        passwd = self.directory / "passwd"
        for i, (user, password) in enumerate(self.users.items()):
            create = ["-c"] if i == 0 else []
            subprocess.run(
                [MOSQUITTO_PASSWD, "-b", *create, str(passwd), user, password],
                check=True,
                capture_output=True,
            )
        return passwd

    def _write_config(self) -> None:
        if self.config_text is not None:
            if self.users:
                self._write_users()
            text = self.config_text.replace("{port}", str(self.port))
            self.conf.write_text(text.replace("{dir}", str(self.directory)))
            return
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.directory}/",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            f"log_dest file {self.log}",
            "log_type all",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to "mosquitto" and cannot read tmp
        if self.users:
            lines += ["allow_anonymous false", f"password_file {self._write_users()}"]
            if self.acl_file is not None:
                lines.append(f"acl_file {self.acl_file}")
        else:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n" + self.extra)

    def start(self, timeout: float = 5.0) -> None:
        assert self.process is None, "broker already running"
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection((self.host, self.port), 0.2).close()
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{log}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: mosquitto saves retained and queued messages, then exits."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def client(self, **kwargs: Any) -> aiomqtt.Client:
        return aiomqtt.Client(self.host, self.port, **kwargs)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Collector:
    """A subscriber with a persistent session that reconnects after outages."""

    broker: Broker
    filters: tuple[str, ...]
    client_id: str
    username: str | None = None
    password: str | None = None
    messages: list[Received] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            try:
                async with self.broker.client(
                    identifier=self.client_id,
                    clean_session=False,
                    username=self.username,
                    password=self.password,
                ) as client:
                    for f in self.filters:
                        await client.subscribe(f, qos=1)
                    self.connected.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else b""
                        self.messages.append(Received(m.topic.value, payload, m.retain))
                        self._arrived.set()
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.05)

    def on(self, suffix: str) -> list[Received]:
        return [m for m in self.messages if m.topic.endswith(suffix)]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await self._arrived.wait()


@contextlib.asynccontextmanager
async def collecting(
    broker: Broker, *filters: str, client_id: str = "collector", **kwargs: Any
) -> AsyncIterator[Collector]:
    collector = Collector(broker, filters, client_id, **kwargs)
    task = asyncio.create_task(collector.run())
    try:
        async with asyncio.timeout(5):
            await collector.connected.wait()
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Harness:
    """What a test against the broker needs, handed out by the ``harness`` fixture
    (test modules cannot import from conftest under ``--import-mode=importlib``)."""

    broker: Broker
    tmp_path: Path

    def config(self, **overrides: Any) -> TelemetryConfig:
        values: dict[str, Any] = {
            "enabled": True,
            "host": self.broker.host,
            "port": self.broker.port,
            "keepalive": 5,
            "telemetry_interval": 0,
            "home_assistant": False,
        }
        values.update(overrides)
        return TelemetryConfig(**values)

    def service(
        self,
        config: TelemetryConfig | None = None,
        bus: EventBus | None = None,
        commands: CommandRouter | None = None,
        *,
        machine_id: str = "m1",
        db_path: Path | None = None,
    ) -> TelemetryService:
        from gateway.telemetry.service import TelemetryService

        return TelemetryService(
            config or self.config(),
            machine_id,
            "Test printer",
            db_path or self.tmp_path / "state" / "gateway.db",
            self.tmp_path,
            bus or EventBus(),
            commands or CommandRouter(),
            "0.1.0-test",
            backoff=Backoff(initial=0.05, maximum=0.3, jitter=0.0),
        )

    def collecting(
        self, *filters: str, client_id: str = "collector", **kwargs: Any
    ) -> contextlib.AbstractAsyncContextManager[Collector]:
        return collecting(self.broker, *filters, client_id=client_id, **kwargs)

    @staticmethod
    def running(
        service: TelemetryService, *, connected: bool = True
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return running(service, connected=connected)


@contextlib.asynccontextmanager
async def running(service: TelemetryService, *, connected: bool = True) -> AsyncIterator[None]:
    """Run ``service`` as the supervisor would; cancel it (clean shutdown) on exit."""
    task = asyncio.create_task(service.run(), name="telemetry-under-test")
    try:
        async with asyncio.timeout(5):
            await service.ready.wait()
            if connected:
                await service.connected.wait()
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def harness(broker: Broker, tmp_path: Path) -> Harness:
    return Harness(broker, tmp_path)


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Make extra brokers (with users and an ACL); each is stopped after the test."""
    made: list[Broker] = []

    def make(name: str = "broker2", **kwargs: Any) -> Broker:
        b = Broker(tmp_path / name, **kwargs)
        made.append(b)
        return b

    try:
        yield make
    finally:
        for b in made:
            b.stop()
