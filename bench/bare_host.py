"""The bare host floor: the least CPU per line any Python host can pay on this machine.

``bench/streaming.py`` holds the gateway to 50 us of CPU per streamed line.  On a
small or shared host most of what a line costs is not the protocol but the
thread's wake-up for each reply (a kernel switch after a sleep of a few ms, then
cold caches).  This module measures that floor: the same simulator, the same
port opened by the gateway's own ``open_serial``, the same ``VMIN``
wake-up (``wake_on_reply``) and the same I/O primitives as the gateway's reader thread
(``select.poll``, ``os.read``, ``os.write`` on the raw descriptor), and nothing
else.  Lines go out unnumbered, without checksum, with comments and blank lines
dropped beforehand (not timed); no resend handling, no events, no progress, and
no coalescing sleep: the thread wakes on data.  Per mode it does the least the
protocol requires:

* Marlin one-per-``ok``: write a line, wait for its ``ok``, next line.
* Marlin ADVANCED_OK: character counting, at most 127 bytes (``RX_BUFFER_SIZE``
  128 holds 127) and 4 lines (``BUFSIZE``) in flight.
* GRBL: character counting, at most 127 bytes in flight (the gateway's default
  ``--rx-buffer``; GRBL 1.1's buffer is 128).

Each ``ok`` (counted at line starts) frees the oldest line; other replies
(``echo:``, temperatures, ``<...>`` status) are skipped.  Anything that reads
as an error (``error``, ``Error``, ``ALARM``, ``Resend``) stops the run with
:class:`FloorError`: a floor that errors is not a floor.  A job ends when
every line has been acknowledged, which also shows the simulator accepted the
unnumbered lines.

    python bench/bare_host.py FILE [--firmware marlin|grbl] [--no-advanced-ok] [--baud 115200]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from gateway.machine.serial_port import open_serial
from gateway.machine.streamer import wake_on_reply

RX_WINDOW = 127  # bytes in flight: Marlin's RX_BUFFER_SIZE 128 holds 127
MARLIN_BUFSIZE = 4  # lines in flight with ADVANCED_OK: Marlin's command queue
REPLY_TIMEOUT = 10.0  # seconds without a byte before the run is called hung
SETTLE = 0.3  # seconds of silence that end the boot text
_ERROR_STARTS = (b"er", b"Er", b"AL", b"Re")  # error:N, Error:..., ALARM:N, Resend:


class FloorError(RuntimeError):
    """The bare host could not stream the file: the floor figure would be meaningless."""


def start_sim(firmware: str, baud: int, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start ``gateway sim`` in its own process; return it and its pseudo-terminal path."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "sim", firmware, "--baud", str(baud), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    path = proc.stdout.readline().strip()
    if not path.startswith("/dev/"):
        proc.kill()
        raise SystemExit(f"simulator did not start: {path!r}")
    return proc, path


def bare_lines(gcode: Path) -> list[bytes]:
    """The file's commands as sent: ``;`` comments and blank lines dropped, no ``N``,
    no checksum, one ``\\n`` each."""
    out = []
    with gcode.open("rb") as fh:
        for raw in fh:
            text = raw.split(b";", 1)[0].strip()
            if text:
                out.append(text + b"\n")
    return out


def _read_until_quiet(fd: int, quiet: float, limit: float, want: bytes = b"") -> bytes:
    """Read what the controller says until ``quiet`` seconds pass without a byte
    (and ``want`` has been seen, if given); give up after ``limit`` seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    got = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ready = poller.poll(math.ceil(quiet * 1000))
        with contextlib.suppress(BlockingIOError):
            data = os.read(fd, 4096)
            got += data
            if data:
                continue
        if not ready and want in got:
            return got
    if want not in got:
        raise FloorError(f"no {want.decode()!r} from the simulator within {limit:.0f} s: {got!r}")
    return got


def _write_all(fd: int, data: bytes, out: select.poll) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            n = 0
        view = view[n:]
        if view:
            out.poll(int(REPLY_TIMEOUT * 1000))


def _stream(fd: int, lines: list[bytes], max_lines: int, partial_ms: int) -> dict[str, Any]:
    """Stream ``lines`` with at most ``max_lines`` lines and RX_WINDOW bytes in flight.

    Runs in its own thread; returns its CPU time, bytes written and replies seen.
    """
    t0 = time.thread_time()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    writable = select.poll()
    writable.register(fd, select.POLLOUT)
    total = len(lines)
    in_flight: deque[int] = deque()
    window = sent = acked = written = wakeups = 0
    # The first bytes of the reply line being read while fewer than two are in
    # (b"" at a line start, b"o" after a lone "o"); None once the line is classified.
    head: bytes | None = b""
    while acked < total:
        while sent < total and len(in_flight) < max_lines:
            data = lines[sent]
            if window + len(data) > RX_WINDOW and in_flight:
                break
            _write_all(fd, data, writable)
            in_flight.append(len(data))
            window += len(data)
            written += len(data)
            sent += 1
        # With a lone "o" read, its "k\n" (fewer than VMIN bytes) would not wake
        # poll: give it a few byte-times, then read what came.
        ready = poller.poll(partial_ms if head == b"o" else int(REPLY_TIMEOUT * 1000))
        wakeups += 1
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            if not ready and head != b"o":
                raise FloorError(
                    f"no reply for {REPLY_TIMEOUT:.0f} s: {sent} lines sent, {acked} acknowledged"
                ) from None
            continue
        if not data:
            raise FloorError("the port closed")
        text = data if head is None else head + data
        segments = text.split(b"\n")
        for i, seg in enumerate(segments):
            if i == 0 and head is None:
                continue  # the rest of a line classified in an earlier read
            start = seg.lstrip(b"\r")[:2]
            if i == len(segments) - 1 and len(start) < 2:
                head = start  # too little of the line yet to tell what it is
                break
            if start == b"ok":
                window -= in_flight.popleft() if in_flight else 0
                acked += 1
            elif start in _ERROR_STARTS:
                if i == len(segments) - 1:  # the rest of the message is on its way
                    seg += _read_until_quiet(fd, 0.2, 1.0).split(b"\n", 1)[0]
                raise FloorError(
                    f"the controller answered {seg.decode(errors='replace').strip()!r} after "
                    f"{sent} lines sent, {acked} acknowledged"
                )
        else:
            head = None  # the last line read is classified; its rest is skipped
    return {
        "thread_cpu": time.thread_time() - t0,
        "written": written,
        "wakeups": wakeups,
        "mid_line": head is None,
    }


def _check_tail(fd: int, mid_line: bool) -> None:
    """After the last line's ``ok``: any further ``ok`` means one was counted for a
    line it did not acknowledge, any error that a line failed late."""
    tail = _read_until_quiet(fd, SETTLE, 5.0)
    if mid_line:
        tail = tail.split(b"\n", 1)[1] if b"\n" in tail else b""
    for seg in tail.split(b"\n"):
        start = seg.lstrip(b"\r")[:2]
        if start == b"ok" or start in _ERROR_STARTS:
            raise FloorError(
                f"after the last line was acknowledged the controller still said {tail!r}: "
                "the oks counted do not match the lines"
            )


def run(firmware: str, sim_args: list[str], gcode: Path, baud: int) -> dict[str, float]:
    """Stream ``gcode`` to ``gateway sim <firmware> <sim_args>`` the bare way.

    Returns lines, seconds, lines/s, CPU us per line of the whole process
    (``us_per_line``) and of the streaming thread alone (``thread_us_per_line``),
    reads per line, and wire utilisation (bytes written / (baud/10 x seconds)).
    """
    lines = bare_lines(gcode)
    if not lines:
        raise FloorError(f"{gcode} has no commands to stream")
    grbl = firmware == "grbl"
    plain_ok = not grbl and "--no-advanced-ok" in sim_args
    max_lines = 1 if plain_ok else (len(lines) if grbl else MARLIN_BUFSIZE)
    partial_ms = max(1, math.ceil(8 * 10.0 / baud * 1000))
    proc, path = start_sim(firmware, baud, sim_args)
    try:
        port = open_serial(path, baud)
        try:
            fd = port.fileno()
            wake_on_reply(fd)
            if grbl:
                # As the gateway's GRBL handshake: soft reset, wait for the banner.
                _read_until_quiet(fd, SETTLE, 5.0)
                os.write(fd, b"\x18")
                _read_until_quiet(fd, SETTLE, 5.0, want=b"Grbl ")
            else:
                _read_until_quiet(fd, SETTLE, 5.0)
            outcome: dict[str, Any] = {}

            def body() -> None:
                try:
                    outcome.update(_stream(fd, lines, max_lines, partial_ms))
                except BaseException as err:
                    outcome["error"] = err

            worker = threading.Thread(target=body, name="bare-host", daemon=True)
            wall0 = time.perf_counter()
            cpu0 = time.process_time()
            worker.start()
            worker.join()
            cpu = time.process_time() - cpu0
            seconds = time.perf_counter() - wall0
            if "error" not in outcome:
                _check_tail(fd, outcome["mid_line"])
        finally:
            port.close()
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    if "error" in outcome:
        raise outcome["error"]
    count = len(lines)
    return {
        "lines": float(count),
        "seconds": seconds,
        "lines_per_s": count / seconds,
        "us_per_line": cpu / count * 1e6,
        "thread_us_per_line": outcome["thread_cpu"] / count * 1e6,
        "reads_per_line": outcome["wakeups"] / count,
        "wire_utilisation": outcome["written"] / (baud / 10 * seconds),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--firmware", choices=["marlin", "grbl"], default="marlin")
    ap.add_argument("--no-advanced-ok", action="store_true")
    ap.add_argument("--baud", type=int, default=115200)
    args = ap.parse_args()
    extra = ["--no-advanced-ok"] if args.no_advanced_ok else []
    try:
        r = run(args.firmware, extra, args.file, args.baud)
    except FloorError as err:
        raise SystemExit(f"bare host: {err}") from None
    print(
        f"{r['lines']:.0f} lines {r['seconds']:.2f} s {r['lines_per_s']:.1f} lines/s  "
        f"wire {r['wire_utilisation']:.3f}  CPU {r['us_per_line']:.1f} us/line "
        f"({r['thread_us_per_line']:.1f} in the streaming thread, "
        f"{r['reads_per_line']:.2f} reads per line)"
    )


if __name__ == "__main__":
    main()
