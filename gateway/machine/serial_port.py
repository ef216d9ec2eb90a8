"""The serial edge: find the controller's port and open it with pyserial.

A port is configured by path (``/dev/ttyACM0``) or by a glob
(``/dev/serial/by-id/usb-Prusa*``), which survives re-plugging into another
USB socket.  pyserial's errors are converted here into :class:`SerialPortError`
with a message that says what to check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

import serial

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


class SerialUser(Protocol):
    """What :func:`open_port` hands the opened port to (the streamer)."""

    def attach(self, port: serial.Serial) -> None: ...


U = TypeVar("U", bound=SerialUser)


def open_serial(path: str, baud: int) -> serial.Serial:
    """The port at ``path``, 8N1 at ``baud``, no flow control, non-blocking (the
    streamer's own thread waits on the descriptor).  Blocking: call it off the loop."""
    return serial.serial_for_url(
        path,
        baudrate=baud,
        bytesize=8,
        parity="N",
        stopbits=1,
        xonxoff=False,
        rtscts=False,
        dsrdtr=False,
        timeout=0,
        write_timeout=0,
    )


async def open_port(spec: str, baud: int, user_factory: Callable[[], U]) -> U:
    """Open the port at ``baud`` 8N1 with no flow control and hand it to a new user.

    pyserial opens and configures the device (termios, exclusive access); the
    streamer then reads and writes its descriptor directly (see
    :mod:`gateway.machine.streamer` for why).
    """
    path = resolve_port(spec)
    try:
        port = await asyncio.to_thread(open_serial, path, baud)
    except (serial.SerialException, OSError) as err:
        raise SerialPortError(
            f"could not open serial port {path}: {err}; check the cable, that no other program "
            "(OctoPrint, a slicer) holds the port, and that the gateway user is in the dialout "
            "group (`ls -l /dev/serial/by-id/`)"
        ) from err
    try:
        user = user_factory()
        user.attach(port)
    except BaseException:
        port.close()
        raise
    return user
