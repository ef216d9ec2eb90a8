"""Badge reader configuration: one model per reader type, chosen by ``type``.

``open_reader`` builds the reader a config describes; the caller opens it
with ``async with``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from gpiozero import Factory
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.access.errors import AccessError
from gateway.access.readers.base import BadgeReader
from gateway.access.readers.keyboard import KeyboardReader
from gateway.access.readers.rdm6300 import Rdm6300Reader
from gateway.access.readers.simulated import SimulatedReader
from gateway.access.readers.wiegand import WiegandReader


class _ReaderConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    # The same UID again within this many seconds of its last sighting reads once.
    repeat_suppress: float = Field(default=1.0, ge=0.0, le=60.0)


class WiegandReaderConfig(_ReaderConfig):
    type: Literal["wiegand"] = "wiegand"
    name: str = Field(default="wiegand", min_length=1)
    d0_pin: int = Field(ge=0, le=27)  # BCM numbers; both lines are pulled up
    d1_pin: int = Field(ge=0, le=27)
    bits: Literal[26, 34, "auto"] = "auto"

    @model_validator(mode="after")
    def _distinct_pins(self) -> Self:
        if self.d0_pin == self.d1_pin:
            raise ValueError("d0_pin and d1_pin must be different pins")
        return self


class Rdm6300ReaderConfig(_ReaderConfig):
    type: Literal["rdm6300"] = "rdm6300"
    name: str = Field(default="rdm6300", min_length=1)
    port: str = Field(min_length=1)  # /dev/ttyAMA0, /dev/serial0 or a /dev/serial/by-id/ glob
    baud: int = Field(default=9600, gt=0)


class KeyboardReaderConfig(_ReaderConfig):
    type: Literal["keyboard"] = "keyboard"
    name: str = Field(default="keyboard", min_length=1)
    device: str = Field(min_length=1)  # /dev/input/... path or glob, or the device's name
    format: Literal["hex", "decimal"] = "hex"


class SimulatedReaderConfig(_ReaderConfig):
    type: Literal["simulated"] = "simulated"
    name: str = Field(default="sim", min_length=1)


ReaderConfig = Annotated[
    WiegandReaderConfig | Rdm6300ReaderConfig | KeyboardReaderConfig | SimulatedReaderConfig,
    Field(discriminator="type"),
]


def open_reader(cfg: ReaderConfig, pin_factory: Factory | None = None) -> BadgeReader:
    """The reader ``cfg`` describes, not yet opened (use ``async with``).

    ``pin_factory`` is needed by GPIO readers (Wiegand) only.
    """
    match cfg:
        case WiegandReaderConfig():
            if pin_factory is None:
                raise AccessError(
                    f"reader {cfg.name!r} is a Wiegand reader and needs a GPIO pin factory"
                )
            return WiegandReader(
                cfg.name,
                d0_pin=cfg.d0_pin,
                d1_pin=cfg.d1_pin,
                bits=cfg.bits,
                pin_factory=pin_factory,
                repeat_suppress=cfg.repeat_suppress,
            )
        case Rdm6300ReaderConfig():
            return Rdm6300Reader(
                cfg.name, port=cfg.port, baud=cfg.baud, repeat_suppress=cfg.repeat_suppress
            )
        case KeyboardReaderConfig():
            return KeyboardReader(
                cfg.name,
                device=cfg.device,
                format=cfg.format,
                repeat_suppress=cfg.repeat_suppress,
            )
        case SimulatedReaderConfig():
            return SimulatedReader(cfg.name, repeat_suppress=cfg.repeat_suppress)
