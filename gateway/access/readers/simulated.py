"""The simulated badge reader: the twin used by tests, the CLI and the web UI in simulation mode.

It goes through the same :class:`BadgeReader` machinery as a real reader:
what is presented is normalised (``"04:a1:b2:c3"`` reads as ``"04A1B2C3"``),
anything that is not a hex UID is counted as a rejected frame, and the same
card presented again within ``repeat_suppress`` seconds reads once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.access.readers.base import BadgeReader, RejectedFrame, normalise_uid


class SimulatedReader(BadgeReader):
    """A reader that reads whatever :meth:`present` is given; :attr:`history` keeps it all."""

    def __init__(self, name: str = "sim", *, repeat_suppress: float = 1.0) -> None:
        super().__init__(name, repeat_suppress=repeat_suppress)
        self.history: list[str] = []  # everything presented, as given, in order
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()

    def present(self, uid: str) -> None:
        """Hold a card (or any text, to exercise rejection) against the reader.

        Call it from the event loop's thread.
        """
        self.history.append(uid)
        self._queue.put_nowait(uid)

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        self._queue.put_nowait(None)

    async def _frames(self) -> AsyncIterator[str | RejectedFrame]:
        while True:
            text = await self._queue.get()
            if text is None:
                return
            uid = normalise_uid(text)
            yield uid if uid is not None else RejectedFrame("not a hex UID")
