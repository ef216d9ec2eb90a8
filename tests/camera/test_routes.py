"""The camera's HTTP API on a real uvicorn: many viewers, a stuck one, and the other routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.camera.sources.synthetic import SyntheticCamera

FPS = 15
WINDOW = 3.0
VIEWERS = 20
VIEWERS_SCRIPT = Path(__file__).with_name("mjpeg_viewers.py")


async def stuck_viewer(url: str) -> socket.socket:
    """A client that asks for the stream and never reads a byte of it."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (parts.hostname, parts.port))
    await loop.sock_sendall(sock, b"GET /api/camera/stream.mjpg HTTP/1.1\r\nHost: camera\r\n\r\n")
    return sock


async def viewer_counts(proc: asyncio.subprocess.Process) -> list[int]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"counts\n")
    await proc.stdin.drain()
    counts: list[int] = json.loads(await proc.stdout.readline())
    return counts


async def test_twenty_viewers_one_stuck_the_rest_keep_the_frame_rate(
    camera_config: Callable[..., Any],
    camera_service: Callable[..., Any],
    live_server: Callable[..., Any],
    eventually: Callable[..., Any],
) -> None:
    """19 viewers in another process (so this process's memory is the server's) and one
    that never reads."""
    config = camera_config(
        width=640, height=480, fps=FPS, alerts={"enabled": False}, timelapse={"mode": "off"}
    )
    async with camera_service(config) as service, live_server(service) as url:
        camera = service.source
        assert isinstance(camera, SyntheticCamera)
        stuck = await stuck_viewer(url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(VIEWERS_SCRIPT),
            f"{url}/api/camera/stream.mjpg",
            str(VIEWERS - 1),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(15):
                assert await proc.stdout.readline() == b"ready\n"
            await eventually(lambda: service.fanout.viewers == VIEWERS, what="20 viewers")
            await asyncio.sleep(1.0)  # the stuck viewer's socket buffers fill up

            tracemalloc.start()
            before = await viewer_counts(proc)
            encoded, published = camera.encoded, service.fanout.published
            await asyncio.sleep(WINDOW)
            after = await viewer_counts(proc)
            grown, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            encoded, published = camera.encoded - encoded, service.fanout.published - published
            viewers = service.fanout.viewers
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            stuck.close()
    received = [a - b for a, b in zip(after, before, strict=True)]

    # The camera kept its rate, and each frame was encoded once for all 20 viewers.
    assert FPS * WINDOW * 0.8 <= published <= FPS * WINDOW * 1.2 + 2
    assert encoded == published
    # The stuck viewer was still connected, and slowed nobody.
    assert viewers == VIEWERS
    assert min(received) >= published * 0.8, (received, published)
    # Nothing piled up for it: memory allocated during the window and still held is small
    # (a queue of frames for it would hold about 45 frames of about 50 kB each).
    assert grown < 1_000_000, grown


async def test_snapshot_status_and_path_tricks(
    camera_config: Callable[..., Any],
    camera_service: Callable[..., Any],
    live_server: Callable[..., Any],
) -> None:
    async with (
        camera_service(camera_config()) as service,
        live_server(service) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        snap = await client.get("/api/camera/snapshot.jpg")
        assert snap.status_code == 200
        assert snap.headers["content-type"] == "image/jpeg"
        assert snap.content[:2] == b"\xff\xd8"
        assert "no-store" in snap.headers["cache-control"]

        status = (await client.get("/api/camera/status")).json()
        assert status["running"] is True and status["backend"] == "synthetic"
        assert (status["width"], status["height"], status["fps"]) == (320, 240, 15)
        assert status["frames"] > 0 and status["alerts"] == []

        for path in (
            "/api/camera/timelapses/..%2F..%2Fgateway.db.mp4",
            "/api/camera/timelapses/../../gateway.db",
            "/api/camera/timelapses/1%2F..%2F2.mp4",
            "/api/camera/timelapses/abc.mp4",
            "/api/camera/timelapses/-3.mp4",
            "/api/camera/timelapses/99.mp4",
            "/api/camera/snapshots/..%2Fgateway.db",
            "/api/camera/snapshots/timelapse.json",
        ):
            response = await client.get(path)
            assert response.status_code in (404, 422), path


async def test_viewers_beyond_max_viewers_are_refused(
    camera_config: Callable[..., Any],
    camera_service: Callable[..., Any],
    live_server: Callable[..., Any],
    eventually: Callable[..., Any],
) -> None:
    config = camera_config(max_viewers=2)
    async with (
        camera_service(config) as service,
        live_server(service) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        streams = [client.stream("GET", "/api/camera/stream.mjpg") for _ in range(2)]
        async with contextlib.AsyncExitStack() as stack:
            bodies = []
            for s in streams:
                response = await stack.enter_async_context(s)
                assert response.status_code == 200
                bodies.append(response.aiter_raw())
                await anext(bodies[-1])
            await eventually(lambda: service.fanout.viewers == 2)
            third = await client.get("/api/camera/stream.mjpg")
            assert third.status_code == 503
            assert "max_viewers" in third.json()["detail"]
        await eventually(lambda: service.fanout.viewers == 0, what="viewers to leave")


async def test_streams_end_when_the_camera_stops(
    camera_config: Callable[..., Any],
    camera_service: Callable[..., Any],
    live_server: Callable[..., Any],
    mjpeg_parts: Any,
) -> None:
    async with camera_service(camera_config()) as service, live_server(service) as url:
        parser = mjpeg_parts()
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            client.stream("GET", "/api/camera/stream.mjpg") as response,
        ):
            async for chunk in response.aiter_raw():
                parser.feed(chunk)
                if parser.count >= 3:
                    service.fanout.close()
            # The body ended by itself.
        assert parser.count >= 3
        assert service.fanout.viewers == 0
