"""What every badge reader shares: the read event, rejection counting and repeat suppression.

A reader turns a device's output into :class:`BadgeRead` events through one
async iterator, :meth:`BadgeReader.reads`.  Subclasses implement ``open``,
``close`` and ``_frames`` (normalised UIDs and :class:`RejectedFrame` s, in
order); this base class counts and logs the rejections and drops the repeats a
reader sends while a card is held against it.

A UID is personal data: nothing here logs one, at any level.  A rejected frame
is logged with its reason only, and reasons never quote the frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

_HEX_DIGITS = frozenset("0123456789ABCDEF")
_SEPARATORS = str.maketrans("", "", " :-")
_MAX_UID_DIGITS = 32  # 16-byte UIDs; anything longer is garbage
_REJECT_LOG_INTERVAL = 10.0  # seconds between INFO lines about rejections per reader


@dataclass(frozen=True, slots=True)
class BadgeRead:
    """A badge that a reader read correctly."""

    uid: str  # normalised: uppercase hex, no separators, e.g. "04A1B2C3"
    reader: str
    at: float  # time.monotonic() when the frame completed


@dataclass(frozen=True, slots=True)
class RejectedFrame:
    """A frame a decoder refused, and why (the reason never contains the frame)."""

    reason: str


def normalise_uid(text: str) -> str | None:
    """``"04:a1:b2:c3"`` -> ``"04A1B2C3"``; ``None`` if it is not a hex UID."""
    uid = text.strip().translate(_SEPARATORS).upper()
    if not uid or len(uid) > _MAX_UID_DIGITS or not set(uid) <= _HEX_DIGITS:
        return None
    return uid


class BadgeReader(ABC):
    """A source of badge reads: ``async with reader: async for read in reader.reads()``.

    The same UID from this reader within ``repeat_suppress`` seconds of its
    previous sighting is reported once, so a card held against a reader that
    repeats (an RDM6300 sends its frame every ~50 ms) gives one read; the card
    must be away for ``repeat_suppress`` seconds before it reads again.
    """

    def __init__(self, name: str, *, repeat_suppress: float = 1.0) -> None:
        self.name = name
        self.repeat_suppress = repeat_suppress
        self.rejected = 0  # garbage frames seen since construction
        self._last_seen: dict[str, float] = {}
        self._last_reject_log = -_REJECT_LOG_INTERVAL
        self._closing = asyncio.Event()

    async def open(self) -> None:
        """Open the device; raise :class:`~gateway.access.errors.AccessError` if it cannot."""
        self._closing.clear()
        await self._open()

    async def close(self) -> None:
        """Release the device and end :meth:`reads`.  Safe to call more than once."""
        self._closing.set()
        await self._close()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    @abstractmethod
    async def _open(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    def _frames(self) -> AsyncIterator[str | RejectedFrame]:
        """Normalised UIDs and rejections, in the order the device produced them,
        until the reader is closed."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def reads(self) -> AsyncIterator[BadgeRead]:
        """Good reads, repeats suppressed, until the reader is closed.  One consumer at a time."""
        async for frame in self._frames():
            if isinstance(frame, RejectedFrame):
                self._reject(frame.reason)
                continue
            now = time.monotonic()
            if self._is_repeat(frame, now):
                continue
            log.debug("reader %s read a badge", self.name)
            yield BadgeRead(frame, self.name, now)

    def _is_repeat(self, uid: str, now: float) -> bool:
        last = self._last_seen.get(uid)
        self._last_seen[uid] = now
        if len(self._last_seen) > 16:
            self._last_seen = {
                seen: at for seen, at in self._last_seen.items() if now - at < self.repeat_suppress
            }
        return last is not None and now - last < self.repeat_suppress

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        now = time.monotonic()
        if now - self._last_reject_log >= _REJECT_LOG_INTERVAL:
            self._last_reject_log = now
            log.info(
                "reader %s rejected a frame: %s (%d rejected since start)",
                self.name,
                reason,
                self.rejected,
            )
        else:
            log.debug("reader %s rejected a frame: %s", self.name, reason)

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the reader closes first; True if it closed."""
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return False
        return True
