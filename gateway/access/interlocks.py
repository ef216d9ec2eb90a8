"""Interlock inputs: a laser's lid, an enclosure door, an emergency stop.

An :class:`Interlock` watches one switch and reports each change as an
:class:`InterlockChange` through an async iterator.  gpiozero calls its edge
callbacks on its own thread; they are handed to the event loop with
``loop.call_soon_threadsafe`` into an :class:`asyncio.Queue`, so consumers read
them with ``async for`` and never run on gpiozero's thread.

An interlock is *tripped* when its switch says "open" (lid up, door open,
e-stop pressed).  Wire switches so that a broken wire reads as tripped:
a normally-closed contact to ground with the pull-up enabled and
``open_means="active_high"`` (the default).  Software interlocks supplement
a hardware e-stop chain; they never replace it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from gpiozero import DigitalInputDevice, Factory
from gpiozero.exc import GPIOZeroError
from pydantic import BaseModel, ConfigDict, Field

from gateway.access.errors import AccessError

log = logging.getLogger(__name__)

InterlockKind = Literal["lid", "door", "estop"]


class InterlockConfig(BaseModel):
    """One interlock switch.

    ``open_means`` is the pin level that means "open": ``"active_high"`` when the
    pin reads high with the lid up.  ``pull_up``: ``True`` for the Pi's internal
    pull-up, ``False`` for its pull-down, ``None`` for an external resistor.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    pin: int = Field(ge=0, le=27)
    open_means: Literal["active_high", "active_low"] = "active_high"
    pull_up: bool | None = True
    kind: InterlockKind = "lid"
    bounce_time: float | None = Field(default=0.02, ge=0, le=1.0)


@dataclass(frozen=True, slots=True)
class InterlockChange:
    """An interlock opened (``tripped=True``) or closed again."""

    name: str
    kind: InterlockKind
    tripped: bool
    at: float  # time.monotonic() when gpiozero reported the edge


class Interlock:
    """One interlock input; use as ``async with Interlock(cfg, pin_factory=f) as lid``.

    The constructor only keeps the config; entering the context opens the pin.
    :attr:`tripped` is the current state; :meth:`changes` yields every change
    from the moment the interlock was opened, until it is closed.
    """

    def __init__(self, cfg: InterlockConfig, *, pin_factory: Factory) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.kind = cfg.kind
        self._factory = pin_factory
        self._device: Any = None
        self._queue: asyncio.Queue[InterlockChange | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        if self._device is not None:
            return
        self._loop = asyncio.get_running_loop()
        cfg = self.cfg
        try:
            device = DigitalInputDevice(
                cfg.pin,
                pull_up=cfg.pull_up,
                # gpiozero takes active_state only for an external resistor; with an
                # internal pull-up "active" means low, with a pull-down it means high.
                active_state=(cfg.open_means == "active_high") if cfg.pull_up is None else None,
                bounce_time=cfg.bounce_time or None,
                pin_factory=self._factory,
            )
        except GPIOZeroError as err:
            raise AccessError(
                f"could not set up interlock {cfg.name!r} on GPIO{cfg.pin}: {err}; "
                "check access.interlocks for pins shared with the relay or the badge reader"
            ) from err
        device.when_activated = self._on_activated
        device.when_deactivated = self._on_deactivated
        self._device = device

    async def close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            device.close()
            self._queue.put_nowait(None)  # ends changes()

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

    @property
    def tripped(self) -> bool:
        if self._device is None:
            raise AccessError(f"interlock {self.name!r} is not open")
        return self._tripped(bool(self._device.is_active))

    def _tripped(self, active: bool) -> bool:
        if self.cfg.pull_up is None:
            return active  # active_state was set to the "open" level
        # With a pull-up, gpiozero's "active" is a low pin; with a pull-down, a high one.
        pin_high = active != self.cfg.pull_up
        return pin_high == (self.cfg.open_means == "active_high")

    async def changes(self) -> AsyncIterator[InterlockChange]:
        """Every change until the interlock is closed.  One consumer at a time."""
        while True:
            change = await self._queue.get()
            if change is None:
                return
            yield change

    # gpiozero's thread from here on: hand the change to the loop and return.
    def _on_activated(self) -> None:
        self._report(active=True)

    def _on_deactivated(self) -> None:
        self._report(active=False)

    def _report(self, *, active: bool) -> None:
        change = InterlockChange(self.name, self.kind, self._tripped(active), time.monotonic())
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._queue.put_nowait, change)
        except RuntimeError:  # the loop has closed during shutdown
            log.debug("interlock %s changed after the event loop closed", self.name)
