"""USB sticks: the simulated twin (a folder) and the volume listing it is read through."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.slicer.errors import SlicerError
from gateway.slicer.usb import SimulatedSticks, UsbVolumes


def test_plugged_stick_lists_gcode_and_refuses_path_tricks(tmp_path: Path) -> None:
    sticks = SimulatedSticks(tmp_path)
    folder = sticks.plug("STICK", {"a.gcode": b"G28\n", "notes.txt": b"hi"})
    (folder / "sub").mkdir()
    (folder / "sub" / "b.NC").write_bytes(b"G0 X1\n")
    (tmp_path / "secret.gcode").write_bytes(b"G28\n")
    usb = UsbVolumes(tmp_path, any_folder=True)
    assert usb.volumes() == ["STICK"]
    assert sorted(f.path for f in usb.files()) == ["a.gcode", "sub/b.NC"]
    assert usb.resolve("STICK", "sub/b.NC").read_bytes() == b"G0 X1\n"
    with pytest.raises(SlicerError):
        usb.resolve("STICK", "../secret.gcode")
    with pytest.raises(SlicerError):
        usb.resolve("STICK", "notes.txt")
    assert sticks.unplug("STICK")
    assert usb.volumes() == [] and usb.files() == []
    with pytest.raises(SlicerError, match="not plugged in"):
        usb.resolve("STICK", "a.gcode")
    assert sticks.history == [("plug", "STICK"), ("unplug", "STICK")]


def test_real_volumes_are_mount_points_only(tmp_path: Path) -> None:
    (tmp_path / "not-mounted").mkdir()
    assert UsbVolumes(tmp_path).volumes() == []
    assert UsbVolumes(tmp_path / "missing").volumes() == []
