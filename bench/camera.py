"""Camera fan-out benchmark: frames delivered and the server's CPU at 1 and 10 viewers.

    .venv/bin/python bench/camera.py [--fps 15] [--width 640] [--height 480] [--seconds 5]

The server (the camera service with the synthetic camera, behind its router on
uvicorn) runs in a child process; the viewers run here, so their work is not
counted.  The server's CPU is its process CPU time (user + system, all threads,
from /proc/<pid>/stat) over wall time.  Each frame is encoded once whatever the
number of viewers, so serving ten should cost little more than serving one:
the target is CPU(10 viewers) <= 1.3 x CPU(1 viewer).  It prints its figures
with the target beside them and never fails on a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.3
MARK = b"--frame\r\nContent-Type: image/jpeg\r\n"


# ---------------------------------------------------------------------- server (child)


async def serve(fps: float, width: int, height: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    from gateway.bus import EventBus
    from gateway.camera.config import CameraConfig, TimelapseConfig
    from gateway.camera.routes import camera_router
    from gateway.camera.service import CameraService
    from gateway.commands import CommandRouter

    config = CameraConfig(
        enabled=True,
        backend="synthetic",
        width=width,
        height=height,
        fps=fps,
        max_viewers=64,
        timelapse=TimelapseConfig(mode="off"),
    )
    with tempfile.TemporaryDirectory() as state:
        service = CameraService(config, Path(state), EventBus(), CommandRouter())
        app = FastAPI()
        app.include_router(camera_router(service))
        sock = socket.create_server(("127.0.0.1", 0))
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        )
        async with asyncio.TaskGroup() as tg:
            camera = tg.create_task(service.run())
            web = tg.create_task(server.serve(sockets=[sock]))
            while not server.started:
                await asyncio.sleep(0.01)
            print(f"port {sock.getsockname()[1]}", flush=True)
            # Until the parent closes our stdin.
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            server.should_exit = True
            await web
            camera.cancel()


# ---------------------------------------------------------------------- viewers (parent)


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5) (utime, stime), counted after the ")" of the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def viewer(port: int, counts: list[int], i: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/camera/stream.mjpg HTTP/1.1\r\nHost: bench\r\n\r\n")
    await writer.drain()
    tail = b""
    try:
        while chunk := await reader.read(256 * 1024):
            data = tail + chunk
            counts[i] += data.count(MARK)
            tail = data[-(len(MARK) - 1) :]
    finally:
        writer.close()


async def measure(pid: int, port: int, viewers: int, seconds: float) -> tuple[float, list[float]]:
    """(server CPU as a fraction of one core, frames per second each viewer received)."""
    counts = [0] * viewers
    tasks = [asyncio.create_task(viewer(port, counts, i)) for i in range(viewers)]
    try:
        await asyncio.sleep(1.0)  # connect and settle
        before = list(counts)
        cpu0, wall0 = process_cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, wall1 = process_cpu_seconds(pid), time.monotonic()
        wall = wall1 - wall0
        rates = [(c - b) / wall for c, b in zip(counts, before, strict=True)]
        return (cpu1 - cpu0) / wall, rates
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.5)  # let the server notice they left


async def main(args: argparse.Namespace) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        "--fps",
        str(args.fps),
        "--width",
        str(args.width),
        "--height",
        str(args.height),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        port = int(line.split()[1])
        print(
            f"camera fan-out: synthetic {args.width}x{args.height} at {args.fps:g} fps, "
            f"{args.seconds:g} s per step, server pid {proc.pid} on {os.cpu_count()} cores"
        )
        print(f"{'viewers':>8} {'frames/s per viewer':>22} {'server CPU':>11}")
        results: dict[int, float] = {}
        for n in (0, 1, 10):
            cpu, rates = await measure(proc.pid, port, n, args.seconds)
            results[n] = cpu
            shown = "-" if not rates else f"{min(rates):.1f} .. {max(rates):.1f}"
            print(f"{n:>8} {shown:>22} {cpu * 100:>10.1f}%")
        ratio = results[10] / results[1] if results[1] > 0 else float("inf")
        verdict = "within target" if ratio <= TARGET_RATIO else "OVER target"
        print(
            f"CPU at 10 viewers / CPU at 1 viewer = {ratio:.2f} "
            f"(target <= {TARGET_RATIO}): {verdict}"
        )
        per_viewer = (results[10] - results[1]) / 9
        print(
            f"each extra viewer costs {per_viewer * 100:.2f}% of a core; "
            f"the camera itself (0 viewers) {results[0] * 100:.1f}%"
        )
    finally:
        proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(options.fps, options.width, options.height))
    else:
        asyncio.run(main(options))
