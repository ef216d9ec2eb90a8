"""What a member sees and hears at the machine: the relay, the status lights and the buzzer.

Thin classes over gpiozero devices, each built on an explicit ``pin_factory``
(see :mod:`gateway.access.pins`).  They hold no policy: the access service
decides when the relay closes and which light to show; these classes only make
sure that the hardware does it, and that the relay is off whenever the process
lets go of it (power-on, :meth:`Relay.close`, garbage collection, interpreter
exit).  A crash that kills the process outright (SIGKILL, power loss) is beyond
software: wire the relay normally open so that an unpowered board means off.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gpiozero import LED, DigitalOutputDevice, Factory, OutputDevice
from gpiozero.exc import GPIOZeroError
from pydantic import BaseModel, ConfigDict, Field

from gateway.access.errors import AccessError

log = logging.getLogger(__name__)

IndicatorKind = Literal["locked", "authorised", "in_use", "denied", "lockout", "off"]
BuzzerPattern = Literal["granted", "denied", "warning", "induction"]


class OutputsConfig(BaseModel):
    """BCM pin numbers of the outputs; ``None`` means the device is not fitted.

    The relay is required (:meth:`Outputs.from_config` refuses ``relay_pin=None``);
    the lights and the buzzer are optional.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    relay_pin: int | None = Field(default=17, ge=0, le=27)
    relay_active_high: bool = True  # most opto-isolated relay boards are active-low: set False
    green_led: int | None = Field(default=22, ge=0, le=27)
    red_led: int | None = Field(default=27, ge=0, le=27)
    amber_led: int | None = Field(default=None, ge=0, le=27)
    buzzer: int | None = Field(default=18, ge=0, le=27)


def _build(what: str, pin: int, make: Callable[[], Any]) -> Any:
    """Create a gpiozero device, converting its errors into an :class:`AccessError`."""
    try:
        return make()
    except GPIOZeroError as err:
        raise AccessError(
            f"could not set up the {what} on GPIO{pin}: {err}; check the access.outputs pins "
            "for clashes with the badge reader and interlocks"
        ) from err


def _switch_off_and_release(device: Any) -> None:
    # Runs from close(), from garbage collection or at interpreter exit
    # (weakref.finalize), so it must never raise.
    try:
        device.off()
    except Exception:
        log.exception("could not switch the relay off")
    try:
        device.close()
    except Exception:
        log.exception("could not release the relay pin")


class Relay:
    """The relay that enables the machine; off at power-on and whenever released.

    ``active_high=False`` is for relay boards that switch on when the pin is
    pulled low: off then means the pin is driven high.
    """

    def __init__(self, pin: int, *, active_high: bool = True, pin_factory: Factory) -> None:
        self.pin = pin
        self._device = _build(
            "relay",
            pin,
            lambda: OutputDevice(
                pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
            ),
        )
        # Runs once: on close(), when this object is collected, or at interpreter exit.
        self._release = weakref.finalize(self, _switch_off_and_release, self._device)

    def on(self) -> None:
        if not self._release.alive:
            raise AccessError(f"the relay on GPIO{self.pin} is closed and cannot be switched on")
        self._device.on()

    def off(self) -> None:
        if self._release.alive:
            self._device.off()

    @property
    def is_on(self) -> bool:
        return self._release.alive and bool(self._device.value)

    @property
    def closed(self) -> bool:
        return not self._release.alive

    def close(self) -> None:
        """Switch off, then release the pin.  Safe to call more than once."""
        self._release()


# One row per kind: what each light does.  "slow" and "fast" are blink rates.
_Light = Literal["off", "on", "slow", "fast"]
_BLINK: dict[_Light, tuple[float, float]] = {"slow": (0.5, 0.5), "fast": (0.1, 0.1)}
_SHOW: dict[IndicatorKind, tuple[_Light, _Light, _Light]] = {
    #              green   red     amber
    "off": ("off", "off", "off"),
    "locked": ("off", "on", "off"),  # idle, waiting for a badge
    "authorised": ("on", "off", "off"),  # badge accepted, machine enabled
    "in_use": ("slow", "off", "off"),  # a session is running
    "denied": ("off", "fast", "off"),  # badge refused (for a moment, then back)
    "lockout": ("off", "slow", "slow"),  # machine locked out by staff or a fault
}


class Indicator:
    """Status lights: green, red and an optional amber LED.

    :meth:`show` sets what the lights say until the next call, except
    ``"denied"``, which is a moment: after ``denied_seconds`` the lights go back
    to what was shown before it, unless another :meth:`show` came first.
    """

    def __init__(
        self,
        green_pin: int | None,
        red_pin: int | None,
        amber_pin: int | None = None,
        *,
        pin_factory: Factory,
        denied_seconds: float = 2.0,
    ) -> None:
        self.denied_seconds = denied_seconds
        self.kind: IndicatorKind = "off"  # what the lights show now
        self._steady: IndicatorKind = "off"  # what they go back to after "denied"
        # The end of a "denied" moment runs on a timer thread; show() on the caller's.
        self._lock = threading.Lock()
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._leds: list[Any | None] = []
        try:
            for colour, pin in (("green", green_pin), ("red", red_pin), ("amber", amber_pin)):
                self._leds.append(
                    None
                    if pin is None
                    else _build(
                        f"{colour} light",
                        pin,
                        functools.partial(LED, pin, initial_value=False, pin_factory=pin_factory),
                    )
                )
        except AccessError:
            self.close()
            raise

    def show(self, kind: IndicatorKind) -> None:
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if kind == "denied":
                self._timer = threading.Timer(
                    self.denied_seconds, self._end_moment, args=(self._generation,)
                )
                self._timer.daemon = True
                self._timer.start()
            else:
                self._steady = kind
            self._apply(kind)

    def _end_moment(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._timer = None
                self._apply(self._steady)

    def _apply(self, kind: IndicatorKind) -> None:
        self.kind = kind
        for led, light in zip(self._leds, _SHOW[kind], strict=True):
            if led is None:
                continue
            if light == "off":
                led.off()
            elif light == "on":
                led.on()
            else:
                on_time, off_time = _BLINK[light]
                led.blink(on_time=on_time, off_time=off_time, background=True)

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            for led in self._leds:
                if led is not None:
                    led.off()  # stops a blink too
                    led.close()
            self._leds = [None] * len(self._leds)


# Each pattern is a sequence of (on, off) seconds for an active (self-oscillating) buzzer.
_PATTERNS: dict[BuzzerPattern, tuple[tuple[float, float], ...]] = {
    "granted": ((0.08, 0.06), (0.08, 0.0)),  # two short chirps
    "denied": ((0.6, 0.0),),  # one long tone
    "warning": ((0.2, 0.2), (0.2, 0.2), (0.2, 0.0)),  # session about to end
    "induction": ((0.08, 0.08), (0.3, 0.08), (0.08, 0.0)),  # short-long-short
}


class Buzzer:
    """An active buzzer playing short patterns; patterns never overlap."""

    def __init__(self, pin: int, *, pin_factory: Factory) -> None:
        self.pin = pin
        self._device = _build(
            "buzzer",
            pin,
            lambda: DigitalOutputDevice(pin, initial_value=False, pin_factory=pin_factory),
        )
        self._lock = asyncio.Lock()

    async def play(self, pattern: BuzzerPattern) -> None:
        """Play ``pattern`` to the end (the buzzer is silent afterwards, even if cancelled)."""
        async with self._lock:
            try:
                for on_time, off_time in _PATTERNS[pattern]:
                    self._device.on()
                    await asyncio.sleep(on_time)
                    self._device.off()
                    if off_time:
                        await asyncio.sleep(off_time)
            finally:
                if not self._device.closed:
                    self._device.off()

    def close(self) -> None:
        if not self._device.closed:
            self._device.off()
            self._device.close()


@dataclass
class Outputs:
    """The outputs of one gateway: the relay always, the lights and buzzer if fitted."""

    relay: Relay
    indicator: Indicator | None = None
    buzzer: Buzzer | None = None

    @classmethod
    def from_config(cls, cfg: OutputsConfig, factory: Factory) -> Outputs:
        if cfg.relay_pin is None:
            raise AccessError(
                "access.outputs.relay_pin is not set; the gateway needs a relay to enable the "
                "machine: set it to the relay's BCM pin number (17 on the reference board)"
            )
        outputs = cls(Relay(cfg.relay_pin, active_high=cfg.relay_active_high, pin_factory=factory))
        try:
            if any(pin is not None for pin in (cfg.green_led, cfg.red_led, cfg.amber_led)):
                outputs.indicator = Indicator(
                    cfg.green_led, cfg.red_led, cfg.amber_led, pin_factory=factory
                )
            if cfg.buzzer is not None:
                outputs.buzzer = Buzzer(cfg.buzzer, pin_factory=factory)
        except AccessError:
            outputs.close()
            raise
        return outputs

    def show(self, kind: IndicatorKind) -> None:
        if self.indicator is not None:
            self.indicator.show(kind)

    async def play(self, pattern: BuzzerPattern) -> None:
        if self.buzzer is not None:
            await self.buzzer.play(pattern)

    def close(self) -> None:
        """Close everything, the relay first; one failure does not stop the others."""
        for device in (self.relay, self.indicator, self.buzzer):
            if device is None:
                continue
            try:
                device.close()
            except Exception:
                log.exception("could not close %s", type(device).__name__)
