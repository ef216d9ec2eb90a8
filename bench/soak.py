"""Fault soak: a compressed hour of a makerspace day against a real ``gateway run``.

A benchmark, not a CI test: it prints its figures with the targets beside them
and never fails on them.  The daemon runs in simulation mode (simulated Marlin
on a pty with injected serial corruption, relay on the file-backed simulated
GPIO) with MQTT telemetry to its own Mosquitto on a loopback port.  For the run's
duration (one "simulated hour"):

* a badge session every few seconds: Ada badges in, a 300-line job runs to the
  end, Ada badges out; every fifth round a badge that is refused (Ned is not
  inducted; 5 refusals a minute trip the reader's "too many attempts" limit);
* the simulated controller corrupts 1 % of lines (``simulation.error_rate``),
  which the streamer must recover by resends;
* the broker is restarted every few minutes;
* the simulated controller's USB cable is pulled out and plugged back in a few
  times (``POST /api/sim/controller``), every other time in the middle of a job;
* the daemon is SIGKILLed and restarted twice (at 1/3 and 2/3 of the run);
* the state directory (a small tmpfs when run as root) is filled to nearly
  full once, for 20 s, then freed.

Checks printed at the end: sessions recorded vs performed, jobs completed with
every line acknowledged (lines_done == lines_total), every job line executed
exactly once and in order by the controller (its ``simulation.executed_log``
read against the file: each line of the job carries its index in its feed
rate), jobs cut by an unplug failed and offered for resume, MQTT events received by an
independent persistent-session subscriber vs emitted (gaps in each run's
sequence, duplicates), relay-on time with no member present beyond a 0.5 s
switching latency (target 0), peak
RSS and its growth per simulated hour (within the longest run between kills,
target < 5 MB), open files and threads at the end vs the start of that run.

    python bench/soak.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from gateway.ops.filepins import read_level
from gateway.store import open_database
from gateway.web import auth

ROOT = Path(__file__).resolve().parents[1]
ADA, NED = "04A1B2C3", "0E0F1011"
RELAY_PIN = 17
JOB_LINES = 300
#: Each line names its index in its feed rate, so the controller's executed log
#: tells which line of the file ran (and whether one ran twice).
JOB = "".join(f"G1 X{i % 100} Y{(i * 7) % 100} F{3000 + i}\n" for i in range(JOB_LINES))
MOVE = re.compile(r"G1 X\d+ Y\d+ F(\d+)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {directory}/",
            "max_queued_messages 0",
            "log_dest none",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([exe, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None


@dataclass
class Subscriber:
    """An independent persistent-session subscriber to the gateway's events."""

    port: int
    ids: list[str] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="soak-subscriber", clean_session=False
                ) as client:
                    await client.subscribe("gateway/+/event/#", qos=1)
                    async for message in client.messages:
                        if isinstance(message.payload, bytes | bytearray):
                            with contextlib.suppress(ValueError, KeyError):
                                self.ids.append(json.loads(message.payload)["event_id"])
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def report(self) -> tuple[int, int, int]:
        """Distinct events, duplicates, gaps (missing seqs within each run's range)."""
        distinct = set(self.ids)
        runs: dict[str, list[int]] = {}
        for event_id in distinct:
            run, _, seq = event_id.rpartition("-")
            runs.setdefault(run, []).append(int(seq))
        gaps = sum(max(seqs) - len(seqs) for seqs in runs.values())
        return len(distinct), len(self.ids) - len(distinct), gaps


class Daemon:
    def __init__(self, cfg: Path, log: Path) -> None:
        self.cfg = cfg
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.cfg)],
                stdout=subprocess.PIPE,
                stderr=out,
                cwd=ROOT,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            m = re.search(r"web UI:\s+(http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        else:
            raise RuntimeError("the daemon printed no URL")
        # Keep reading stdout so the daemon never blocks on a full pipe.
        stdout = self.proc.stdout
        threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def sample(self) -> tuple[int, int, int]:
        """RSS (kB), open files, threads of the daemon."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        fds = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        return rss, fds, threads


@dataclass
class Tally:
    sessions: int = 0
    refused: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    job_errors: list[str] = field(default_factory=list)
    relay_unattended: float = 0.0
    samples: list[tuple[float, int, int, int, int]] = field(default_factory=list)  # t, run, ...
    episodes: list[str] = field(default_factory=list)
    jobs_started: int = 0
    unplugs: int = 0
    unplugs_in_job: int = 0
    cut_jobs: int = 0  # jobs failed by an unplug
    cut_offered: int = 0  # ... and offered for resume right after
    offers_discarded: int = 0  # interrupted jobs Ada discarded before her next start
    unplug_errors: list[str] = field(default_factory=list)


def executed_runs(log: Path) -> tuple[list[int], int]:
    """The job lines in the controller's executed log, split into runs (one per job
    that ran at least one line): each run's length, and the lines out of order
    (repeated or skipped).  A run starts at the file's first line."""
    runs: list[int] = []
    disorder = 0
    expected = -1
    text = log.read_text(encoding="latin-1") if log.exists() else ""
    for line in text.splitlines():
        m = MOVE.match(line)
        if m is None:
            continue
        index = int(m.group(1)) - 3000
        if index == 0:
            runs.append(1)
        elif runs and index == expected:
            runs[-1] += 1
        else:
            disorder += 1
        expected = index + 1
    return runs, disorder


def write_config(state: Path, broker_port: int, error_rate: float, executed: Path) -> Path:
    text = (ROOT / "config" / "sim.toml").read_text()
    text = text.replace('state_dir = "../var/sim"', f'state_dir = "{state}"')
    text = text.replace("port = 8080", "port = 0")
    text = text.replace('gpio = "mock"', 'gpio = "sim-file"')
    text = text.replace("time_scale = 1.0", f'time_scale = 0.0\nexecuted_log = "{executed}"')
    text = text.replace("error_rate = 0.0", f"error_rate = {error_rate}")
    text = text.replace("grace_period = 10", "grace_period = 0")
    text = text.replace(
        'path = "demo-members.json"', f'path = "{ROOT / "config" / "demo-members.json"}"'
    )
    text = text.replace(
        "[telemetry]\n# No broker in the demo; set enabled = true and host/port to try MQTT.\n"
        "enabled = false",
        f'[telemetry]\nenabled = true\nhost = "127.0.0.1"\nport = {broker_port}',
    )
    text = text.replace("[camera]\n# A moving synthetic test pattern stands in for the Pi camera.\n"
                        "enabled = true", "[camera]\nenabled = false")
    cfg = state.parent / "gateway.toml"
    cfg.write_text(text)
    return cfg


class Soak:
    def __init__(self, minutes: float, work: Path, unplug_rounds: int = 4) -> None:
        self.seconds = minutes * 60
        self.unplug_rounds = unplug_rounds
        self.work = work
        self.state = work / "state"
        self.tmpfs = False
        self.broker = Broker(work / "broker")
        self.tally = Tally()
        self.run_no = 0
        self.token = ""
        self.daemon: Daemon | None = None
        self.member_present = False
        self.member_left_at = 0.0
        self.disk_full = False
        self.started = time.monotonic()

    def mount_state(self) -> None:
        self.state.mkdir(parents=True)
        if os.geteuid() == 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "soak", str(self.state)])
            self.tmpfs = r.returncode == 0

    def unmount_state(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.state)])

    def start_daemon(self) -> None:
        self.daemon = Daemon(self.cfg, self.work / "daemon.log")
        self.daemon.start()
        self.run_no += 1

    async def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        assert self.daemon is not None
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.daemon.url, headers=headers, timeout=30) as c:
            return await c.request(method, path, **kw)

    async def wait(self, probe: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                if await probe():
                    return True
            await asyncio.sleep(0.1)
        return False

    async def status(self) -> dict[str, Any]:
        return dict((await self.api("GET", "/api/status")).json())

    async def one_session(self, n: int) -> None:
        if not await self.wait(lambda: self._idle(), 60):
            self.tally.job_errors.append(f"session {n}: machine not idle")
            return
        # Ada is at the machine from the moment she holds up her badge.
        self.member_present = True
        await self.api("POST", "/api/sim/badge", json={"uid": ADA, "reader": "sim"})
        if not await self.wait(lambda: self._powered(True), 20):
            self.tally.job_errors.append(f"session {n}: Ada's badge did not power the machine")
            self.member_left_at = time.monotonic()
            self.member_present = False
            return
        self.tally.sessions += 1
        # A job cut earlier (unplug, SIGKILL) is offered to Ada now: she clears the bed
        # and discards it, as the touchscreen asks before a new start would.
        offer = (await self.api("GET", "/api/jobs/interrupted")).json().get("interrupted")
        if offer and offer.get("job_id"):
            d = await self.api(
                "POST", "/api/jobs/interrupted/discard", json={"job_id": offer["job_id"]}
            )
            if d.status_code < 400:
                self.tally.offers_discarded += 1
        r = await self.api("POST", "/api/jobs", json={"file": "soak.gcode"})
        if r.status_code == 201:
            job_id = r.json().get("id")
            self.tally.jobs_started += 1

            async def finished() -> bool:
                answer = (await self.api("GET", "/api/jobs")).json()
                job = answer["current"] or {}
                if job.get("id") != job_id:
                    # A SIGKILL ends it without a word: the next daemon marks it failed.
                    job = next((j for j in answer["jobs"] if j.get("id") == job_id), {})
                over = job.get("state") not in ("queued", "running", "finishing", "paused")
                if job.get("id") == job_id and over:
                    self.tally.jobs.append(job)
                    return True
                return False

            if not await self.wait(finished, 120):
                self.tally.job_errors.append(f"session {n}: job {job_id} did not finish")
            elif "serial connection lost" in (self.tally.jobs[-1].get("reason") or ""):
                # Cut by an unplug: offered back to Ada while she is still badged in.
                self.tally.cut_jobs += 1

                async def offered() -> bool:
                    offer = (await self.api("GET", "/api/jobs/interrupted")).json()
                    return bool((offer.get("interrupted") or {}).get("job_id") == job_id)

                if await self.wait(offered, 10):
                    self.tally.cut_offered += 1
        else:
            self.tally.job_errors.append(f"session {n}: job refused {r.status_code} {r.text}")
        self.member_left_at = time.monotonic()
        self.member_present = False
        await self.api("POST", "/api/badge-out")
        await self.wait(lambda: self._powered(False), 20)
        if n % 5 == 0:
            # Not every round: denied_rate_limit refusals in a window lock the reader
            # ("too many attempts") by design, which would refuse Ada too.
            r = await self.api("POST", "/api/sim/badge", json={"uid": NED, "reader": "sim"})
            if r.status_code < 400:
                self.tally.refused += 1

    async def _idle(self) -> bool:
        return (await self.status()).get("state") == "idle"

    async def _powered(self, want: bool) -> bool:
        return bool((await self.status()).get("powered")) is want

    async def watch_relay(self) -> None:
        """Relay on while no member is at the machine, sampled every 50 ms, beyond a
        0.5 s switching latency after the member left (badge-out)."""
        episode: list[float] = []
        while True:
            level = read_level(self.state / "gpio", RELAY_PIN)
            now = time.monotonic()
            if level == 1 and not self.member_present and now - self.member_left_at > 0.5:
                self.tally.relay_unattended += 0.05
                if not episode:
                    episode[:] = [now, float(self.disk_full)]
            elif episode:
                self.tally.episodes.append(
                    f"relay on without a member for {now - episode[0]:.1f} s from "
                    f"t={episode[0] - self.started:.0f} s"
                    + (" (the state disk was full: the simulated GPIO's level file could"
                       " not be rewritten)" if episode[1] or self.disk_full else "")
                )
                episode.clear()
            await asyncio.sleep(0.05)

    async def sample(self) -> None:
        while True:
            if self.daemon is not None and self.daemon.proc and self.daemon.proc.poll() is None:
                with contextlib.suppress(OSError, AttributeError):
                    rss, fds, threads = self.daemon.sample()
                    self.tally.samples.append((time.monotonic(), self.run_no, rss, fds, threads))
            await asyncio.sleep(1)

    async def faults(self, started: float) -> None:
        kills = [started + self.seconds / 3, started + 2 * self.seconds / 3]
        broker_every = max(60.0, self.seconds / 8)
        next_broker = started + broker_every / 2
        disk_at = started + self.seconds / 2
        while True:
            now = time.monotonic()
            if kills and now >= kills[0]:
                kills.pop(0)
                assert self.daemon is not None
                self.daemon.kill()
                # As ExecStopPost=gateway relay-off does under systemd.  The member
                # is still at the machine until then; their session ended with the crash.
                relay_off = [sys.executable, "-m", "gateway", "relay-off", "-c", str(self.cfg)]
                await asyncio.to_thread(subprocess.run, relay_off, capture_output=True, cwd=ROOT)
                self.member_left_at = time.monotonic()
                self.member_present = False
                self.start_daemon()
            if now >= next_broker:
                next_broker += broker_every
                self.broker.stop()
                await asyncio.sleep(2)
                self.broker.start()
                self.broker.restarts += 1
            if disk_at and now >= disk_at:
                disk_at = 0
                await self.fill_disk()
            await asyncio.sleep(0.5)

    async def cable(self, action: str) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            r = await self.api("POST", "/api/sim/controller", json={"action": action})
            if r.status_code == 200:
                return True
            self.tally.unplug_errors.append(f"{action}: {r.status_code} {r.text}")
        return False

    async def unplugs(self, started: float, rounds: int) -> None:
        """Pull the controller's cable out ``rounds`` times, evenly over the run (away
        from the SIGKILLs), every other time while a job runs; plug it back after 3 s."""
        every = self.seconds / (rounds + 1)
        for k in range(rounds):
            await asyncio.sleep(max(0.0, started + every * (k + 1) + every / 4 - time.monotonic()))
            during_job = k % 2 == 0
            job_id = None
            # Jobs take a second or two here and follow each other closely: catch one
            # running (past its first lines), or the idle moment between two.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    status = await self.status()
                    job = status.get("job") or {}
                    if not during_job and status.get("state") == "idle":
                        break
                    if during_job and status.get("state") == "running" and (
                        job.get("state") == "running" and job.get("lines_done", 0) > 10
                    ):
                        job_id = job.get("id")
                        break
                await asyncio.sleep(0.05)
            if not await self.cable("unplug"):
                continue
            self.tally.unplugs += 1
            if job_id is not None:
                self.tally.unplugs_in_job += 1
            await asyncio.sleep(3)
            if not await self.cable("plug"):
                # Never leave the controller out: try again until the daemon answers.
                while not await self.cable("plug"):
                    await asyncio.sleep(1)

    async def fill_disk(self) -> None:
        if not self.tmpfs:
            return
        filler = self.state / "filler"
        free = shutil.disk_usage(self.state).free
        self.disk_full = True
        await asyncio.to_thread(filler.write_bytes, b"\0" * max(0, free - 200_000))
        await asyncio.sleep(20)
        filler.unlink()
        self.disk_full = False

    async def main(self) -> None:
        self.mount_state()
        try:
            self.broker.start()
            self.executed = self.work / "executed.log"  # off the state disk that fills up
            self.cfg = write_config(
                self.state, self.broker.port, error_rate=0.01, executed=self.executed
            )
            # The daemon creates its tables on start; the token goes in before.
            from gateway.config import load_config
            from gateway.daemon import prepare_database

            config = load_config(self.cfg)
            prepare_database(config)
            db = open_database(config.storage.database)
            _, self.token = auth.create_token(db, "soak", auth.Scope.ADMIN)
            db.conn.close()
            self.start_daemon()
            subscriber = Subscriber(self.broker.port)
            r = await self.api("POST", "/api/files", files={"file": ("soak.gcode", JOB.encode())})
            assert r.status_code == 201, r.text
            started = time.monotonic()
            async with asyncio.TaskGroup() as tg:
                side = [
                    tg.create_task(subscriber.run()),
                    tg.create_task(self.watch_relay()),
                    tg.create_task(self.sample()),
                    tg.create_task(self.faults(started)),
                    tg.create_task(self.unplugs(started, self.unplug_rounds)),
                ]
                n = 0
                while time.monotonic() - started < self.seconds:
                    n += 1
                    await self.one_session(n)
                    await asyncio.sleep(1)
                await asyncio.sleep(10)  # the outbox drains to the subscriber
                recorded = await self.api("GET", "/api/sessions", params={"limit": 10000})
                for task in side:
                    task.cancel()
            self.print_report(subscriber, len(recorded.json()["sessions"]), started)
        finally:
            if self.daemon is not None:
                self.daemon.stop()
            self.broker.stop()
            self.unmount_state()

    def print_report(self, subscriber: Subscriber, recorded: int, started: float) -> None:
        t = self.tally
        hours = (time.monotonic() - started) / self.seconds  # in simulated hours
        completed = [j for j in t.jobs if j.get("state") == "completed"]
        exact = [j for j in completed if j["lines_done"] == j["lines_total"]]
        resends = sum(int(j.get("resends") or 0) for j in t.jobs)
        distinct, dups, gaps = subscriber.report()
        runs: dict[int, list[tuple[float, int, int, int, int]]] = {}
        for s in t.samples:
            runs.setdefault(s[1], []).append(s)
        longest = max(runs.values(), key=lambda r: r[-1][0] - r[0][0])
        # Skip the first 30 s of the run (imports, first allocations) before measuring growth.
        steady = [s for s in longest if s[0] >= longest[0][0] + 30] or longest
        span_h = (steady[-1][0] - steady[0][0]) / self.seconds
        growth = (steady[-1][2] - steady[0][2]) / 1024 / span_h if span_h > 0 else 0.0
        peak = max(s[2] for s in t.samples) / 1024
        print(f"soak: {self.seconds / 60:.0f} min = 1 simulated hour, {hours:.2f} h run; "
              f"{self.run_no - 1} SIGKILLs, {self.broker.restarts} broker restarts, "
              f"disk nearly full once: {'yes' if self.tmpfs else 'no (needs root for tmpfs)'}")
        print(f"  sessions recorded / performed : {recorded} / {t.sessions}   (target equal)")
        print(f"  refused badges                : {t.refused}")
        print(f"  jobs completed, every line ok : {len(exact)} / {len(t.jobs)} "
              f"({resends} resends after injected corruption)   (target all)")
        for err in t.job_errors[:10]:
            print(f"    ! {err}")
        for job in [j for j in t.jobs if j.get("state") != "completed"][:10]:
            print(f"    - job {job.get('id')} {job.get('state')} at line {job.get('lines_done')}"
                  f"/{job.get('lines_total')}: {job.get('reason')}")
        runs, disorder = executed_runs(self.executed)
        whole = sum(1 for r in runs if r == JOB_LINES)
        print(f"  lines executed exactly once   : {sum(runs)} job lines in {len(runs)} runs "
              f"for {t.jobs_started} jobs started; {whole} whole runs for {len(completed)} "
              f"completed jobs; {disorder} lines repeated or out of order   "
              f"(target: whole == completed, runs <= started, 0 out of order)")
        print(f"  controller unplugged          : {t.unplugs} times ({t.unplugs_in_job} during a "
              f"job); {t.cut_jobs} jobs cut, {t.cut_offered} offered for resume, "
              f"{t.offers_discarded} offers discarded by Ada before a new start   "
              f"(target: every cut job offered)")
        for err in t.unplug_errors[:10]:
            print(f"    ! {err}")
        print(f"  MQTT events at the subscriber : {distinct} distinct, {dups} duplicates, "
              f"{gaps} gaps   (target 0 gaps; duplicates are allowed by QoS 1)")
        print(f"  relay on with no member       : {t.relay_unattended:.2f} s   (target 0)")
        for episode in t.episodes[:10]:
            print(f"    ! {episode}")
        print(f"  peak RSS                      : {peak:.1f} MB")
        print(f"  RSS growth per simulated hour : {growth:.2f} MB "
              f"(run {longest[0][1]}, {steady[0][2] / 1024:.1f} -> {steady[-1][2] / 1024:.1f} MB)"
              f"   (target < 5 MB)")
        print(f"  open files start -> end       : {steady[0][3]} -> {steady[-1][3]}")
        print(f"  threads start -> end          : {steady[0][4]} -> {steady[-1][4]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="real minutes = 1 simulated hour")
    p.add_argument(
        "--unplugs", type=int, default=4, help="times the controller's cable is pulled (0: never)"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp:
        asyncio.run(Soak(args.minutes, Path(tmp), args.unplugs).main())


if __name__ == "__main__":
    main()
