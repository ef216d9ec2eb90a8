"""A simulated GPIO whose output levels another process can read: one file per pin.

``access.gpio = "sim-file"`` puts the access devices on these pins.  Each pin
that is an output writes its level (``0`` or ``1``) to ``<directory>/GPIO<n>``
whenever it changes.  Like a real GPIO output register, the level stays as it
was when the process that drove it dies, so a test can SIGKILL the daemon and
see whether anything (``gateway relay-off`` in ``ExecStopPost=``) brings the
relay back to off.  Inputs behave as gpiozero's ``MockPin``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin


def read_level(directory: Path, pin: int) -> int | None:
    """The last level written for BCM ``pin``, or None if it was never an output."""
    try:
        return int((directory / f"GPIO{pin}").read_text().strip())
    except FileNotFoundError:
        return None


class FilePin(MockPin):  # type: ignore[misc]
    """A ``MockPin`` that writes its output level to a file."""

    def _write(self) -> None:
        directory: Path = self.factory.directory
        path = directory / self.info.name
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(f"{int(bool(self._state))}\n")
        os.replace(partial, path)  # readers never see a half-written file

    def _set_function(self, value: Any) -> None:
        super()._set_function(value)
        if value == "output":
            self._write()

    def _change_state(self, value: Any) -> bool:
        changed: bool = super()._change_state(value)
        if self._function == "output":
            self._write()
        return changed


class FilePinFactory(MockFactory):  # type: ignore[misc]
    """Mock pins whose output levels live in files under ``directory``."""

    def __init__(self, directory: Path) -> None:
        super().__init__(pin_class=FilePin)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
