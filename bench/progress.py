"""Progress benchmark: how right is the time left, measured against the true end.

A simulated Marlin and a simulated GRBL run on a pty with real-time motion (the
simulator's ``time_scale``: moves take distance / feed, homing and heating take
their time, all scaled), and the machine service streams a small print
(homing, layers of perimeters, infill and travel; preheated) or a laser job.
Travel is written as ``G1``: GRBL's default rapid rate (``$110`` 500 mm/min) is
far below what the analysis assumes for ``G0``, so a default-configured GRBL
would show that mismatch, not the progress logic.  Four times a second the
job's ``eta_seconds`` is read as a screen would; once the job has completed,
each reading is turned into a predicted end time and compared with the true
one.  Printed: the worst error of that predicted end, as a share of the job's
duration, over the readings after the first 10 % of the run (target within
+-10 %), and whether progress ever went backwards.  Printed, never asserted.

    python bench/progress.py [--scale 0.25] [--layers 6]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import tempfile
import time
from pathlib import Path

from gateway.bus import EventBus
from gateway.commands import CommandRouter
from gateway.config import JobsConfig, MachineConfig, SerialConfig
from gateway.machine.service import MachineService
from gateway.machine.sim.firmware import SimulatedFirmware
from gateway.machine.sim.grbl import SimulatedGrbl
from gateway.machine.sim.marlin import SimulatedMarlin
from gateway.machine.sim.pty import PtyController
from gateway.supervisor import Supervisor

TARGET = 0.10


def print_job(path: Path, layers: int, firmware: str) -> None:
    """Warm-up, homing, then per layer a perimeter of short segments, a zig-zag
    infill of long lines and a travel: very different times per line."""
    with path.open("w") as fh:
        if firmware == "grbl":
            fh.write("G21\nG90\nG0 Z5\nM4 S0\n")
        else:
            fh.write("M140 S60\nM104 S200\nM190 S60\nM109 S200\nG28\nG21\nG90\nM83\n")
        for layer in range(layers):
            z = 0.2 * (layer + 1)
            fh.write(f"G1 Z{z:.2f} F600\n")
            for i in range(120):  # perimeter: tiny segments at 30 mm/s
                a = 2 * math.pi * i / 120
                x, y = 100 + 30 * math.cos(a), 100 + 30 * math.sin(a)
                word = f" S{600 + i}" if firmware == "grbl" else " E0.05"
                fh.write(f"G1 X{x:.3f} Y{y:.3f}{word} F1800\n")
            for k in range(12):  # infill: long lines at 60 mm/s
                y = 75 + 4 * k
                x = 75 if k % 2 else 125
                word = " S900" if firmware == "grbl" else " E1.5"
                fh.write(f"G1 X{x} Y{y}{word} F3600\n")
            fh.write("G1 X20 Y20 F6000\n")  # travel


async def run(firmware: str, scale: float, layers: int, tmp: Path) -> None:
    fw: SimulatedFirmware = (
        SimulatedGrbl(time_scale=scale)
        if firmware == "grbl"
        else SimulatedMarlin(time_scale=scale)
    )
    bus, commands = EventBus(), CommandRouter()
    async with PtyController(fw, baud=115200) as sim:
        machine = MachineService(
            machine=MachineConfig(id="bench", firmware=firmware),  # type: ignore[arg-type]
            serial=SerialConfig(status_interval=0.2),
            jobs=JobsConfig(),
            db_path=tmp / f"{firmware}.db",
            files_dir=tmp / f"files-{firmware}",
            bus=bus,
            commands=commands,
            port=lambda: sim.path,
        )
        sup = Supervisor(bus)
        sup.add(machine)
        await sup.start()
        try:
            while machine.state.value != "idle":
                await asyncio.sleep(0.05)
            if firmware == "marlin":
                # Preheated, as members do before a print: no model knows how long
                # a heat-up takes (the time left holds still through one).
                for line in ("M140 S60", "M190 S60", "M109 S200"):
                    await commands.call("send_gcode", {"line": line})
                while machine.temperatures.get("T0", (0.0, 0.0))[0] < 199.0:
                    await asyncio.sleep(0.1)
            source = tmp / f"{firmware}.gcode"
            print_job(source, layers, firmware)
            machine.files.add_path(source)
            await commands.call("start_job", {"file": source.name})
            job = machine.job
            assert job is not None
            t0 = time.monotonic()
            readings: list[tuple[float, float | None, float]] = []
            while not job.finished:
                d = job.as_dict(time.monotonic())
                readings.append((time.monotonic() - t0, d["eta_seconds"], d["fraction"]))
                await asyncio.sleep(0.25)
            total = time.monotonic() - t0
        finally:
            await sup.stop()
    worst = 0.0
    backwards = 0
    last_fraction = 0.0
    for t, eta, fraction in readings:
        if fraction < last_fraction - 1e-9:
            backwards += 1
        last_fraction = max(last_fraction, fraction)
        if t < 0.1 * total:
            continue
        if eta is None:
            worst = math.inf
            continue
        error = (t + eta - total) / total
        if abs(error) > abs(worst):
            worst = error
    verdict = "ok" if abs(worst) <= TARGET else "MISSED"
    print(
        f"{firmware:7s} {job.state.value:9s} {total:6.1f} s  worst end-time error after 10 %: "
        f"{worst * 100:+6.1f} % (target +-{TARGET * 100:.0f} %, {verdict}); "
        f"progress went backwards {backwards} time(s); {len(readings)} readings"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.25, help="simulator time_scale")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--firmware", choices=["marlin", "grbl", "both"], default="both")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    kinds = ["marlin", "grbl"] if args.firmware == "both" else [args.firmware]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            await run(kind, args.scale, args.layers, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
