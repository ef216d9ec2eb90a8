"""Boot the gateway's arm64 disk image under qemu-system-aarch64 and check it from outside.

Run by boot-test.sh with the project's Python (it uses the project's simulated
Marlin).  The guest is the real root (systemd, udev, the real units) plus a
command channel: the boot-test agent on the virtio-serial port "agent".  The
web UI is reached only through QEMU's user-mode network, forwarded to a
loopback port.  ttyAMA0 (the Pi's UART name) is a QEMU chardev socket that a
simulated Marlin on this host answers, so the machine's real serial path,
``DeviceAllow=char-ttyAMA``, udev's dialout group and all, is exercised.

Each check prints ``PASS``/``FAIL`` with what it saw; the exit status is 1 if
any failed.  A failure names any denial (seccomp/audit, "Permission denied",
"Operation not permitted") found in the boot's journal.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.machine.sim.marlin import SimulatedMarlin
from gateway.machine.sim.pty import PtyController

ADA = "04A1B2C3"  # demo member inducted on every machine (config/demo-members.json)
RELAY = "/var/lib/gateway/gpio/GPIO17"
#: Journal lines that mean the sandbox refused something the daemon needed.
DENIAL = re.compile(
    r"\baudit\[\d+\]:|type=1326|type=1400|apparmor=\"DENIED\"|permission denied"
    r"|operation not permitted|\bEPERM\b|\bEACCES\b|\bdenied\b",
    re.IGNORECASE,
)
JOB = "".join(f"G1 X{i % 50} Y{(i * 7) % 50} F3000\n" for i in range(60)) + "M400\n"


class CheckFailed(Exception):
    pass


class SocketController(PtyController):
    """The simulated Marlin on the host end of QEMU's ttyAMA0 socket."""

    def __init__(self, sock_path: Path) -> None:
        super().__init__(SimulatedMarlin(time_scale=0.0), baud=115200)
        self.sock_path = sock_path

    async def __aenter__(self) -> SocketController:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.sock_path))
        sock.setblocking(False)
        # PtyController owns and closes both descriptors, as it does a pty's.
        self._master = sock.detach()
        self._slave = os.dup(self._master)
        self.path = str(self.sock_path)
        asyncio.get_running_loop().add_reader(self._master, self._on_readable)
        self.firmware.power_on(self._clock())
        self._task = asyncio.create_task(self._pump(), name="sim:ttyAMA0")
        return self

    def _on_readable(self) -> None:
        try:
            super()._on_readable()
        except ConnectionError:
            # QEMU went away (the guest powered off): stop listening.
            asyncio.get_running_loop().remove_reader(self._master)


class Agent:
    """JSON-lines requests to the agent in the guest."""

    def __init__(self, sock_path: Path) -> None:
        self.sock_path = sock_path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.next_id = 1

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_unix_connection(str(self.sock_path))

    async def sh(self, cmd: str, timeout: float = 60) -> tuple[int, str]:
        assert self.reader is not None and self.writer is not None
        rid, self.next_id = self.next_id, self.next_id + 1
        self.writer.write((json.dumps({"id": rid, "cmd": cmd, "timeout": timeout}) + "\n").encode())
        await self.writer.drain()
        async with asyncio.timeout(timeout + 30):
            while True:
                line = await self.reader.readline()
                if not line:
                    raise CheckFailed("the guest agent's channel closed")
                with contextlib.suppress(ValueError):
                    reply = json.loads(line)
                    if reply.get("id") == rid:
                        return int(reply["rc"]), str(reply["out"])

    async def ok(self, cmd: str, timeout: float = 60) -> str:
        rc, out = await self.sh(cmd, timeout)
        if rc != 0:
            raise CheckFailed(f"`{cmd}` exited {rc} in the guest:\n{out}")
        return out

    async def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.sh("true", timeout=5), 10)
                return
            except TimeoutError:
                continue
        raise CheckFailed(
            "the boot-test agent never answered: the guest did not boot (see console.log)"
        )


class BootCheck:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.agent = Agent(self.work / "agent.sock")
        self.token = ""
        self.failed: list[str] = []
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.0f}s] {text}", flush=True)

    def passed(self, what: str) -> None:
        self.say(f"PASS {what}")

    def qemu_argv(self) -> list[str]:
        k = self.args.kernel
        w = self.work
        return [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
            "-nographic", "-monitor", "none", "-no-reboot",
            "-kernel", str(k / "vmlinuz"), "-initrd", str(k / "initrd.img"),
            "-append", "root=/dev/vda rw console=hvc0 panic=-1 quiet",
            "-snapshot", "-drive", f"file={self.args.disk},format=raw,if=none,id=root",
            "-device", "virtio-blk-pci,drive=root",
            "-drive", f"file={self.args.boot},format=raw,if=none,id=boot",
            "-device", "virtio-blk-pci,drive=boot",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.port}-:8080",
            "-device", "virtio-net-pci,netdev=n0,romfile=",
            "-device", "virtio-rng-pci",
            "-device", "virtio-serial-pci",
            "-chardev", f"file,id=con,path={w / 'console.log'}",
            "-device", "virtconsole,chardev=con",
            "-chardev", f"socket,id=agent,path={w / 'agent.sock'},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=agent",
            "-chardev", f"socket,id=uart,path={w / 'uart.sock'},server=on,wait=off",
            "-serial", "chardev:uart",
        ]  # fmt: skip

    # -- helpers ---------------------------------------------------------------------

    async def unit(self, *props: str) -> dict[str, str]:
        out = await self.agent.ok("systemctl show gateway.service -p " + " -p ".join(props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    async def wait_for(self, what: str, probe: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = await probe()
            if last:
                return last
            await asyncio.sleep(1)
        raise CheckFailed(f"{what} (after {timeout:.0f} s){await self.denials()}")

    async def relay(self) -> str:
        _, out = await self.agent.sh(f"cat {RELAY}")
        return out.strip()

    async def denials(self) -> str:
        """The boot journal's lines that name a denial, for failure messages."""
        _, out = await self.agent.sh("journalctl -b --no-pager -o cat -q", timeout=120)
        lines = [line for line in out.splitlines() if DENIAL.search(line)]
        if not lines:
            _, tail = await self.agent.sh(
                "journalctl -u gateway -b --no-pager -o cat -q | tail -n 25"
            )
            return f"\nno denial in the journal; the gateway's last lines:\n{tail}"
        return "\ndenials in the boot's journal:\n  " + "\n  ".join(lines[:20])

    async def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with httpx.AsyncClient(base_url=self.base, timeout=30, headers=headers) as c:
            return await c.request(method, path, **kw)

    async def status(self) -> dict[str, Any]:
        try:
            r = await self.api("GET", "/api/status")
        except httpx.HTTPError:
            return {}
        return r.json() if r.status_code == 200 else {}

    # -- the checks ----------------------------------------------------------------

    async def first_boot(self) -> None:
        out = await self.agent.ok("journalctl -b -u gateway-firstboot --no-pager -o cat")
        if "applied gateway.toml from the boot partition" not in out:
            raise CheckFailed(
                f"gateway-firstboot did not apply the boot partition's gateway.toml:\n{out}"
            )
        await self.agent.ok("cmp /boot/firmware/gateway.toml /etc/gateway/gateway.toml")
        self.passed("first boot applied gateway.toml from the boot partition (/boot/firmware)")

    async def ready(self) -> None:
        async def active() -> dict[str, str] | None:
            u = await self.unit("ActiveState", "SubState", "Type", "NRestarts", "MainPID")
            if u.get("ActiveState") == "failed":
                raise CheckFailed(f"gateway.service failed: {u}{await self.denials()}")
            return u if u.get("ActiveState") == "active" else None

        u = await self.wait_for("gateway.service never became active", active, 240)
        if u["Type"] != "notify":
            raise CheckFailed(f"gateway.service is Type={u['Type']}, expected notify")
        self.passed(f"gateway.service active through READY=1 (Type=notify, MainPID {u['MainPID']})")

    async def make_token(self) -> None:
        out = await self.agent.ok(
            "runuser -u gateway -- /usr/local/bin/gateway token create --name boot-test "
            "--scope admin --config /etc/gateway/gateway.toml",
            timeout=120,
        )
        lines = out.splitlines()
        self.token = lines[lines.index(next(x for x in lines if x.startswith("Copy it now"))) + 1]

    async def serves(self) -> None:
        last: dict[str, Any] = {}

        async def idle() -> dict[str, Any] | None:
            s = await self.status()
            last.update(s)
            return s if s.get("state") == "idle" else None

        try:
            s = await self.wait_for("the machine never became idle behind /api/status", idle, 180)
        except CheckFailed as err:
            # The machine service reports why it cannot reach its controller in its status.
            said = f"{last.get('message') or ''} {last.get('fault') or ''}".strip()
            raise CheckFailed(
                f"the machine never became idle (state {last.get('state')!r}); the gateway says: "
                f"{said or 'nothing'}{' <- DENIED' if DENIAL.search(said) else ''}\n{err}"
            ) from err
        self.passed(
            f"/api/status answers through 127.0.0.1:{self.port}: "
            f"machine {s.get('machine_id', '?')} idle, "
            f"controller connected ({s.get('firmware') or 'ok'})"
        )

    async def badge_in(self) -> None:
        r = await self.api("POST", "/api/sim/badge", json={"uid": ADA, "reader": "sim"})
        if r.status_code >= 400:
            raise CheckFailed(f"badge refused: {r.status_code} {r.text}")

        async def on() -> bool:
            return await self.relay() == "1"

        await self.wait_for("Ada's badge did not switch the relay on", on, 60)

    async def run_job(self, name: str) -> dict[str, Any]:
        r = await self.api("POST", "/api/files", files={"file": (name, JOB.encode())})
        if r.status_code != 201:
            raise CheckFailed(f"upload of {name} refused: {r.status_code} {r.text}")
        r = await self.api("POST", "/api/jobs", json={"file": name})
        if r.status_code != 201:
            raise CheckFailed(f"job {name} did not start: {r.status_code} {r.text}")

        async def finished() -> dict[str, Any] | None:
            job = (await self.api("GET", "/api/jobs")).json().get("current") or {}
            if job.get("file") == name and job.get("state") in (
                "completed",
                "failed",
                "cancelled",
                "estop",
            ):
                return dict(job)
            return None

        job: dict[str, Any] = await self.wait_for(f"job {name} never finished", finished, 300)
        if job["state"] != "completed" or job["lines_done"] != job["lines_total"]:
            raise CheckFailed(f"job {name} ended {job['state']}: {job}")
        return job

    async def sigkill(self) -> None:
        if await self.relay() != "1":
            await self.badge_in()
        before = await self.unit("NRestarts", "MainPID")
        await self.agent.ok("systemctl kill -s KILL gateway.service")

        async def off() -> bool:
            return await self.relay() == "0"

        await self.wait_for(
            "the relay pin stayed on after SIGKILL (ExecStopPost relay-off)", off, 60
        )
        self.passed(f"SIGKILL: relay pin {RELAY} off (ExecStopPost=gateway relay-off)")

        async def restarted() -> dict[str, str] | None:
            u = await self.unit("ActiveState", "NRestarts", "MainPID")
            if u["ActiveState"] == "active" and u["NRestarts"] != before["NRestarts"]:
                return u
            return None

        u = await self.wait_for("gateway.service did not restart after SIGKILL", restarted, 180)
        self.passed(
            f"restarted after SIGKILL: NRestarts {before['NRestarts']} -> {u['NRestarts']}, "
            f"MainPID {before['MainPID']} -> {u['MainPID']}"
        )

    async def stop(self) -> None:
        u = await self.unit("TimeoutStopUSec")
        limit = parse_seconds(u["TimeoutStopUSec"])
        out = await self.agent.ok(
            "s=$(date +%s.%N); systemctl stop gateway.service; e=$(date +%s.%N); "
            "echo $s $e; systemctl show gateway.service -p Result -p ActiveState",
            timeout=limit + 60,
        )
        first, *rest = out.splitlines()
        start, end = (float(x) for x in first.split())
        props = dict(line.split("=", 1) for line in rest if "=" in line)
        took = end - start
        if took >= limit or props.get("Result") != "success":
            raise CheckFailed(
                f"systemctl stop took {took:.1f} s (TimeoutStopSec {limit:.0f} s), "
                f"Result={props.get('Result')}"
            )
        if await self.relay() not in ("0", ""):
            raise CheckFailed("the relay pin is on after systemctl stop")
        self.passed(
            f"systemctl stop in {took:.1f} s (TimeoutStopSec {limit:.0f} s), "
            "Result=success, relay off"
        )

    async def journal_clean(self, phase: str) -> None:
        _, out = await self.agent.sh("journalctl -b --no-pager -o short-monotonic -q", timeout=120)
        denied = [line for line in out.splitlines() if DENIAL.search(line)]
        _, gw = await self.agent.sh("journalctl -b -u gateway --no-pager -o cat -q", timeout=120)
        errors = [line for line in gw.splitlines() if " ERROR " in line or "Traceback" in line]
        if denied or errors:
            raise CheckFailed(
                f"the boot's journal ({phase}) has denials or errors:\n  "
                + "\n  ".join((denied + errors)[:30])
            )
        self.passed(f"journal ({phase}): no denied syscall or device, no ERROR from the gateway")

    async def serial_phase(self, controller: SocketController) -> None:
        config = await self.agent.ok("cat /etc/gateway/gateway.toml")
        config = config.replace("[simulation]\nenabled = true", "[simulation]\nenabled = false")
        config = config.replace("[serial]\n", '[serial]\nport = "/dev/ttyAMA0"\n', 1)
        # Badges are simulation-mode only (/api/sim/badge); the relay was checked above.
        config = config.replace("[access]\nenabled = true", "[access]\nenabled = false")
        if 'port = "/dev/ttyAMA0"' not in config or "enabled = false" not in config:
            raise CheckFailed("the test config has no [serial]/[simulation] section to switch")
        blob = base64.b64encode(config.encode()).decode()
        await self.agent.ok(
            f"echo {blob} | base64 -d > /etc/gateway/gateway.toml"
            " && systemctl start gateway.service",
            timeout=240,
        )
        info = await self.agent.ok("stat -c '%G %a %t' /dev/ttyAMA0")
        await self.ready()
        seen = controller.bytes_from_host
        await self.serves()
        job = await self.run_job("serial.gcode")
        if controller.bytes_from_host - seen < len(JOB):
            raise CheckFailed(
                f"the host's simulated Marlin got only {controller.bytes_from_host - seen} "
                f"bytes of a {len(JOB)}-byte job over ttyAMA0"
            )
        self.passed(
            f"ttyAMA0 (group/mode/major {info.strip()}): the host's simulated Marlin ran "
            f"{job['lines_done']} lines, {controller.bytes_from_host - seen} bytes over the UART"
        )

    async def device_policy_enforced(self) -> None:
        """The checks above mean something only if the kernel enforces the device policy."""
        rc, out = await self.agent.sh(
            "systemd-run --wait --pipe --quiet -p DevicePolicy=closed "
            "/bin/sh -c 'head -c 1 /dev/ttyAMA0 < /dev/null'",
            timeout=60,
        )
        if rc == 0 or "Operation not permitted" not in out:
            raise CheckFailed(f"DevicePolicy=closed did not refuse /dev/ttyAMA0 (exit {rc}): {out}")
        self.passed(
            "DevicePolicy=closed is enforced: a unit without DeviceAllow gets "
            f"'{out.strip().splitlines()[-1]}'"
        )

    async def run(self) -> int:
        with open(self.work / "qemu.log", "w") as log:  # noqa: ASYNC230 (once, before any task)
            qemu = subprocess.Popen(  # noqa: ASYNC220 (the guest runs beside the event loop)
                self.qemu_argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
            return await self.check(qemu)

    async def check(self, qemu: subprocess.Popen[bytes]) -> int:
        try:
            deadline = time.monotonic() + 30
            while not (self.work / "uart.sock").exists() or not (self.work / "agent.sock").exists():
                if qemu.poll() is not None or time.monotonic() > deadline:
                    raise CheckFailed(f"qemu did not start: {(self.work / 'qemu.log').read_text()}")
                await asyncio.sleep(0.1)
            async with SocketController(self.work / "uart.sock") as controller:
                await self.agent.connect()
                self.say(f"qemu started (web UI forwarded to {self.base}); waiting for the guest")
                await self.agent.wait_ready(time.monotonic() + self.args.boot_timeout)
                self.say("guest agent answers")
                await self.ready()
                await self.first_boot()
                await self.make_token()
                await self.serves()
                await self.badge_in()
                job = await self.run_job("boot.gcode")
                self.passed(
                    f"a job ran: {job['lines_done']}/{job['lines_total']} lines, {job['state']}"
                )
                await self.sigkill()
                await self.serves()
                await self.stop()
                await self.journal_clean("simulated controller on a pty")
                await self.serial_phase(controller)
                await self.stop()
                await self.journal_clean("controller on ttyAMA0")
                await self.device_policy_enforced()
                await self.agent.sh("systemctl poweroff --no-block")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    qemu.wait(timeout=60)
        except CheckFailed as err:
            self.say(f"FAIL {err}")
            return 1
        finally:
            if qemu.poll() is None:
                qemu.kill()
            qemu.wait()
        self.say("all boot checks passed")
        return 0


def parse_seconds(text: str) -> float:
    """systemd's "20s", "1min 30s", "500ms" as seconds."""
    units = {"ms": 0.001, "s": 1, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(ms|min|s|h)", text):
        total += float(number) * units[unit]
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kernel", type=Path, required=True, help="dir with vmlinuz and initrd.img")
    p.add_argument("--disk", type=Path, required=True, help="the root's ext4 image")
    p.add_argument("--boot", type=Path, required=True, help="the boot partition's FAT image")
    p.add_argument("--work", type=Path, required=True, help="where sockets and logs go")
    p.add_argument("--boot-timeout", type=float, default=300)
    args = p.parse_args()
    return asyncio.run(BootCheck(args).run())


if __name__ == "__main__":
    sys.exit(main())
