"""`gateway print` end to end: the CLI against `gateway sim` through a real pseudo-terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

GATEWAY = [sys.executable, "-m", "gateway"]
FAST_BAUD = "921600"  # the 20,000-line runs: same code path, shorter wire time


def write_job(path: Path, lines: int) -> None:
    with path.open("w") as fh:
        fh.write("; generated\nG21\nG90\nM83\n")
        for i in range(lines - 3):
            fh.write(f"G1 X{i % 200}.{i % 1000:03d} Y{(i * 7) % 200}.5 E0.01 ; seg {i}\n")


@contextmanager
def simulator(firmware: str, *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [*GATEWAY, "sim", firmware, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    path = proc.stdout.readline().strip()
    try:
        assert path.startswith("/dev/"), proc.stderr.read() if proc.stderr else path
        yield path, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def gateway_print(
    gcode: Path, port: str, firmware: str, baud: str
) -> tuple[int, dict[str, object]]:
    out = subprocess.run(
        [
            *GATEWAY,
            "print",
            str(gcode),
            "--port",
            port,
            "--firmware",
            firmware,
            "--baud",
            baud,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def job20k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jobs") / "tiny.gcode"
    write_job(path, 20_000)
    return path


@pytest.mark.parametrize("firmware", ["marlin", "grbl"])
@pytest.mark.parametrize(
    "faults", [[], ["--error-rate", "0.01", "--drop-rate", "0.005"]], ids=["clean", "faults"]
)
def test_20000_lines_complete(job20k: Path, firmware: str, faults: list[str]) -> None:
    if firmware == "grbl" and faults:
        # GRBL has no checksums: only reply faults are injected (drop/garble).
        faults = ["--drop-rate", "0.005"]
    with simulator(firmware, "--baud", FAST_BAUD, *faults) as (port, _):
        code, result = gateway_print(job20k, port, firmware, FAST_BAUD)
    assert code == 0, result
    assert result["outcome"] == "completed"
    assert result["lines"] == 20_000
    for key in ("seconds", "lines_per_s", "resends", "errors"):
        assert key in result
    if faults and firmware == "marlin":
        assert isinstance(result["resends"], int) and result["resends"] > 0


def test_simulator_executes_every_line_once(tmp_path: Path) -> None:
    job = tmp_path / "j.gcode"
    write_job(job, 500)
    with simulator("marlin", "--baud", FAST_BAUD, "--error-rate", "0.05") as (port, proc):
        code, result = gateway_print(job, port, "marlin", FAST_BAUD)
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert code == 0 and result["outcome"] == "completed"
    assert "0 RX overflows" in err


def test_malformed_file_is_refused_with_its_line(tmp_path: Path) -> None:
    job = tmp_path / "bad.gcode"
    job.write_bytes(b"G28\nG1 X10\n\x01\x02garbage\n")
    with simulator("marlin") as (port, _):
        code, result = gateway_print(job, port, "marlin", "115200")
    assert code == 1
    assert result["outcome"] == "failed"
    assert "line 3" in str(result["error"])


def test_missing_port_is_a_clear_error(tmp_path: Path) -> None:
    job = tmp_path / "j.gcode"
    write_job(job, 10)
    code, result = gateway_print(job, "/dev/serial/by-id/usb-nothing-*", "grbl", "115200")
    assert code == 1
    assert "ls /dev/serial/by-id/" in str(result["error"])
