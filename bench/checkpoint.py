"""Benchmark the resume checkpoint: what keeping it durable costs per streamed line.

Replays a job's confirmed lines at a given line rate on a synthetic clock
(layers every ``--layer-lines`` lines), asks :class:`CheckpointPolicy` after
each line, and writes the row to a real SQLite file (WAL,
``synchronous=FULL``) whenever it says so.  Prints the CPU and wall time per
line (the writes run on a store thread in the daemon, so the event loop pays
only the policy check; both figures are shown), and the time of one durable
write.  Timings are reported, never enforced.

    .venv/bin/python bench/checkpoint.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gateway.machine.checkpoint import Checkpoint, CheckpointPolicy, connect, save

TARGET_US = 5.0  # µs per line, against a 50 µs per-line streaming budget


def run(db: Path, lines: int, rate: float, layer_lines: int) -> None:
    conn = connect(db)
    cp = Checkpoint(
        machine_id="bench",
        job_id=1,
        file="bench.gcode",
        file_sha256="0" * 64,
        lines_total=lines,
        kind="printer",
        firmware="marlin",
        firmware_version="Marlin bench",
        member_id="m",
        member_name="M",
        line=0,
        layer=0,
        z=0.0,
        started_at=0.0,
        updated_at=0.0,
    )
    policy = CheckpointPolicy()
    writes: list[float] = []
    check_cpu = 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for line in range(1, lines + 1):
        now = line / rate
        layer = line // layer_lines
        t = time.process_time()
        due = policy.due(line, layer, now)
        check_cpu += time.process_time() - t
        if due:
            w = time.perf_counter()
            save(conn, cp.advanced(line, layer, layer * 0.2, now))
            writes.append(time.perf_counter() - w)
            policy.wrote(line, layer, now)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    conn.close()
    print(
        f"{rate:>6.0f} lines/s: {len(writes)} writes for {lines:,} lines; "
        f"per line {cpu / lines * 1e6:.2f} µs CPU, {wall / lines * 1e6:.2f} µs wall "
        f"(target ≤ {TARGET_US:.0f} µs); on the event loop (policy only) "
        f"{check_cpu / lines * 1e6:.2f} µs; one durable write median "
        f"{statistics.median(writes) * 1e3:.2f} ms, max {max(writes) * 1e3:.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--layer-lines", type=int, default=2_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="checkpoint-bench-") as tmp:
        for rate in (200.0, 1_000.0, 5_000.0):
            run(Path(tmp) / f"cp-{rate:.0f}.db", args.lines, rate, args.layer_lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
