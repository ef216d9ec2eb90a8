"""The simulated twin of the camera: a moving test pattern with a clock.

Each frame is drawn and encoded to JPEG once, in a thread, at the configured
size and rate.  Tests (and the simulator) change what the camera "sees" with
:meth:`SyntheticCamera.set_scene`; the twin records every scene it was given in
:attr:`SyntheticCamera.history` and counts its JPEG encodes in
:attr:`SyntheticCamera.encoded`, so a test can check that frames are encoded
once whatever the number of viewers.

The pattern: a colour-bar strip, a grey field with fixed sensor-like noise
(so frames are about the size a real camera's are), a white block circling
the middle, and the time and frame number at the bottom.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import time
from collections.abc import AsyncIterator
from enum import StrEnum

from PIL import Image, ImageDraw, ImageFont

from gateway.camera.sources.base import FrameSource

#: Seconds per turn of the block; not a divisor of the usual sample intervals, so
#: two samples of a moving picture never show the block in the same place.
BLOCK_PERIOD = 2.3
BARS = [
    (191, 191, 191),
    (191, 191, 0),
    (0, 191, 191),
    (0, 191, 0),
    (191, 0, 191),
    (191, 0, 0),
    (0, 0, 191),
]


class Scene(StrEnum):
    """What the synthetic camera shows."""

    MOVING = "moving"  # the pattern with the block circling: motion in view
    STILL = "still"  # the block parked: only the clock changes
    FROZEN = "frozen"  # the last frame repeated byte for byte, as a hung camera does
    BLACK = "black"  # a black picture (lens cap, lights off) with a dim clock
    LOST = "lost"  # no frames at all (unplugged)


def _font(height: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=max(10, height // 32))
    except (OSError, TypeError):  # Pillow built without FreeType: the small bitmap font
        return ImageFont.load_default()


class SyntheticCamera(FrameSource):
    """A camera that draws its own pictures; see the module docstring."""

    name = "synthetic"

    def __init__(self, width: int, height: int, fps: float, jpeg_quality: int) -> None:
        self.width = width
        self.height = height
        self.fps = fps
        self.jpeg_quality = jpeg_quality
        self._scene = Scene.MOVING
        self.history: list[tuple[float, Scene]] = [(time.monotonic(), Scene.MOVING)]
        #: JPEG encodes done: one per frame delivered, except FROZEN repeats.
        self.encoded = 0
        self.delivered = 0
        self.opened = 0
        self._background: Image.Image | None = None
        self._font = _font(height)
        self._last: bytes | None = None
        self._frame_no = 0
        self._block_clock = 0.0  # seconds of block motion so far; stops while STILL

    @property
    def scene(self) -> Scene:
        return self._scene

    def set_scene(self, scene: Scene) -> None:
        """Change what the camera shows from the next frame on."""
        self._scene = scene
        self.history.append((time.monotonic(), scene))

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncIterator[bytes]]:
        self.opened += 1
        if self._background is None:
            self._background = await asyncio.to_thread(self._make_background)
        yield self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        due = loop.time()
        while True:
            due += period
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                due = loop.time()  # behind (slow encode): skip ahead rather than burst
            scene = self._scene
            if scene is Scene.LOST:
                continue
            self._frame_no += 1
            if scene is Scene.FROZEN and self._last is not None:
                jpeg = self._last
            else:
                if scene is Scene.MOVING:
                    self._block_clock += period
                jpeg = await asyncio.to_thread(
                    self.render, scene, self._frame_no, self._block_clock, time.time()
                )
                self.encoded += 1
            self._last = jpeg
            self.delivered += 1
            yield jpeg

    # ------------------------------------------------------------------ drawing (threads)

    def _make_background(self) -> Image.Image:
        w, h = self.width, self.height
        noise = Image.effect_noise((w, h), 16).point(lambda v: v // 2 + 6)
        field = Image.merge("RGB", (noise, noise, noise))
        draw = ImageDraw.Draw(field)
        strip = h // 6
        for i, colour in enumerate(BARS):
            draw.rectangle(
                (i * w // len(BARS), 0, (i + 1) * w // len(BARS) - 1, strip), fill=colour
            )
        return field

    def render(self, scene: Scene, frame_no: int, block_clock: float, wall: float) -> bytes:
        """Draw and encode one frame (blocking: call it in a thread)."""
        w, h = self.width, self.height
        if scene is Scene.BLACK:
            img = Image.new("RGB", (w, h))
            ink = (40, 40, 40)
        else:
            if self._background is None:
                self._background = self._make_background()
            img = self._background.copy()
            ink = (255, 255, 255)
            angle = 2 * math.pi * block_clock / BLOCK_PERIOD
            cx = w / 2 + h / 5 * math.cos(angle)
            cy = h * 7 / 12 + h / 5 * math.sin(angle)
            half = h / 8
            ImageDraw.Draw(img).rectangle(
                (cx - half, cy - half, cx + half, cy + half), fill=(255, 255, 255)
            )
        draw = ImageDraw.Draw(img)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))
        millis = int(wall * 1000) % 1000
        draw.text(
            (6, h - h // 16 - 6), f"{stamp}.{millis:03d}  #{frame_no}", fill=ink, font=self._font
        )
        out = io.BytesIO()
        img.save(out, "JPEG", quality=self.jpeg_quality)
        return out.getvalue()
