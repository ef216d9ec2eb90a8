"""``gateway print``: stream one file to any Marlin or GRBL controller and report.

Uses the daemon's own pieces (preparation, protocol core, streamer, serial
adapter) without the daemon, so it works against real printers, other
simulators, or ours on a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, TextIO

from gateway.config import DEFAULT_LINE_LENGTH
from gateway.machine.cores import make_core
from gateway.machine.errors import MachineError
from gateway.machine.gcode import GcodeError, prepare_file
from gateway.machine.protocol import (
    Alarm,
    ControllerReady,
    FirmwareError,
    FirmwareReset,
    MotionFinished,
    ProtocolEvent,
)
from gateway.machine.serial_port import SerialPortError, open_port
from gateway.machine.streamer import FileLines, Streamer, StreamFinished
from gateway.tasks import cancel_and_wait


class PrintError(MachineError):
    """The file could not be streamed at all (bad file, no port, no handshake)."""


async def print_file(
    path: Path,
    *,
    port: str,
    firmware: Literal["marlin", "grbl"],
    baud: int = 115200,
    rx_buffer_size: int = 127,
    max_line_length: int | None = None,
    response_timeout: float = 10.0,
    handshake_timeout: float = 15.0,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Stream ``path``; return ``outcome``, ``lines``, ``seconds``, ``lines_per_s``,
    ``resends``, ``errors``, ``bytes``, ``wire_utilisation`` and ``reason``."""
    if max_line_length is None:
        max_line_length = DEFAULT_LINE_LENGTH[firmware]
    with tempfile.TemporaryDirectory(prefix="gateway-print-") as tmp:
        prepared = Path(tmp) / "prepared.gcode"
        try:
            info = await asyncio.to_thread(
                prepare_file, path, prepared, firmware=firmware, max_line_length=max_line_length
            )
        except GcodeError as err:
            raise PrintError(f"{path}: {err}") from err
        except OSError as err:
            raise PrintError(f"cannot read {path}: {err.strerror}") from err
        core = make_core(
            firmware,
            rx_buffer_size=rx_buffer_size,
            response_timeout=response_timeout,
            max_line_length=max_line_length,
        )
        ready = asyncio.Event()
        done: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        last_report = 0.0
        streamed = False

        def on_event(e: ProtocolEvent) -> None:
            nonlocal last_report, streamed
            if isinstance(e, ControllerReady):
                ready.set()
            if done.done():
                return
            if isinstance(e, MotionFinished) and streamed:
                done.set_result(("completed", ""))  # the machine stopped, not just the last ok
            elif isinstance(e, StreamFinished):
                streamed = True
            elif isinstance(e, Alarm):
                done.set_result(("failed", f"ALARM:{e.code} {e.message}"))
            elif isinstance(e, FirmwareError) and e.fatal:
                done.set_result(("failed", e.message))
            elif isinstance(e, FirmwareReset) and ready.is_set() and started:
                done.set_result(("failed", "the controller reset during the job"))
            if progress is not None and time.monotonic() - last_report > 1.0 and started:
                last_report = time.monotonic()
                progress.write(f"\r{streamer.lines_done}/{info.lines} lines")
                progress.flush()

        started = False
        try:
            streamer = await open_port(
                port, baud, lambda: Streamer(core, on_event=on_event, baud=baud)
            )
        except SerialPortError as err:
            raise PrintError(str(err)) from err
        run = asyncio.create_task(streamer.run())
        try:
            try:
                async with asyncio.timeout(handshake_timeout):
                    waiter = asyncio.create_task(ready.wait())
                    finished, _ = await asyncio.wait(
                        {waiter, run}, return_when=asyncio.FIRST_COMPLETED
                    )
                    waiter.cancel()
                    if run in finished:
                        exc = run.exception()
                        raise PrintError(f"the controller went away: {exc}")
            except TimeoutError as err:
                raise PrintError(
                    f"no {firmware} handshake on {port} within {handshake_timeout:.0f} s; "
                    "check --firmware and --baud"
                ) from err
            started = True
            t0 = time.monotonic()
            bytes0 = streamer.bytes_written
            streamer.begin(FileLines(prepared))
            either: list[asyncio.Future[Any]] = [done, run]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            seconds = time.monotonic() - t0
            if done.done():
                outcome, reason = done.result()
            else:
                outcome, reason = "failed", str(run.exception())
            sent = streamer.bytes_written - bytes0
        finally:
            await cancel_and_wait([run])
        if progress is not None:
            progress.write("\n")
        lines = streamer.lines_done if outcome != "completed" else info.lines
        return {
            "outcome": outcome,
            "reason": reason,
            "lines": lines,
            "seconds": round(seconds, 4),
            "lines_per_s": round(lines / seconds, 1) if seconds > 0 else 0.0,
            "resends": core.resends,
            "errors": core.errors,
            "bytes": sent,
            "wire_utilisation": round(sent / (seconds * baud / 10.0), 4) if seconds > 0 else 0.0,
        }
