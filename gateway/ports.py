"""Finding a serial device by path or by glob; shared by the controller and badge readers.

A glob such as ``/dev/serial/by-id/usb-Prusa*`` survives re-plugging into
another USB socket, where ``/dev/ttyACM0`` may become ``/dev/ttyACM1``.
"""

from __future__ import annotations

import glob


def match_port(spec: str) -> list[str]:
    """The device paths ``spec`` names: itself when it is a plain path, else the glob's
    matches, sorted.  The caller says what to do about none or several."""
    if not any(ch in spec for ch in "*?["):
        return [spec]
    return sorted(glob.glob(spec))
