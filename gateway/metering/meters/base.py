"""What every meter adapter gives the metering service: a :class:`Reading` per ``read()``.

Adapters convert their library's errors to :class:`~gateway.metering.errors.MeterError`
with a short ``reason``; the service counts them and carries on.  A meter is an
async context manager: ``async with meter: reading = await meter.read()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample: power in W and, when the meter counts, its energy counter in Wh."""

    power_w: float
    energy_wh: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    frequency_hz: float | None = None
    power_factor: float | None = None


class Meter(ABC):
    """An energy meter the service polls (or that pushes; then ``read`` gives the newest)."""

    #: Short name for logs and the web UI.
    kind: str = "meter"

    async def open(self) -> None:  # noqa: B027 - most meters have nothing to open
        """Open the port or connection; failures raise ``MeterError``."""

    async def close(self) -> None:  # noqa: B027
        """Release what :meth:`open` took."""

    @abstractmethod
    async def read(self) -> Reading:
        """One reading, or ``MeterError`` (timeout, crc, unplugged, bad_reply, no_data)."""

    async def __aenter__(self) -> Meter:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
