"""Metering benchmark: the daemon's CPU per meter sample, and the ledger's append cost.

1. Sample cost: the PZEM-004T twin runs in a child process on a pseudo-terminal
   (so its CPU is not counted); this process runs the metering service's sample
   path as the daemon does (pymodbus read over the pty, CRC check, integrator,
   usage book with an open session and job, the ``usage`` snapshot on the bus).
   CPU per sample = this process's CPU time / samples.  At one sample a second,
   that is the share of a core it costs.  Target: < 1 % of a core at 1 s.
2. Ledger append: records signed (Ed25519), chained and written to SQLite (WAL,
   one transaction each), as the ledger service does for every closed session
   or job; then the whole chain verified.

Figures are printed with their targets, never asserted.

    python bench/meter.py [--samples 300] [--records 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TWIN = """
import asyncio, sys
from gateway.metering.meters.pzem_twin import PzemTwin

async def main():
    async with PzemTwin() as twin:
        twin.set_extra_power(180.0)
        print(twin.path, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


async def sample_cost(path: str, samples: int) -> None:
    from gateway.access.events import SessionStarted
    from gateway.bus import EventBus
    from gateway.commands import CommandRouter
    from gateway.machine.events import JobStarted
    from gateway.metering.config import MeteringConfig
    from gateway.metering.meters.pzem import PzemMeter
    from gateway.metering.service import MeteringService

    service = MeteringService(
        MeteringConfig(enabled=True, meter="pzem", port=path),
        bus=EventBus(),
        commands=CommandRouter(),
    )
    service.handle(SessionStarted(session_id="s1", member_id="m", member_name="Ada", role="user"))
    service.handle(JobStarted(job_id=1, file="a.gcode", lines=1000, estimated_seconds=None))
    meter = PzemMeter(path, timeout=1.0)
    await meter.open()
    service.meter = meter
    for _ in range(10):  # warm up: imports, first connection
        await service.sample()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(samples):
        await service.sample()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    await meter.close()
    per_sample_ms = cpu / samples * 1000
    share = cpu / samples / 1.0 * 100  # at one sample per second
    print(f"meter samples: {samples} in {wall:.2f} s wall ({wall / samples * 1000:.1f} ms each)")
    print(f"  CPU per sample: {per_sample_ms:.2f} ms")
    ratio = 1.0 / share if share else float("inf")
    print(f"  at a 1 s interval: {share:.3f} % of a core   (target < 1 %; ratio {ratio:.1f}x)")
    stats = service.integrator.stats
    print(f"  estimated intervals: {stats.estimated_intervals}, failures: {stats.failures}")


def ledger_cost(records: int) -> None:
    from gateway.ledger import keys
    from gateway.ledger.chain import verify_chain
    from gateway.ledger.store import LedgerStore

    with tempfile.TemporaryDirectory() as tmp:
        key = keys.load_or_create(Path(tmp) / "k.pem")
        store = LedgerStore(Path(tmp) / "gateway.db", key, "bench")
        body = {
            "session_id": "s", "member_id": "m-ada", "member_name": "Ada", "role": "user",
            "powered_seconds": 1380.0, "busy_seconds": 1200.0, "idle_seconds": 180.0,
            "energy_wh": 140.0, "grams": 18.0, "jobs": [[1, "completed"]], "cost": "1.85",
            "currency": "EUR", "estimated": False,
        }  # fmt: skip
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(records):
            store.append("session", 1.7e9 + i, {**body, "session_id": f"s{i}"})
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        rows = store.records()
        v0 = time.perf_counter()
        verdict = verify_chain(rows, key.public_key())
        verify = time.perf_counter() - v0
        store.close()  # the last connection checkpoints the WAL into the file
        size = os.path.getsize(Path(tmp) / "gateway.db")
    print(f"ledger appends: {records}")
    print(
        f"  per append: {wall / records * 1000:.2f} ms wall, {cpu / records * 1000:.2f} ms CPU "
        "(one per closed session or job; no target, a few a day per machine)"
    )
    print(f"  verify: {verify / records * 1000:.3f} ms per record ({verdict.describe()})")
    print(f"  database: {size / records:.0f} bytes per record")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--records", type=int, default=500)
    args = parser.parse_args()
    twin = subprocess.Popen(
        [sys.executable, "-c", TWIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        cwd=REPO, text=True,
    )  # fmt: skip
    try:
        assert twin.stdout is not None
        asyncio.run(sample_cost(twin.stdout.readline().strip(), args.samples))
    finally:
        if twin.stdin is not None:
            twin.stdin.close()
        twin.wait(5)
    ledger_cost(args.records)


if __name__ == "__main__":
    main()
