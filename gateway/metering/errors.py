"""The metering capability's exceptions: one base, messages that say what to do next."""

from __future__ import annotations


class MeteringError(Exception):
    """Base of every metering error."""


class MeterError(MeteringError):
    """A meter could not be read (timeout, CRC error, unplugged, bad answer).

    ``reason`` is a short machine-readable word used to count failures:
    ``timeout``, ``crc``, ``unplugged``, ``bad_reply``, ``http``, ``no_data``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PriceRuleError(MeteringError):
    """Price rules that cannot be used; the message names the key and why."""
