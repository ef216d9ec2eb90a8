"""A real Mosquitto on a free loopback port for the ledger's broker tests (stoppable,
restartable on the same port), a TLS-only one, and a subscriber with a persistent session."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    def __init__(self, directory: Path, extra: str = "") -> None:
        if not os.path.exists(MOSQUITTO):
            pytest.fail("mosquitto is not installed: run `make test` (it installs mosquitto)")
        directory.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.host = "127.0.0.1"
        self.conf = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {directory}/",
            "max_queued_messages 100000",
            "allow_anonymous true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n" + extra)
        self.process: subprocess.Popen[bytes] | None = None
        self.ca_file: Path | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection((self.host, self.port), 0.2).close()
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@dataclass
class Collector:
    broker: Broker
    filters: tuple[str, ...]
    client_id: str
    messages: list[tuple[str, Any]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host, self.broker.port, identifier=self.client_id,
                    clean_session=False,
                ) as client:
                    for f in self.filters:
                        await client.subscribe(f, qos=1)
                    self.connected.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else b"null"
                        self.messages.append((m.topic.value, json.loads(payload or b"null")))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.05)

    async def wait_for_seq(self, seq: int, within: float = 15.0) -> None:
        """Until a ledger record with ``seq`` has arrived."""
        async with asyncio.timeout(within):
            while not any(
                isinstance(p, dict) and p.get("record", {}).get("seq") == seq
                for _, p in self.messages
            ):
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def collecting(broker: Broker, *filters: str, client_id: str) -> AsyncIterator[Collector]:
    c = Collector(broker, filters, client_id)
    task = asyncio.create_task(c.run())
    try:
        async with asyncio.timeout(5):
            await c.connected.wait()
        yield c
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def collector_factory() -> Any:
    return collecting


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker that speaks only TLS, with a certificate for 127.0.0.1 (``ca_file``)."""
    ca, cert, key = make_certs(tmp_path / "pki")
    b = Broker(tmp_path / "broker", extra=f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n")
    b.ca_file = ca
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(name="make_certs")
def make_certs_fixture() -> Any:
    return make_certs
