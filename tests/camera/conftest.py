"""Shared pieces of the camera tests: configs, a running service, a live uvicorn server
and a parser for the MJPEG stream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from gateway.bus import EventBus
from gateway.camera.config import CameraConfig
from gateway.camera.routes import camera_router
from gateway.camera.service import CameraService
from gateway.camera.sources import FrameSource
from gateway.commands import CommandRouter


def make_config(**overrides: Any) -> CameraConfig:
    base: dict[str, Any] = {
        "enabled": True,
        "backend": "synthetic",
        "width": 320,
        "height": 240,
        "fps": 15,
        "max_viewers": 32,
    }
    alerts = overrides.pop("alerts", {})
    timelapse = overrides.pop("timelapse", {})
    base.update(overrides)
    return CameraConfig.model_validate({**base, "alerts": alerts, "timelapse": timelapse})


@pytest.fixture
def camera_config() -> Callable[..., CameraConfig]:
    return make_config


@contextlib.asynccontextmanager
async def running(service: CameraService) -> AsyncIterator[CameraService]:
    """Run ``service`` in this loop until the block ends."""
    task = asyncio.create_task(service.run(), name="test:camera")
    ready = asyncio.create_task(service.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED, timeout=10)
    ready.cancel()
    if task.done():
        task.result()
    try:
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def camera_service(
    tmp_path: Path,
) -> Callable[..., contextlib.AbstractAsyncContextManager[CameraService]]:
    """``async with camera_service(config) as svc``: a running service on a fresh bus."""

    def start(
        config: CameraConfig,
        *,
        bus: EventBus | None = None,
        commands: CommandRouter | None = None,
        source: FrameSource | None = None,
    ) -> contextlib.AbstractAsyncContextManager[CameraService]:
        service = CameraService(
            config, tmp_path, bus or EventBus(), commands or CommandRouter(), source=source
        )
        return running(service)

    return start


@contextlib.asynccontextmanager
async def serve(service: CameraService, *, send_buffer: int = 64 * 1024) -> AsyncIterator[str]:
    """The camera router on a real uvicorn at 127.0.0.1; yields the base URL.

    Accepted sockets inherit the listener's send buffer, so a client that never
    reads pushes back on the server after ``send_buffer`` bytes instead of after
    the several megabytes Linux would otherwise buffer on loopback.
    """
    app = FastAPI()
    app.include_router(camera_router(service))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        server.force_exit = True
        try:
            async with asyncio.timeout(5):
                await task
        except TimeoutError:
            task.cancel()
        sock.close()


@pytest.fixture
def live_server() -> Callable[..., contextlib.AbstractAsyncContextManager[str]]:
    return serve


class MjpegParts:
    """Splits a ``multipart/x-mixed-replace`` body into its JPEG parts by Content-Length,
    counting them and keeping only the last (so a test's own memory stays flat)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.count = 0
        self.last: bytes | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self._buffer[:head_end]).decode("latin-1").split("\r\n")
            assert head[0] == "--frame", head
            length = next(
                int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length")
            )
            end = head_end + 4 + length + 2
            if len(self._buffer) < end:
                return
            jpeg = bytes(self._buffer[head_end + 4 : end - 2])
            assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
            self.count += 1
            self.last = jpeg
            del self._buffer[:end]


@pytest.fixture
def mjpeg_parts() -> type[MjpegParts]:
    return MjpegParts


async def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


@pytest.fixture
def eventually() -> Callable[..., Any]:
    return wait_until
