"""What every camera backend is: something that, once opened, yields JPEG frames."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager


class FrameSource(ABC):
    """A camera producing encoded JPEG frames at its configured size and rate.

    ``async with source.open() as frames: async for jpeg in frames: ...``; the
    camera is released when the block ends.  Each frame is encoded once, by the
    camera's encoder, and yielded as ``bytes``.  A source may be opened again
    after it was closed (the service reopens a camera that stopped).
    """

    #: Shown in the status API and the log.
    name: str = "camera"

    @abstractmethod
    def open(self) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Open the camera; raises :class:`~gateway.camera.errors.CameraUnavailable`."""
