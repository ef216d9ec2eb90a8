"""One encoder, many viewers: the newest frame, shared by everyone who watches.

The camera's encoder produces each JPEG once; :meth:`FrameFanout.publish` wraps
it, also once, into the multipart part the MJPEG stream sends, and keeps only
that newest :class:`Frame`.  A viewer waits for a frame newer than the last it
took and takes the newest one there is then; frames it was too slow for are
simply never seen.  So there is no queue per viewer: a stuck viewer holds at
most the frame it is sending, and nobody else waits for it.

Waking viewers costs one :class:`asyncio.Event` per frame: each publish sets
the current event and puts a fresh one in its place.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass

#: The multipart boundary of ``GET /api/camera/stream.mjpg``.
BOUNDARY = "frame"
MEDIA_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"


class FanoutClosed(Exception):
    """The camera stopped; no more frames will come from this fan-out."""


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One encoded picture: ``seq`` counts from 1; ``at`` is monotonic, ``wall`` epoch seconds."""

    seq: int
    jpeg: bytes
    part: bytes  # the multipart part (headers, JPEG, CRLF) every viewer sends as is
    at: float
    wall: float


def multipart_part(jpeg: bytes) -> bytes:
    head = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % (
        BOUNDARY.encode(),
        len(jpeg),
    )
    return b"".join((head, jpeg, b"\r\n"))


class FrameFanout:
    """The newest frame plus a wake-up for everyone waiting for a newer one."""

    def __init__(self) -> None:
        self._latest: Frame | None = None
        self._arrived = asyncio.Event()
        self._closed = False
        self._arrivals: deque[float] = deque(maxlen=32)
        self.published = 0
        self.viewers = 0

    @property
    def latest(self) -> Frame | None:
        return self._latest

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, jpeg: bytes) -> Frame:
        """Make ``jpeg`` the newest frame and wake every waiting viewer."""
        self.published += 1
        now = time.monotonic()
        frame = Frame(self.published, jpeg, multipart_part(jpeg), now, time.time())
        self._latest = frame
        self._arrivals.append(now)
        woken, self._arrived = self._arrived, asyncio.Event()
        woken.set()
        return frame

    def rate(self) -> float:
        """Frames per second over the last few dozen frames (0 when there are none)."""
        if len(self._arrivals) < 2:
            return 0.0
        span = self._arrivals[-1] - self._arrivals[0]
        if span <= 0 or time.monotonic() - self._arrivals[-1] > 5 * span:
            return 0.0
        return (len(self._arrivals) - 1) / span

    async def next_frame(self, after: int = 0) -> Frame:
        """The newest frame once it is newer than frame number ``after``."""
        while True:
            if self._closed:
                raise FanoutClosed("the camera stopped")
            frame = self._latest
            if frame is not None and frame.seq > after:
                return frame
            await self._arrived.wait()

    async def watch(self, max_fps: float | None = None) -> AsyncGenerator[Frame, None]:
        """Yield the newest frame each time there is a newer one, until :meth:`close`.

        With ``max_fps`` a viewer takes at most that many frames a second.
        """
        min_gap = 1.0 / max_fps if max_fps else 0.0
        self.viewers += 1
        try:
            seq = 0
            sent_at = -1e9
            while True:
                try:
                    frame = await self.next_frame(seq)
                except FanoutClosed:
                    return
                if min_gap:
                    wait = sent_at + min_gap - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                        frame = self._latest or frame
                    sent_at = time.monotonic()
                seq = frame.seq
                yield frame
        finally:
            self.viewers -= 1

    def close(self) -> None:
        """End every :meth:`watch` and make :meth:`next_frame` raise :class:`FanoutClosed`."""
        self._closed = True
        self._arrived.set()

    def reopen(self) -> None:
        """Accept frames again after :meth:`close` (the camera was reopened)."""
        self._closed = False
        if self._arrived.is_set():  # set by close(); whoever waits on it has been woken
            self._arrived = asyncio.Event()
