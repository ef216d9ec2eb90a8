"""Pi health readers: real values from files, ``None`` when a file is missing."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.telemetry import system


def test_readers_parse_kernel_files(tmp_path: Path) -> None:
    (tmp_path / "temp").write_text("48312\n")
    (tmp_path / "loadavg").write_text("0.52 0.31 0.20 1/123 4567\n")
    (tmp_path / "uptime").write_text("12345.67 40000.00\n")
    (tmp_path / "meminfo").write_text(
        "MemTotal:        3884096 kB\nMemFree:  100 kB\nMemAvailable:    2000000 kB\n"
    )
    sample = system.read_system(
        tmp_path,
        process_uptime=12.345,
        thermal_zone=tmp_path / "temp",
        loadavg=tmp_path / "loadavg",
        uptime=tmp_path / "uptime",
        meminfo=tmp_path / "meminfo",
    )
    assert sample["cpu_temperature"] == 48.3
    assert sample["load_average"] == [0.52, 0.31, 0.20]
    assert sample["uptime_seconds"] == 12345.67
    assert sample["memory"] == {"total_bytes": 3884096 * 1024, "available_bytes": 2000000 * 1024}
    assert sample["disk"]["free_bytes"] > 0
    assert sample["gateway_uptime_seconds"] == 12.3
    json.dumps(sample)


def test_missing_or_garbled_files_give_none(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    (tmp_path / "garbled").write_text("not a number")
    assert system.cpu_temperature(missing) is None
    assert system.cpu_temperature(tmp_path / "garbled") is None
    assert system.uptime_seconds(missing) is None
    assert system.memory(missing) is None
    assert system.memory(tmp_path / "garbled") is None
    assert system.disk_free(missing) is None
    sample = system.read_system(
        missing, thermal_zone=missing, uptime=missing, meminfo=missing, loadavg=missing
    )
    assert sample["cpu_temperature"] is None and sample["disk"] is None
    # Load average falls back to os.getloadavg() when /proc is absent.
    assert sample["load_average"] is None or len(sample["load_average"]) == 3
