"""Upload benchmark: a slicer's 100 MB upload through ``/api/files/local`` while a job
streams, with the daemon's memory and the job's streaming rate watched throughout.

The daemon runs as ``gateway run`` in its own process (simulation mode: a simulated
Marlin controller on a pseudo-terminal at an emulated 115200 baud, ``time_scale`` 0 so
lines flow as fast as the wire allows).  This process:

1. starts a long job and measures its lines per second for ``--window`` seconds;
2. uploads a ``--size-mb`` G-code file with a member's slicer key and ``print=true``
   (streamed from a file on disk, as a slicer does), sampling the daemon's resident
   memory (``/proc/<pid>/status`` VmRSS) every 20 ms and the job's progress;
3. measures the job's lines per second again after the upload.

It prints the upload's MB/s (the body's transfer, and end to end including the
gateway's check and analysis of the file), the daemon's RSS before and at its peak
during the upload, and the streaming rate before, during and after, with the targets
beside them (RSS growth < 10 MB: the upload is streamed to disk; streaming slows < 5 %).
It never fails on a timing.

    python bench/upload.py [--size-mb 100] [--window 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from gateway.slicer.cli import key_create
from gateway.web.tokens_cli import token_create

RSS_TARGET_MB = 10.0
SLOWDOWN_TARGET = 0.05
JOB_LINES = 400_000


def write_job(path: Path, lines: int) -> None:
    with path.open("w") as fh:
        fh.write("; bench: upload (the running job)\nG21\nG90\nG92 E0\nG1 F3000\n")
        for i in range(lines - 5):
            fh.write(f"G1 X{10 + (i % 180):.1f} Y{10 + (i * 7 % 180):.1f} E{i * 0.01:.3f}\n")


def write_upload(path: Path, size: int) -> None:
    block = "".join(
        f"G1 X{10 + (i % 200) * 0.5:.2f} Y{10 + (i * 7 % 200) * 0.5:.2f} E{i * 0.0125:.4f}\n"
        for i in range(4000)
    ).encode()
    with path.open("wb") as fh:
        fh.write(b"; bench: upload (the slicer's file)\nG21\nG90\nM82\nG92 E0\nG1 F1800\n")
        written = 0
        while written < size:
            fh.write(block)
            written += len(block)


def start_daemon(state: Path) -> tuple[subprocess.Popen[str], str, str, str]:
    config = state / "bench.toml"
    config.write_text(
        '[machine]\nid = "bench"\nname = "Bench printer"\n'
        f'[storage]\nstate_dir = "{state}"\n'
        '[web]\nhost = "127.0.0.1"\nport = 0\n'
        "[jobs]\nmax_upload_bytes = 400_000_000\n"
        "[simulation]\nenabled = true\ntime_scale = 0.0\n"
        "[camera]\nenabled = false\n"
        '[logging]\nlevel = "WARNING"\n'
    )
    out = io.StringIO()
    token_create(state / "gateway.db", "bench", "operate", out)
    token = next(line for line in out.getvalue().splitlines() if line.startswith("gwt_"))
    out = io.StringIO()
    key_create(state / "gateway.db", "m-bench", "Bench Member", out)
    key = next(line for line in out.getvalue().splitlines() if line.startswith("gwm_"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"web UI:\s+(http://\S+?)/?$", line.strip())
        if match:
            return proc, match.group(1), token, key
    proc.kill()
    raise SystemExit("the daemon did not start (run `gateway run --config` by hand to see why)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def lines_done(c: httpx.AsyncClient) -> int:
    job = (await c.get("/api/status")).json()["job"]
    if job is None or job["state"] != "running":
        raise SystemExit("the bench job stopped; make --size-mb smaller or the job longer")
    return int(job["lines_done"])


async def rate(c: httpx.AsyncClient, seconds: float) -> float:
    start, t0 = await lines_done(c), time.monotonic()
    await asyncio.sleep(seconds)
    return (await lines_done(c) - start) / (time.monotonic() - t0)


async def sample_rss(pid: int, stop: asyncio.Event, peaks: list[float]) -> None:
    while not stop.is_set():
        peaks.append(rss_mb(pid))
        await asyncio.sleep(0.02)


async def body(path: Path, sent: list[float]) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(256 * 1024):
            yield block
            await asyncio.sleep(0)
    sent.append(time.monotonic())


async def run(size_mb: int, window: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        job_path, upload_path = Path(tmp) / "running-job.gcode", Path(tmp) / "upload.gcode"
        write_job(job_path, JOB_LINES)
        write_upload(upload_path, size_mb * 1024 * 1024)
        size = upload_path.stat().st_size
        proc, url, token, key = start_daemon(state)
        try:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as c:
                for _ in range(300):
                    if (await c.get("/api/status")).json()["state"] == "idle":
                        break
                    await asyncio.sleep(0.1)
                with job_path.open("rb") as fh:
                    r = await c.post("/api/files", files={"file": ("running-job.gcode", fh)})
                r.raise_for_status()
                (await c.post("/api/jobs", json={"file": "running-job.gcode"})).raise_for_status()
                await asyncio.sleep(1.0)  # past the job's first lines
                before = await rate(c, window)
                rss_before = rss_mb(proc.pid)

                boundary = "benchboundary7f3a"
                head = (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="print"\r\n\r\n'
                    f"true\r\n--{boundary}\r\nContent-Disposition: form-data; "
                    f'name="file"; filename="upload.gcode"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n"
                ).encode()
                tail = f"\r\n--{boundary}--\r\n".encode()
                sent: list[float] = []

                async def multipart() -> AsyncIterator[bytes]:
                    yield head
                    async for block in body(upload_path, sent):
                        yield block
                    yield tail

                peaks: list[float] = []
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_rss(proc.pid, stop, peaks))
                done_start = await lines_done(c)
                t0 = time.monotonic()
                r = await c.post(
                    "/api/files/local",
                    content=multipart(),
                    headers={
                        "X-Api-Key": key,
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                        "Content-Length": str(len(head) + size + len(tail)),
                    },
                )
                t1 = time.monotonic()
                during = (await lines_done(c) - done_start) / (t1 - t0)
                stop.set()
                await sampler
                if r.status_code != 201:
                    raise SystemExit(f"the upload failed: {r.status_code} {r.text[:300]}")
                after = await rate(c, window)
                await c.post("/api/jobs/current/cancel")
        finally:
            proc.terminate()
            proc.wait(15)

    transfer = (sent[0] if sent else t1) - t0
    growth = max(peaks) - rss_before
    # The machine's other load drifts; compare with the mean of the windows around it.
    baseline = (before + after) / 2
    slowdown = (baseline - during) / baseline if baseline else 0.0
    mb = size / (1024 * 1024)
    print(f"upload of {mb:.0f} MB through /api/files/local (member key, print=true)")
    print(f"  body sent by client: {mb / transfer:7.1f} MB/s ({transfer:.1f} s)")
    print(
        f"  end to end (201):    {mb / (t1 - t0):7.1f} MB/s ({t1 - t0:.1f} s, with check+analysis)"
    )
    print(f"  daemon RSS before:   {rss_before:7.1f} MB")
    print(
        f"  daemon RSS peak:     {max(peaks):7.1f} MB  growth {growth:+.1f} MB"
        f"  (target < {RSS_TARGET_MB:.0f} MB)"
    )
    print("streaming of the running job (lines/s)")
    print(f"  before the upload:   {before:7.0f}")
    print(
        f"  during the upload:   {during:7.0f}  change {-slowdown:+.1%} vs before/after"
        f"  (target: slows < {SLOWDOWN_TARGET:.0%})"
    )
    print(f"  after the upload:    {after:7.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=100)
    p.add_argument("--window", type=float, default=5.0)
    args = p.parse_args()
    asyncio.run(run(args.size_mb, args.window))


if __name__ == "__main__":
    main()
