"""Wiegand readers: a pure bit-stream decoder and the GPIO adapter around it.

Wiegand sends each bit as a short low pulse on one of two pulled-up lines:
D0 for a 0, D1 for a 1.  Per the SIA Wiegand reader interface (AC-01) a pulse
lasts 20-100 µs and pulses are 200 µs to 20 ms apart (1-2 ms on most readers);
the frame ends when the lines stay idle.  Formats decoded here:

* 26-bit (H10301): even parity over the first 12 data bits, 8-bit facility
  code, 16-bit card number, odd parity over the last 12 data bits.
* 34-bit: even parity over the first 16 data bits, 32-bit card number, odd
  parity over the last 16 data bits.

Bits arriving closer together than ``min_bit_interval`` are noise (a spike, or
both lines pulled low by a wiring fault) and spoil the frame they fall in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal

from gpiozero import DigitalInputDevice, Factory
from gpiozero.exc import GPIOZeroError

from gateway.access.errors import AccessError
from gateway.access.readers.base import BadgeReader, RejectedFrame

log = logging.getLogger(__name__)

WiegandBits = Literal[26, 34, "auto"]

# Frame length -> data bits covered by each of the two parity bits.
_PARITY_SPAN: dict[int, int] = {26: 12, 34: 16}
_MAX_BITS = 64  # longer bursts are counted but not kept


@dataclass(frozen=True, slots=True)
class WiegandFrame:
    """A frame that passed its length and parity checks."""

    bits: int  # 26 or 34
    data: int  # the data bits between the two parity bits (24 or 32 of them)

    @property
    def facility(self) -> int | None:
        """The 26-bit format's 8-bit facility (site) code; ``None`` for 34-bit."""
        return self.data >> 16 if self.bits == 26 else None

    @property
    def card(self) -> int:
        """The card number: 16 bits for 26-bit frames, 32 bits for 34-bit frames."""
        return self.data & 0xFFFF if self.bits == 26 else self.data

    @property
    def uid(self) -> str:
        """All data bits in hex: 6 digits (facility + card) or 8 digits."""
        return f"{self.data:0{(self.bits - 2) // 4}X}"


def wiegand_bits(data: int, bits: Literal[26, 34]) -> list[int]:
    """The bits a reader sends for ``data``, parity included (what the decoder expects)."""
    span = _PARITY_SPAN[bits]
    if not 0 <= data < 1 << (2 * span):
        raise ValueError(f"{data} does not fit in a {bits}-bit Wiegand frame")
    payload = [(data >> i) & 1 for i in reversed(range(2 * span))]
    even = sum(payload[:span]) % 2
    odd = 1 - sum(payload[span:]) % 2
    return [even, *payload, odd]


class WiegandDecoder:
    """Pure Wiegand decoder: feed it bits with their times, read completed frames.

    ``feed`` returns a frame when a bit arrives after the previous frame's gap;
    ``poll`` completes the current frame once ``frame_gap`` has passed since its
    last bit.  Call ``poll`` at :meth:`deadline`.  Times are seconds on any
    monotonic clock, the same for both calls.
    """

    def __init__(
        self,
        formats: Collection[int] = (26, 34),
        *,
        min_bit_interval: float = 150e-6,
        frame_gap: float = 0.025,
    ) -> None:
        unknown = set(formats) - _PARITY_SPAN.keys()
        if unknown:
            raise ValueError(f"unsupported Wiegand formats {sorted(unknown)}; use 26 and/or 34")
        self.formats = frozenset(formats)
        self.min_bit_interval = min_bit_interval
        self.frame_gap = frame_gap
        self._value = 0
        self._count = 0
        self._last = 0.0
        self._noise = False

    def feed(self, bit: int, t: float) -> WiegandFrame | RejectedFrame | None:
        if bit not in (0, 1):
            raise ValueError(f"a Wiegand bit is 0 or 1, not {bit!r}")
        result = self.poll(t)
        if self._count and t - self._last < self.min_bit_interval:
            self._noise = True
        if self._count < _MAX_BITS:
            self._value = self._value << 1 | bit
        self._count += 1
        self._last = t
        return result

    def poll(self, t: float) -> WiegandFrame | RejectedFrame | None:
        if self._count and t >= self._last + self.frame_gap:  # the same sum as deadline()
            return self._finish()
        return None

    def deadline(self) -> float | None:
        """When the current frame ends if no further bit arrives; ``None`` when idle."""
        return self._last + self.frame_gap if self._count else None

    def _finish(self) -> WiegandFrame | RejectedFrame:
        value, count, noise = self._value, self._count, self._noise
        self._value, self._count, self._noise = 0, 0, False
        if noise:
            return RejectedFrame(
                f"noise: bits less than {self.min_bit_interval * 1e6:.0f} µs apart"
            )
        if count not in self.formats:
            expected = " or ".join(str(n) for n in sorted(self.formats))
            return RejectedFrame(f"{count}-bit frame, expected {expected} bits")
        span = _PARITY_SPAN[count]
        data = (value >> 1) & ((1 << (2 * span)) - 1)
        first_half = data >> span
        second_half = data & ((1 << span) - 1)
        even_parity = value >> (count - 1)
        odd_parity = value & 1
        if (first_half.bit_count() + even_parity) % 2 != 0:
            return RejectedFrame("even parity error in the first half")
        if (second_half.bit_count() + odd_parity) % 2 != 1:
            return RejectedFrame("odd parity error in the second half")
        return WiegandFrame(count, data)


class _DataLine(DigitalInputDevice):  # type: ignore[misc]
    """One Wiegand data line, pulled up; reports each falling edge with its time.

    gpiozero's public ``when_activated`` drops the edge timestamp, which the
    decoder needs: bit spacing measured when Python gets round to the callback
    would include thread latency.  The pin callback carries it, so hook there.
    """

    def __init__(
        self, pin: int, *, on_pulse: Callable[[float], None], pin_factory: Factory
    ) -> None:
        self._on_pulse = on_pulse
        super().__init__(pin, pull_up=True, pin_factory=pin_factory)

    def _pin_changed(self, ticks: float, state: int) -> None:
        super()._pin_changed(ticks, state)
        if not state:
            self._on_pulse(ticks)


class WiegandReader(BadgeReader):
    """A Wiegand reader on two GPIO inputs (D0, D1), decoded on the event loop.

    The pins' callbacks run on gpiozero's thread and only queue ``(bit, time)``
    for the loop; all decoding happens in :class:`WiegandDecoder`.
    """

    def __init__(
        self,
        name: str = "wiegand",
        *,
        d0_pin: int,
        d1_pin: int,
        bits: WiegandBits = "auto",
        pin_factory: Factory,
        repeat_suppress: float = 1.0,
        frame_gap: float = 0.025,
    ) -> None:
        super().__init__(name, repeat_suppress=repeat_suppress)
        if d0_pin == d1_pin:
            raise AccessError(f"reader {name!r}: D0 and D1 must be different pins")
        self.d0_pin = d0_pin
        self.d1_pin = d1_pin
        self._formats = (26, 34) if bits == "auto" else (bits,)
        self._frame_gap = frame_gap
        self._factory = pin_factory
        self._lines: list[Any] = []
        self._queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _open(self) -> None:
        if self._lines:
            return
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        try:
            for bit, pin in ((0, self.d0_pin), (1, self.d1_pin)):
                self._lines.append(
                    _DataLine(
                        pin,
                        on_pulse=functools.partial(self._pulse, bit),
                        pin_factory=self._factory,
                    )
                )
        except GPIOZeroError as err:
            self._close_lines()
            raise AccessError(
                f"could not set up Wiegand reader {self.name!r} on GPIO{self.d0_pin} (D0) and "
                f"GPIO{self.d1_pin} (D1): {err}; check for pins shared with the relay or lights"
            ) from err

    async def _close(self) -> None:
        self._close_lines()
        self._queue.put_nowait(None)

    def _close_lines(self) -> None:
        for line in self._lines:
            line.close()
        self._lines = []

    def _pulse(self, bit: int, ticks: float) -> None:
        # gpiozero's thread: hand the bit to the loop and return at once.
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(self._queue.put_nowait, (bit, ticks))

    async def _frames(self) -> AsyncIterator[str | RejectedFrame]:
        decoder = WiegandDecoder(self._formats, frame_gap=self._frame_gap)
        queue = self._queue
        while True:
            deadline = decoder.deadline()
            try:
                if deadline is None:
                    item = await queue.get()
                else:
                    # Pin ticks and the factory's clock are the same clock (monotonic
                    # seconds for lgpio and MockFactory).
                    async with asyncio.timeout(max(0.0, deadline - self._factory.ticks())):
                        item = await queue.get()
            except TimeoutError:
                if not queue.empty():
                    continue  # a bit of this frame was already on its way
                result = decoder.poll(float(self._factory.ticks()))
            else:
                if item is None:
                    return
                result = decoder.feed(*item)
            if isinstance(result, WiegandFrame):
                yield result.uid
            elif result is not None:
                yield result
