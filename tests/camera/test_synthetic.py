"""The synthetic camera twin: rate, one encode per frame, and its scenes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator

from PIL import Image, ImageChops

from gateway.camera.config import CameraConfig
from gateway.camera.sources import make_source
from gateway.camera.sources.picam import Picamera2Source
from gateway.camera.sources.synthetic import Scene, SyntheticCamera


def decode(jpeg: bytes) -> Image.Image:
    with Image.open(io.BytesIO(jpeg)) as img:
        return img.convert("L")


@contextlib.asynccontextmanager
async def collecting(frames: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """Collect frames in the background for as long as the block runs."""
    got: list[bytes] = []

    async def consume() -> None:
        async for jpeg in frames:
            got.append(jpeg)

    task = asyncio.create_task(consume())
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_frames_come_at_the_configured_rate_and_size() -> None:
    cam = SyntheticCamera(320, 240, 20, 70)
    async with cam.open() as frames, collecting(frames) as got:
        await asyncio.sleep(1.0)
    assert 16 <= len(got) <= 22
    assert cam.encoded == cam.delivered == len(got)
    with Image.open(io.BytesIO(got[-1])) as img:
        assert img.size == (320, 240) and img.format == "JPEG"
    assert len(set(got)) == len(got)  # the clock changes every frame


async def test_frozen_repeats_the_last_frame_without_encoding() -> None:
    cam = SyntheticCamera(320, 240, 30, 70)
    async with cam.open() as frames, collecting(frames) as got:
        await asyncio.sleep(0.2)
        cam.set_scene(Scene.FROZEN)
        await asyncio.sleep(0.05)
        encoded, before = cam.encoded, len(got)
        await asyncio.sleep(0.3)
    frozen = got[before:]
    assert len(frozen) >= 5 and len(set(frozen)) == 1
    assert cam.encoded == encoded
    assert [s for _, s in cam.history] == [Scene.MOVING, Scene.FROZEN]


async def test_lost_sends_nothing_and_recovers() -> None:
    cam = SyntheticCamera(320, 240, 30, 70)
    async with cam.open() as frames, collecting(frames) as got:
        cam.set_scene(Scene.LOST)
        await asyncio.sleep(0.3)
        assert got == []
        cam.set_scene(Scene.STILL)
        await asyncio.sleep(0.3)
        assert len(got) >= 5


def test_still_frames_differ_only_in_the_clock_and_black_is_black() -> None:
    cam = SyntheticCamera(320, 240, 10, 95)
    a = decode(cam.render(Scene.STILL, 1, 0.5, time.time()))
    b = decode(cam.render(Scene.STILL, 2, 0.5, time.time() + 1.234))
    changed = ImageChops.difference(a, b).point(lambda v: 255 if v > 40 else 0).getbbox()
    assert changed is not None and changed[1] >= 240 - 240 // 16 - 12  # the clock's line
    moved = decode(cam.render(Scene.MOVING, 3, 1.5, time.time()))
    bbox = ImageChops.difference(a, moved).point(lambda v: 255 if v > 40 else 0).getbbox()
    assert bbox is not None and bbox[1] < 200  # the block is elsewhere
    black = decode(cam.render(Scene.BLACK, 4, 0.0, time.time()))
    assert max(black.histogram()[80:]) == 0  # no pixel as bright as 80


def test_the_factory_picks_the_backend_without_importing_picamera2() -> None:
    import sys

    synthetic = make_source(CameraConfig(backend="synthetic"))
    assert isinstance(synthetic, SyntheticCamera)
    pi = make_source(CameraConfig(backend="picamera2"))
    assert isinstance(pi, Picamera2Source)
    assert "picamera2" not in sys.modules
