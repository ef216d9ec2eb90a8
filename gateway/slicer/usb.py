"""USB sticks at the kiosk: the volumes mounted under a root folder and their G-code.

On the Pi image udisks2 mounts a stick under ``/media/<user>/<label>``; the adapter
lists the folders under ``slicer.usb_root`` that are mount points and the G-code
files on each.  Its simulated twin, :class:`SimulatedSticks`, is a folder whose
sub-folders are "plugged" sticks: ``plug`` creates one (with the files given, or a
small demo job), ``unplug`` removes it, like pulling the stick.  Reading a file
from a stick that is pulled mid-copy raises :class:`OSError`, which the copy turns
into a clear error with nothing left in the library.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.slicer.errors import SlicerError

#: Files offered from a stick (the issue's list; other G-code suffixes stay hidden).
STICK_SUFFIXES = (".gcode", ".gco", ".nc")
MAX_FILES = 200
MAX_DEPTH = 3

DEMO_JOB = (
    "; demo job on a simulated USB stick\nG28\nG90\nM104 S200\n"
    + "".join(f"G1 X{10 + i % 5 * 5} Y{10 + i % 3 * 5} F1800\n" for i in range(40))
    + "M104 S0\n"
)


@dataclass(frozen=True, slots=True)
class StickFile:
    volume: str
    path: str  # relative to the volume
    name: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class UsbVolumes:
    """Sticks mounted under ``root`` (only real mount points unless ``any_folder``)."""

    def __init__(self, root: Path, *, any_folder: bool = False) -> None:
        self.root = root
        self.any_folder = any_folder

    def volumes(self) -> list[str]:
        try:
            entries = sorted(self.root.iterdir())
        except OSError:
            return []
        return [
            e.name
            for e in entries
            if e.is_dir() and not e.name.startswith(".") and (self.any_folder or os.path.ismount(e))
        ]

    def files(self) -> list[StickFile]:
        found: list[StickFile] = []
        for volume in self.volumes():
            base = self.root / volume
            for path in _walk(base, 0):
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                found.append(StickFile(volume, str(path.relative_to(base)), path.name, size))
                if len(found) >= MAX_FILES:
                    return found
        return found

    def resolve(self, volume: str, path: str) -> Path:
        """The stick file ``path`` on ``volume``, refusing anything outside the stick."""
        if volume not in self.volumes():
            raise SlicerError("no_stick", "that USB stick is not plugged in any more")
        base = (self.root / volume).resolve()
        target = (base / path).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            raise SlicerError("not_found", "that file is not on the stick")
        if not target.name.lower().endswith(STICK_SUFFIXES):
            raise SlicerError("bad_name", "only .gcode, .gco and .nc files print from a stick")
        return target


def _walk(folder: Path, depth: int) -> Iterator[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for e in entries:
        if e.name.startswith(".") or e.is_symlink():
            continue
        if e.is_file() and e.name.lower().endswith(STICK_SUFFIXES):
            yield e
        elif e.is_dir() and depth < MAX_DEPTH:
            yield from _walk(e, depth + 1)


class SimulatedSticks:
    """The simulated twin: sticks are folders under ``root``; it records its history."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.history: list[tuple[str, str]] = []

    def plug(self, name: str, files: dict[str, bytes] | None = None) -> Path:
        if not name or "/" in name or name.startswith(".") or len(name) > 64:
            raise SlicerError("bad_args", "a stick's name is a plain folder name, e.g. STICK")
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        for file, data in (files or {"demo-job.gcode": DEMO_JOB.encode()}).items():
            (folder / Path(file).name).write_bytes(data)
        self.history.append(("plug", name))
        return folder

    def unplug(self, name: str) -> bool:
        folder = self.root / name
        if "/" in name or not folder.is_dir():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        self.history.append(("unplug", name))
        return True
