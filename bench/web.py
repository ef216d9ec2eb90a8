"""Web benchmark: the touchscreen page's weight and first render, API latency under
load while a job streams, and whether that load slows the streaming.

The daemon runs as ``gateway run`` in its own process (simulation mode: a
simulated Marlin controller on a pseudo-terminal at an emulated 115200 baud,
``time_scale`` 0 so lines flow as fast as the wire allows).  This process:

1. loads the kiosk page in headless Chromium at 800x480 (Debian's
   ``/usr/bin/chromium``, a fresh profile per load) and reads the bytes
   transferred and the first contentful paint from the browser's own timings;
2. streams a job alone and records its lines per second;
3. streams the same job again while 50 clients poll the API, each every
   ``--interval`` seconds like a dashboard would (``/api/status``, ``/api/jobs``,
   ``/api/files`` with a token), and records each call's latency and the job's
   lines per second;
4. measures the API's capacity: the same 50 clients calling back to back.

Figures are printed with their targets beside them; the benchmark never fails
on a timing.

    python bench/web.py [--lines 6000] [--clients 50] [--interval 0.5] [--loads 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from gateway.web.tokens_cli import token_create

CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FIRST_RENDER_TARGET = 1.0  # seconds
PAGE_WEIGHT_TARGET = 200 * 1024  # bytes
P99_TARGET = 0.050  # seconds
THROUGHPUT_TARGET = 0.05  # largest acceptable slowdown under load
ENDPOINTS = ("/api/status", "/api/jobs?limit=10", "/api/files")


def job_file(path: Path, lines: int) -> None:
    with path.open("w") as fh:
        fh.write("; bench: web\nG21\nG90\nG92 E0\nG1 F3000\n")
        for i in range(lines - 5):
            fh.write(f"G1 X{10 + (i % 180):.1f} Y{10 + (i * 7 % 180):.1f} E{i * 0.01:.3f}\n")


def start_daemon(state: Path) -> tuple[subprocess.Popen[str], str, str]:
    config = state / "bench.toml"
    config.write_text(
        '[machine]\nid = "bench"\nname = "Bench printer"\n'
        f'[storage]\nstate_dir = "{state}"\n'
        '[web]\nhost = "127.0.0.1"\nport = 0\n'
        "[simulation]\nenabled = true\ntime_scale = 0.0\n"
        '[logging]\nlevel = "WARNING"\n'
    )
    out = io.StringIO()
    token_create(state / "gateway.db", "bench", "operate", out)
    token = next(line for line in out.getvalue().splitlines() if line.startswith("gwt_"))
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
            return proc, match.group(1), token
    proc.kill()
    raise SystemExit("the daemon did not start (run `gateway run --config` by hand to see why)")


async def wait_idle(c: httpx.AsyncClient) -> None:
    for _ in range(300):
        if (await c.get("/api/status")).json()["state"] == "idle":
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the simulated controller never became idle")


async def run_job(c: httpx.AsyncClient, name: str) -> float:
    """Stream ``name`` once; returns lines per second as the gateway recorded them."""
    r = await c.post("/api/jobs", json={"file": name})
    r.raise_for_status()
    job_id = r.json()["id"]
    while True:
        job = (await c.get("/api/status")).json()["job"]
        if job and job["id"] == job_id and job["state"] not in ("running", "paused"):
            break
        await asyncio.sleep(0.2)
    if job["state"] != "completed":
        raise SystemExit(f"the bench job ended {job['state']}: {job['reason']}")
    record = (await c.get("/api/jobs?limit=1")).json()["jobs"][0]
    return float(record["lines_total"]) / max(1e-9, float(record["seconds"]))


async def hammer(
    url: str, token: str, clients: int, interval: float, stop: asyncio.Event
) -> list[float]:
    """``clients`` clients each calling every ``interval`` seconds (0: back to back)."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}

    async def client_loop(c: httpx.AsyncClient, n: int) -> None:
        i = n
        await asyncio.sleep(interval * n / clients)  # spread the clients over the interval
        while not stop.is_set():
            path = ENDPOINTS[i % len(ENDPOINTS)]
            i += 1
            start = time.perf_counter()
            r = await c.get(path)
            latencies.append(time.perf_counter() - start)
            r.raise_for_status()
            if interval:
                await asyncio.sleep(max(0.0, start + interval - time.perf_counter()))

    async with (
        httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as c,
        asyncio.TaskGroup() as tg,
    ):
        for n in range(clients):
            tg.create_task(client_loop(c, n))
    return latencies


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def api_under_load(
    url: str, token: str, lines: int, clients: int, interval: float, pid: int
) -> tuple[float, float, list[float], float, float]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:
        await wait_idle(c)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench-web.gcode"
            job_file(path, lines)
            with path.open("rb") as fh:
                r = await c.post("/api/files", files={"file": ("bench-web.gcode", fh)})
            r.raise_for_status()
        await run_job(c, "bench-web.gcode")  # warm-up: file cache, first connection
        alone = await run_job(c, "bench-web.gcode")
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            load = tg.create_task(hammer(url, token, clients, interval, stop))
            await asyncio.sleep(interval + 0.5)
            loaded = await run_job(c, "bench-web.gcode")
            stop.set()
        flat_out = asyncio.Event()
        cpu_before = cpu_seconds(pid)
        async with asyncio.TaskGroup() as tg:
            burst = tg.create_task(hammer(url, token, clients, 0.0, flat_out))
            await asyncio.sleep(3.0)
            flat_out.set()
        busy = (cpu_seconds(pid) - cpu_before) / 3.0
        capacity = len(burst.result()) / 3.0
        return alone, loaded, load.result(), capacity, busy


async def page_load(url: str, loads: int) -> tuple[list[float], list[int]]:
    from playwright.async_api import async_playwright

    renders: list[float] = []
    weights: list[int] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            for _ in range(loads):
                context = await browser.new_context(viewport={"width": 800, "height": 480})
                page = await context.new_page()
                await page.goto(url + "/", wait_until="load")
                await page.wait_for_function(
                    "() => performance.getEntriesByType('paint').length > 0"
                )
                fcp, weight = await page.evaluate(
                    """() => {
                        const paint = performance.getEntriesByName('first-contentful-paint')[0]
                          || performance.getEntriesByType('paint')[0];
                        const nav = performance.getEntriesByType('navigation')[0];
                        const res = performance.getEntriesByType('resource')
                          .filter(r => !r.name.includes('/api/events'));
                        return [paint.startTime / 1000,
                                nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0)];
                    }"""
                )
                renders.append(float(fcp))
                weights.append(int(weight))
                await context.close()
        finally:
            await browser.close()
    return renders, weights


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=6000, help="lines in the streamed job")
    p.add_argument("--clients", type=int, default=50, help="concurrent API clients")
    p.add_argument(
        "--interval",
        type=float,
        default=0.5,
        help="seconds between one client's calls (0: back to back)",
    )
    p.add_argument("--loads", type=int, default=5, help="page loads to time")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        proc, url, token = start_daemon(Path(tmp))
        try:
            print(f"daemon: {url} (pid {proc.pid}, simulated Marlin, 115200 baud)")
            if HAVE_CHROMIUM:
                renders, weights = await page_load(url, args.loads)
                render = statistics.median(renders)
                weight = max(weights)
                print(
                    f"kiosk page first render   {render * 1000:7.0f} ms (median of "
                    f"{len(renders)})   target < {FIRST_RENDER_TARGET * 1000:.0f} ms  "
                    f"{verdict(render < FIRST_RENDER_TARGET)}"
                )
                print(
                    f"kiosk page weight         {weight / 1024:7.1f} KB transferred     "
                    f"target < {PAGE_WEIGHT_TARGET // 1024} KB   "
                    f"{verdict(weight < PAGE_WEIGHT_TARGET)}"
                )
            else:
                print(f"kiosk page: skipped ({CHROMIUM} is not installed)")
            alone, loaded, latencies, capacity, busy = await api_under_load(
                url, token, args.lines, args.clients, args.interval, proc.pid
            )
            p50, p99 = pct(latencies, 0.50), pct(latencies, 0.99)
            offered = args.clients / args.interval if args.interval else capacity
            print(
                f"API, {args.clients} clients every {args.interval:g} s while a job streams "
                f"(~{offered:.0f} calls/s, {len(latencies)} calls)"
            )
            print(
                f"  latency                 p50 {p50 * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms"
                f"   target p99 < {P99_TARGET * 1000:.0f} ms  {verdict(p99 < P99_TARGET)}"
            )
            print(
                f"  capacity                {capacity:7.0f} calls/s with {args.clients} clients "
                f"back to back (no job; daemon CPU {busy:.0%}, the rest is this client)"
            )
            slowdown = 1.0 - loaded / alone
            print(f"streaming alone           {alone:7.0f} lines/s")
            print(
                f"streaming under API load  {loaded:7.0f} lines/s   ({slowdown:+.1%} slower)   "
                f"target within {THROUGHPUT_TARGET:.0%}  "
                f"{verdict(abs(slowdown) <= THROUGHPUT_TARGET)}"
            )
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
