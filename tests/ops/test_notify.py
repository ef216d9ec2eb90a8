"""sd_notify from a real daemon process to a real unix datagram socket."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.bus import EventBus
from gateway.machine.events import MachineStatus
from gateway.ops.notify import Notifier, SystemdService, describe

from .conftest import Daemon, sim_config


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def receive(sock: socket.socket, seconds: float) -> list[str]:
    """Every datagram received within ``seconds``."""
    messages: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return messages


def fields(messages: list[str]) -> list[str]:
    return [line for m in messages for line in m.splitlines()]


def test_daemon_sends_ready_status_and_watchdog_then_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], daemons: list[Daemon]
) -> None:
    sock, path = notify_socket
    d = Daemon(sim_config(tmp_path), env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    daemons.append(d)
    got = fields(receive(sock, 2.0))
    assert got.count("READY=1") == 1
    assert any(f.startswith("STATUS=sim-printer: ") for f in got), got
    # 0.4 s watchdog: a heartbeat every 0.2 s from the event loop.
    assert got.count("WATCHDOG=1") >= 5, got

    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0
    assert "STOPPING=1" in fields(receive(sock, 0.5))


def test_daemon_without_notify_socket_sends_nothing(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], daemons: list[Daemon]
) -> None:
    sock, _ = notify_socket
    d = Daemon(sim_config(tmp_path))
    daemons.append(d)
    assert receive(sock, 0.5) == []


def test_watchdog_settings_come_from_the_environment() -> None:
    assert Notifier.from_environ({}) is None
    n = Notifier.from_environ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "20000000"})
    assert n is not None and n.watchdog_interval == 10.0
    other = Notifier.from_environ(
        {"NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}
    )
    assert other is not None and other.watchdog_interval is None


def test_abstract_socket_address(tmp_path: Path) -> None:
    name = f"gateway-test-{id(tmp_path)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    with sock:
        assert Notifier(f"@{name}").send(STATUS="hello")
        assert sock.recv(100) == b"STATUS=hello"


def test_unreachable_socket_is_a_warning_not_an_error(tmp_path: Path) -> None:
    assert not Notifier(str(tmp_path / "missing")).send(READY=1)


async def test_status_follows_the_machine_and_a_stalled_loop_stops_the_heartbeat(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    bus = EventBus()
    service = SystemdService(Notifier(path, watchdog_interval=0.05), bus)
    task = asyncio.create_task(service.run())
    await service.ready.wait()
    bus.publish(MachineStatus(machine_id="laser-1", state="printing", firmware="grbl"))
    await asyncio.sleep(0.3)
    got = fields(await asyncio.to_thread(receive, sock, 0.3))
    assert "STATUS=laser-1: printing" in got
    assert got.count("WATCHDOG=1") >= 3
    receive(sock, 0.01)  # drain, without letting the loop run
    time.sleep(0.5)  # noqa: ASYNC251 - the event loop hangs on purpose: no heartbeat meanwhile
    assert receive(sock, 0.01) == []
    await asyncio.sleep(0.2)
    assert "WATCHDOG=1" in fields(receive(sock, 0.01))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_describe_names_the_job_and_its_progress() -> None:
    status = MachineStatus(
        machine_id="mk3",
        state="printing",
        firmware="marlin",
        job={"name": "benchy.gcode", "progress": 0.42},
    )
    assert describe(status) == "mk3: printing, benchy.gcode 42%"
