from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.machine.files import FileLibrary, FileRejected, sanitise_name

GOOD = b"; a square\nG21\nG90\nM83\nG1 X10 Y0 E1 F1200\nG1 X10 Y10 E1\nG1 X0 Y10 E1\nG1 X0 Y0 E1\n"


def library(tmp_path: Path, max_bytes: int = 1_000_000) -> FileLibrary:
    return FileLibrary(
        tmp_path / "files", firmware="marlin", max_line_length=96, max_bytes=max_bytes
    )


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd.gcode",
        "..",
        "a/b.gcode",
        "a\\b.gcode",
        ".hidden.gcode",
        "",
        "x\x00.gcode",
        "notes.txt",
        "a" * 200 + ".gcode",
    ],
)
def test_path_tricks_and_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(FileRejected) as err:
        sanitise_name(name)
    assert err.value.code == "bad_name"


def test_odd_characters_are_replaced() -> None:
    assert sanitise_name("Benchy (v2) ä?.gcode") == "Benchy (v2) __.gcode"


async def test_upload_is_cleaned_analysed_and_listed(tmp_path: Path) -> None:
    lib = library(tmp_path)
    stored = await lib.add("square.gcode", chunks(GOOD))
    assert stored.lines == 7
    assert stored.size == len(GOOD)
    assert stored.estimated_seconds is not None and stored.estimated_seconds > 0
    prepared = lib.prepared_path("square.gcode").read_text().splitlines()
    assert prepared[0] == "G21" and all(";" not in line for line in prepared)
    assert [f.name for f in lib.list()] == ["square.gcode"]
    lib.delete("square.gcode")
    assert lib.list() == []
    with pytest.raises(FileRejected) as err:
        lib.get("square.gcode")
    assert err.value.code == "not_found"


async def test_oversized_upload_leaves_nothing_behind(tmp_path: Path) -> None:
    lib = library(tmp_path, max_bytes=100)
    await lib.add("keep.gcode", chunks(b"G28\n"))
    with pytest.raises(FileRejected) as err:
        await lib.add("big.gcode", chunks(b"G1 X1\n" * 100))
    assert err.value.code == "too_large"
    assert [f.name for f in lib.list()] == ["keep.gcode"]
    assert list((tmp_path / "files" / ".incoming").iterdir()) == []


async def test_malformed_gcode_is_rejected_with_its_line_and_old_copy_kept(tmp_path: Path) -> None:
    lib = library(tmp_path)
    await lib.add("part.gcode", chunks(GOOD))
    bad = GOOD + "M117 caf\u00e9\n".encode()
    with pytest.raises(FileRejected) as err:
        await lib.add("part.gcode", chunks(bad))
    assert err.value.code == "invalid_gcode"
    assert "line 9" in str(err.value)
    assert lib.get("part.gcode").size == len(GOOD)
