"""The serial edge: find the controller's port and open it with pyserial-asyncio-fast.

A port is configured by path (``/dev/ttyACM0``) or by a glob
(``/dev/serial/by-id/usb-Prusa*``), which survives re-plugging into another
USB socket.  pyserial's errors are converted here into :class:`SerialPortError`
with a message that says what to check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar, cast

import serial
import serial_asyncio_fast

from gateway.machine.errors import MachineError
from gateway.ports import match_port


class SerialPortError(MachineError):
    """The controller's serial port cannot be found, opened, or was lost."""


def resolve_port(spec: str) -> str:
    """Return the one device path ``spec`` names (a path or a glob)."""
    matches = match_port(spec)
    if not matches:
        raise SerialPortError(
            f"no serial port matches {spec!r}; is the controller plugged in and powered? "
            "check `ls /dev/serial/by-id/`"
        )
    if len(matches) > 1:
        raise SerialPortError(
            f"{len(matches)} serial ports match {spec!r} ({', '.join(matches)}); "
            "make serial.port name exactly one"
        )
    return matches[0]


P = TypeVar("P", bound=asyncio.Protocol)


async def open_port(spec: str, baud: int, protocol_factory: Callable[[], P]) -> P:
    """Open the port at ``baud`` 8N1 with no flow control, served by a new protocol."""
    path = resolve_port(spec)
    try:
        _, protocol = await serial_asyncio_fast.create_serial_connection(
            asyncio.get_running_loop(),
            protocol_factory,
            url=path,
            baudrate=baud,
            bytesize=8,
            parity="N",
            stopbits=1,
            xonxoff=False,
            rtscts=False,
            dsrdtr=False,
        )
    except (serial.SerialException, OSError) as err:
        raise SerialPortError(
            f"could not open serial port {path}: {err}; check the cable, that no other program "
            "(OctoPrint, a slicer) holds the port, and that the gateway user is in the dialout "
            "group (`ls -l /dev/serial/by-id/`)"
        ) from err
    return cast(P, protocol)
