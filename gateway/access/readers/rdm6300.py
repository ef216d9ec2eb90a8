"""RDM6300 125 kHz (EM4100) readers on a serial port: pure frame decoder and adapter.

The module sends, at 9600 baud 8N1 and about every 50 ms while a tag is in
the field, a 14-byte frame::

    STX (0x02) | 10 ASCII hex: version byte + 4-byte tag | 2 ASCII hex checksum | ETX (0x03)

The checksum is the XOR of the five data bytes.  The UID reported is the 10
data characters, uppercased ("1000 86F444" -> "100086F444"; the number printed
on many fobs is the decimal value of the last 8).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from enum import Enum, auto

import serial_asyncio_fast

from gateway.access.errors import AccessError
from gateway.access.readers.base import BadgeReader, RejectedFrame
from gateway.backoff import Backoff
from gateway.ports import match_port

log = logging.getLogger(__name__)

STX = 0x02
ETX = 0x03
_FRAME_CHARS = 12  # 10 data + 2 checksum characters between STX and ETX
_HEX_BYTES = frozenset(b"0123456789ABCDEFabcdef")


class _State(Enum):
    IDLE = auto()  # between frames, expecting STX
    FRAME = auto()  # after STX, collecting characters
    GARBAGE = auto()  # after something unexpected, skipping to the next STX


class Rdm6300Decoder:
    """Pure decoder: bytes in, UIDs and rejections out; resynchronises on STX.

    A run of bytes outside a frame counts as one rejection; a new STX inside a
    frame abandons that frame and starts another.
    """

    def __init__(self) -> None:
        self._state = _State.IDLE
        self._chars = bytearray()

    def feed(self, data: bytes) -> list[str | RejectedFrame]:
        events: list[str | RejectedFrame] = []
        for byte in data:
            event = self._step(byte)
            if event is not None:
                events.append(event)
        return events

    def _step(self, byte: int) -> str | RejectedFrame | None:
        match self._state, byte:
            case _State.FRAME, 0x02:
                self._chars.clear()
                return RejectedFrame("frame cut short by a new STX")
            case _, 0x02:
                self._state = _State.FRAME
                self._chars.clear()
                return None
            case _State.IDLE, _:
                self._state = _State.GARBAGE
                return RejectedFrame("bytes outside a frame")
            case _State.GARBAGE, _:
                return None
            case _State.FRAME, 0x03:
                self._state = _State.IDLE
                return self._check()
            case _State.FRAME, _ if byte not in _HEX_BYTES:
                self._state = _State.GARBAGE
                return RejectedFrame("non-hex byte in a frame")
            case _State.FRAME, _ if len(self._chars) == _FRAME_CHARS:
                self._state = _State.GARBAGE
                return RejectedFrame("frame longer than 12 characters")
            case _:
                self._chars.append(byte)
                return None

    def _check(self) -> str | RejectedFrame:
        if len(self._chars) != _FRAME_CHARS:
            return RejectedFrame(
                f"{len(self._chars)} characters between STX and ETX, expected {_FRAME_CHARS}"
            )
        text = self._chars.decode("ascii").upper()
        payload = bytes.fromhex(text)
        checksum = 0
        for value in payload[:5]:
            checksum ^= value
        if checksum != payload[5]:
            return RejectedFrame("checksum mismatch")
        return text[:10]


def resolve_port(spec: str) -> str:
    """The one device path ``spec`` names: a path, or a glob such as
    ``/dev/serial/by-id/usb-*RDM*`` that survives re-plugging into another socket."""
    matches = match_port(spec)
    if not matches:
        raise AccessError(
            f"no serial port matches {spec!r}; is the badge reader plugged in? "
            "check `ls /dev/serial/by-id/`"
        )
    if len(matches) > 1:
        raise AccessError(
            f"{len(matches)} serial ports match {spec!r} ({', '.join(matches)}); "
            "make the reader's port name exactly one"
        )
    return matches[0]


class Rdm6300Reader(BadgeReader):
    """An RDM6300 on a serial port.

    :meth:`open` fails with :class:`AccessError` if the port cannot be opened.
    Once open, a lost port (the USB adapter unplugged) is reopened with the
    shared :class:`~gateway.backoff.Backoff` while :meth:`reads` goes on.
    """

    def __init__(
        self,
        name: str = "rdm6300",
        *,
        port: str,
        baud: int = 9600,
        repeat_suppress: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, repeat_suppress=repeat_suppress)
        self.port = port
        self.baud = baud
        self.backoff = backoff or Backoff(initial=0.5, maximum=10.0)
        self.reconnects = 0  # times the port was reopened after being lost
        self._stream: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        if self._stream is None:
            await self._connect()

    async def _connect(self) -> None:
        path = resolve_port(self.port)
        try:
            self._stream, self._writer = await serial_asyncio_fast.open_serial_connection(
                url=path, baudrate=self.baud, bytesize=8, parity="N", stopbits=1
            )
        except OSError as err:  # pyserial's SerialException is an OSError
            raise AccessError(
                f"could not open badge reader {self.name!r} on {path}: {err}; check the cable "
                "and that the gateway user is in the dialout group (`ls -l /dev/serial/by-id/`)"
            ) from err

    async def _close(self) -> None:
        self._disconnect()

    def _disconnect(self) -> None:
        writer, self._writer, self._stream = self._writer, None, None
        if writer is not None:
            writer.close()

    async def _frames(self) -> AsyncIterator[str | RejectedFrame]:
        decoder = Rdm6300Decoder()
        while not self.closing:
            stream = self._stream
            if stream is None:
                if not await self._reconnect():
                    return
                decoder = Rdm6300Decoder()  # start clean: the old partial frame is gone
                continue
            try:
                data = await stream.read(256)
            except OSError as err:
                log.debug("reader %s: read failed: %s", self.name, err)
                data = b""
            if not data:
                if self.closing:
                    return
                log.warning("badge reader %s: lost %s; reopening it", self.name, self.port)
                self._disconnect()
                continue
            for event in decoder.feed(data):
                yield event

    async def _reconnect(self) -> bool:
        """Reopen the port, waiting between tries; False if the reader closed meanwhile."""
        while not self.closing:
            if await self._pause(self.backoff.next_delay()):
                return False
            try:
                await self._connect()
            except AccessError as err:
                log.debug("badge reader %s: %s", self.name, err)
                continue
            self.backoff.reset()
            self.reconnects += 1
            log.info("badge reader %s: %s reopened", self.name, self.port)
            return True
        return False
