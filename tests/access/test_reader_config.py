"""Reader config: the discriminated union, its validation, and open_reader."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory
from pydantic import TypeAdapter, ValidationError

from gateway.access.errors import AccessError
from gateway.access.readers import (
    KeyboardReader,
    KeyboardReaderConfig,
    Rdm6300Reader,
    Rdm6300ReaderConfig,
    ReaderConfig,
    SimulatedReader,
    SimulatedReaderConfig,
    WiegandReader,
    WiegandReaderConfig,
    open_reader,
)

readers = TypeAdapter(ReaderConfig)


def test_union_picks_the_model_by_type() -> None:
    assert isinstance(
        readers.validate_python({"type": "wiegand", "d0_pin": 5, "d1_pin": 6}),
        WiegandReaderConfig,
    )
    rdm = readers.validate_python({"type": "rdm6300", "port": "/dev/serial0"})
    assert isinstance(rdm, Rdm6300ReaderConfig) and rdm.baud == 9600
    kbd = readers.validate_python({"type": "keyboard", "device": "USB Reader"})
    assert isinstance(kbd, KeyboardReaderConfig) and kbd.format == "hex"
    sim = readers.validate_python({"type": "simulated"})
    assert isinstance(sim, SimulatedReaderConfig) and sim.name == "sim"


@pytest.mark.parametrize(
    "raw",
    [
        {"d0_pin": 5, "d1_pin": 6},  # no type
        {"type": "nfc"},
        {"type": "wiegand", "d0_pin": 5, "d1_pin": 5},
        {"type": "wiegand", "d0_pin": 5, "d1_pin": 6, "bits": 37},
        {"type": "wiegand", "d0_pin": 5, "d1_pin": 60},
        {"type": "rdm6300", "port": "/dev/serial0", "speed": 9600},
        {"type": "keyboard", "device": "x", "format": "octal"},
        {"type": "simulated", "repeat_suppress": -1},
    ],
)
def test_bad_configs_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        readers.validate_python(raw)


def test_configs_are_frozen() -> None:
    cfg = SimulatedReaderConfig()
    with pytest.raises(ValidationError):
        cfg.name = "other"


def test_open_reader_builds_each_kind() -> None:
    factory = MockFactory()
    wiegand = open_reader(
        WiegandReaderConfig(name="door", d0_pin=5, d1_pin=6, bits=26, repeat_suppress=2.0),
        factory,
    )
    assert isinstance(wiegand, WiegandReader)
    assert (wiegand.name, wiegand.repeat_suppress) == ("door", 2.0)
    assert isinstance(open_reader(Rdm6300ReaderConfig(port="/dev/serial0")), Rdm6300Reader)
    kbd = open_reader(KeyboardReaderConfig(device="USB Reader", format="decimal"))
    assert isinstance(kbd, KeyboardReader) and kbd.format == "decimal"
    assert isinstance(open_reader(SimulatedReaderConfig()), SimulatedReader)


def test_wiegand_needs_a_pin_factory() -> None:
    with pytest.raises(AccessError, match="pin factory"):
        open_reader(WiegandReaderConfig(d0_pin=5, d1_pin=6))
