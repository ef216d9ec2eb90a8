"""Badge readers: Wiegand on GPIO, RDM6300 on serial, USB keyboard readers, and a simulator.

Each reader is a :class:`BadgeReader`: open it with ``async with`` and read
:class:`BadgeRead` events with ``async for read in reader.reads()``.
"""

from gateway.access.readers.base import BadgeRead, BadgeReader, RejectedFrame, normalise_uid
from gateway.access.readers.config import (
    KeyboardReaderConfig,
    Rdm6300ReaderConfig,
    ReaderConfig,
    SimulatedReaderConfig,
    WiegandReaderConfig,
    open_reader,
)
from gateway.access.readers.keyboard import KeyboardReader, KeystrokeDecoder
from gateway.access.readers.rdm6300 import Rdm6300Decoder, Rdm6300Reader
from gateway.access.readers.simulated import SimulatedReader
from gateway.access.readers.wiegand import WiegandDecoder, WiegandFrame, WiegandReader

__all__ = [
    "BadgeRead",
    "BadgeReader",
    "KeyboardReader",
    "KeyboardReaderConfig",
    "KeystrokeDecoder",
    "Rdm6300Decoder",
    "Rdm6300Reader",
    "Rdm6300ReaderConfig",
    "ReaderConfig",
    "RejectedFrame",
    "SimulatedReader",
    "SimulatedReaderConfig",
    "WiegandDecoder",
    "WiegandFrame",
    "WiegandReader",
    "WiegandReaderConfig",
    "normalise_uid",
    "open_reader",
]
