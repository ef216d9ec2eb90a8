"""The one place the GPIO backend is chosen.

Every access device takes an explicit ``pin_factory`` (never gpiozero's global
default), so the daemon decides once, at start-up and from config, whether the
relay and the badge reader sit on real pins (lgpio) or on gpiozero's
``MockFactory`` (simulation mode and tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory

from gateway.access.errors import AccessError

PinFactoryKind = Literal["lgpio", "mock", "sim-file"]


def make_pin_factory(kind: PinFactoryKind, *, state_dir: Path | None = None) -> Factory:
    """Return a new pin factory of ``kind``.

    ``"lgpio"`` opens the Pi's GPIO chip through lgpio, imported only here and
    only when asked, so that a laptop running the simulator needs no lgpio.
    ``"mock"`` returns a ``MockFactory`` whose pins record their history
    (``MockPin.states``) for tests and simulation.
    ``"sim-file"`` is a simulation whose output levels are files under
    ``<state_dir>/gpio`` (:mod:`gateway.ops.filepins`), readable from outside.
    """
    if kind == "mock":
        return MockFactory()
    if kind == "sim-file":
        from gateway.ops.filepins import FilePinFactory

        if state_dir is None:
            raise AccessError("the sim-file GPIO backend needs the state directory")
        return FilePinFactory(state_dir / "gpio")
    if kind == "lgpio":
        try:
            from gpiozero.pins.lgpio import LGPIOFactory
        except ImportError as err:
            raise AccessError(
                f"could not open the GPIO chip: the lgpio library is not installed ({err}); "
                "install the gateway with its 'pi' extra (pip install 'makerspace-gateway[pi]') "
                "or use gpio: mock to run without hardware"
            ) from err
        try:
            return LGPIOFactory()
        except Exception as err:  # lgpio raises its own error type and OSError
            raise AccessError(
                f"could not open the GPIO chip: {err}; is the gateway user in the gpio group? "
                "(check `ls -l /dev/gpiochip*` and `groups`)"
            ) from err
    raise AccessError(f"unknown GPIO backend {kind!r}; use 'lgpio', 'mock' or 'sim-file'")
