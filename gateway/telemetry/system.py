"""Health of the Raspberry Pi itself: CPU temperature, load, disk, memory, uptime.

Each reader takes the file it reads as a parameter (tests point them at
``tmp_path``) and returns ``None`` when the file is missing or unreadable, so a
desktop, a container or an unusual kernel just yields fewer figures.  They
block briefly on ``/proc`` and ``/sys``; the service calls
:func:`read_system` through ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
LOADAVG = Path("/proc/loadavg")
UPTIME = Path("/proc/uptime")
MEMINFO = Path("/proc/meminfo")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def cpu_temperature(path: Path = THERMAL_ZONE) -> float | None:
    """SoC temperature in °C; the kernel reports millidegrees."""
    text = _read_text(path)
    try:
        return round(int(text.strip()) / 1000.0, 1) if text else None
    except ValueError:
        return None


def load_average(path: Path = LOADAVG) -> tuple[float, float, float] | None:
    """1, 5 and 15 minute load averages."""
    text = _read_text(path)
    if text is None:
        try:
            return os.getloadavg()
        except OSError:
            return None
    try:
        one, five, fifteen = (float(x) for x in text.split()[:3])
    except ValueError:
        return None
    return one, five, fifteen


def uptime_seconds(path: Path = UPTIME) -> float | None:
    """Seconds since the Pi booted."""
    text = _read_text(path)
    try:
        return float(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def memory(path: Path = MEMINFO) -> dict[str, int] | None:
    """``total_bytes`` and ``available_bytes`` from ``/proc/meminfo``."""
    text = _read_text(path)
    if text is None:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in ("MemTotal", "MemAvailable") and parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
            values[key] = int(parts[0]) * scale
    if "MemTotal" not in values:
        return None
    return {"total_bytes": values["MemTotal"], "available_bytes": values.get("MemAvailable", 0)}


def disk_free(path: Path) -> dict[str, int] | None:
    """Free and total bytes of the file system holding ``path`` (the state dir)."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return {"free_bytes": usage.free, "total_bytes": usage.total}


def read_system(
    state_dir: Path,
    *,
    process_uptime: float | None = None,
    thermal_zone: Path = THERMAL_ZONE,
    loadavg: Path = LOADAVG,
    uptime: Path = UPTIME,
    meminfo: Path = MEMINFO,
) -> dict[str, Any]:
    """One sample of everything above, as the ``system`` object of ``telemetry``."""
    load = load_average(loadavg)
    return {
        "cpu_temperature": cpu_temperature(thermal_zone),
        "load_average": list(load) if load is not None else None,
        "disk": disk_free(state_dir),
        "memory": memory(meminfo),
        "uptime_seconds": uptime_seconds(uptime),
        "gateway_uptime_seconds": (
            round(process_uptime, 1) if process_uptime is not None else None
        ),
    }
