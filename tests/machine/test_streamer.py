"""The streamer's reader thread over a real pseudo-terminal, against a scripted board.

The board here answers the way a UART delivers: a byte at a time with pauses,
so replies arrive in pieces shorter than the ``VMIN`` the streamer sets on the
port (``poll`` then does not report them): they must still be read, whole and
in order, and every job line must run once.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import threading
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.machine.cores import make_core
from gateway.machine.oneshot import print_file
from gateway.machine.protocol import CommandDone, LinesAcked, ProtocolEvent
from gateway.machine.serial_port import SerialPortError, open_port
from gateway.machine.streamer import FileLines, Streamer, StreamFinished


class ScriptedMarlin:
    """A plain (one ``ok`` per line) Marlin on the master side of a pty that
    writes each reply in ``piece``-byte writes ``pause`` seconds apart."""

    def __init__(self, piece: int, pause: float, noise: bytes = b"") -> None:
        self.master, slave = pty.openpty()
        tty.setraw(self.master)
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave  # held open so the pty stays up until close()
        self.piece = piece
        self.pause = pause
        self.noise = noise
        self.executed: list[str] = []
        #: Cleared, the board stops reading (an adapter that takes no more data).
        self.reading = threading.Event()
        self.reading.set()
        self.paused = threading.Event()  # set while the board does not read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _reply(self, data: bytes) -> None:
        for i in range(0, len(data), self.piece):
            os.write(self.master, data[i : i + self.piece])
            time.sleep(self.pause)

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            if not self.reading.is_set():
                self.paused.set()
                time.sleep(0.01)
                continue
            self.paused.clear()
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                buf += os.read(self.master, 4096)
            except OSError:
                return
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                text = raw.decode().strip()
                if not text:
                    continue
                if text.startswith("N"):
                    text = text.split(" ", 1)[1].rsplit("*", 1)[0]
                self.executed.append(text)
                if text.startswith("M115"):
                    self._reply(b"FIRMWARE_NAME:Marlin 2.1.2 EXTRUDER_COUNT:1\n")
                    self._reply(b"Cap:AUTOREPORT_TEMP:0\n")
                if text.startswith("M105"):
                    self._reply(b"ok T:20.0 /0.0\n")
                else:
                    if self.noise:
                        self._reply(self.noise)
                    self._reply(b"ok\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.master)
        os.close(self._slave)


@contextmanager
def board(piece: int, pause: float, noise: bytes = b"") -> Iterator[ScriptedMarlin]:
    b = ScriptedMarlin(piece, pause, noise)
    try:
        yield b
    finally:
        b.close()


def job(path: Path, count: int) -> list[str]:
    lines = [f"G1 X{i}.5 Y{i % 9}.25 E0.01" for i in range(count)]
    path.write_text("G90\n" + "\n".join(lines) + "\n")
    return lines


@pytest.mark.parametrize(("piece", "pause"), [(1, 0.003), (2, 0.001), (64, 0.0)])
def test_replies_in_pieces_shorter_than_vmin_are_read_whole_and_in_order(
    tmp_path: Path, piece: int, pause: float
) -> None:
    lines = job(tmp_path / "job.gcode", 40)
    with board(piece, pause) as b:
        result = asyncio.run(
            print_file(tmp_path / "job.gcode", port=b.path, firmware="marlin", baud=115200)
        )
        executed = [x for x in b.executed if x.startswith("G1")]
    assert result["outcome"] == "completed", result
    assert executed == lines
    assert result["lines"] == 41
    assert "M400" in b.executed  # done means done: the planner was drained first


def test_noise_shorter_than_vmin_between_replies_loses_nothing(tmp_path: Path) -> None:
    lines = job(tmp_path / "job.gcode", 30)
    with board(1, 0.001, noise=b"\xff\n") as b:  # a 2-byte garbage line
        result = asyncio.run(
            print_file(tmp_path / "job.gcode", port=b.path, firmware="marlin", baud=115200)
        )
        executed = [x for x in b.executed if x.startswith("G1")]
    assert result["outcome"] == "completed", result
    assert executed == lines


def test_events_reach_the_loop_in_order_and_progress_is_summed(tmp_path: Path) -> None:
    """Progress is batched (``flush_interval``) but never lost or reordered: the
    acknowledged counts add up to the job, and StreamFinished comes after them."""
    lines = job(tmp_path / "job.gcode", 60)

    async def run(path: str) -> list[ProtocolEvent]:
        seen: list[ProtocolEvent] = []
        finished = asyncio.Event()

        def on_event(e: ProtocolEvent) -> None:
            assert threading.current_thread() is threading.main_thread()
            seen.append(e)
            if isinstance(e, StreamFinished):
                finished.set()

        streamer, task = await ready_streamer(path, on_event)
        streamer.begin(FileLines(tmp_path / "job.gcode"))
        await asyncio.wait_for(finished.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    with board(64, 0.0) as b:
        seen = asyncio.run(run(b.path))
    acks = [e for e in seen if isinstance(e, LinesAcked)]
    assert sum(e.count for e in acks) == len(lines) + 1  # the G90 too
    assert [e.total for e in acks] == sorted(e.total for e in acks)
    end = next(i for i, e in enumerate(seen) if isinstance(e, StreamFinished))
    assert all(i < end for i, e in enumerate(seen) if isinstance(e, LinesAcked))


def test_a_board_that_goes_away_ends_the_run_with_a_serial_error() -> None:
    async def run(b: ScriptedMarlin) -> None:
        core = make_core("marlin", rx_buffer_size=127, response_timeout=10.0, max_line_length=96)
        streamer = await open_port(b.path, 115200, lambda: Streamer(core, on_event=lambda e: None))
        task = asyncio.create_task(streamer.run())
        for _ in range(200):
            if core.ready:
                break
            await asyncio.sleep(0.02)
        b.close()  # the cable is pulled
        with pytest.raises(SerialPortError):
            await asyncio.wait_for(task, 10)

    b = ScriptedMarlin(64, 0.0)
    asyncio.run(run(b))


def test_every_line_acknowledged_before_the_board_went_away_is_reported(tmp_path: Path) -> None:
    """The fast lane sums its acknowledgements until the next tick; a cable pulled
    in between must not lose them (the resume checkpoint counts on them)."""
    job(tmp_path / "job.gcode", 400)

    async def run(b: ScriptedMarlin) -> tuple[int, int]:
        seen: list[ProtocolEvent] = []
        core = make_core("marlin", rx_buffer_size=127, response_timeout=10.0, max_line_length=96)
        streamer = await open_port(b.path, 115200, lambda: Streamer(core, on_event=seen.append))
        task = asyncio.create_task(streamer.run())
        for _ in range(200):
            if core.ready:
                break
            await asyncio.sleep(0.02)
        streamer.begin(FileLines(tmp_path / "job.gcode"))
        while core.acked < 100:
            await asyncio.sleep(0.001)
        b.close()  # the cable is pulled mid-job
        with pytest.raises(SerialPortError):
            await asyncio.wait_for(task, 10)
        return sum(e.count for e in seen if isinstance(e, LinesAcked)), core.acked

    reported, acked = asyncio.run(run(ScriptedMarlin(64, 0.0)))
    assert acked >= 100
    assert reported == acked


def wedge(b: ScriptedMarlin) -> None:
    """The board stops reading and the port's output queue is full: an adapter that
    takes no more data.  (Blank lines: the board skips them once it reads again.)"""
    b.reading.clear()
    assert b.paused.wait(5)
    fd = os.open(b.path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        # The kernel moves a pty's bytes on in the background, freeing room a moment
        # after the first refusal: full is when nothing goes in for a while.
        refused = 0
        while refused < 10:
            try:
                os.write(fd, b"\n" * 4096)
                refused = 0
            except BlockingIOError:
                try:
                    os.write(fd, b"\n")
                    refused = 0
                except BlockingIOError:
                    refused += 1
                    time.sleep(0.03)
    finally:
        os.close(fd)


async def ready_streamer(
    path: str, on_event: Callable[[ProtocolEvent], None]
) -> tuple[Streamer, asyncio.Task[None]]:
    """A streamer on the port at ``path``, its handshake done."""
    core = make_core("marlin", rx_buffer_size=127, response_timeout=10.0, max_line_length=96)
    streamer = await open_port(path, 115200, lambda: Streamer(core, on_event=on_event))
    task = asyncio.create_task(streamer.run())
    for _ in range(200):
        if core.ready:
            break
        await asyncio.sleep(0.02)
    assert core.ready
    return streamer, task


def test_an_e_stop_on_an_adapter_that_takes_no_data_never_blocks_the_loop() -> None:
    """The e-stop's M112 cannot go out, but the event loop - and so the relay cut the
    machine service publishes with it - must not wait for the port: it is declared
    lost after ``write_timeout`` by the reader thread, while the loop runs on."""

    async def run(b: ScriptedMarlin) -> tuple[int, str]:
        streamer, task = await ready_streamer(b.path, lambda e: None)
        wedge(b)
        beats = 0

        async def heartbeat() -> None:
            nonlocal beats
            while True:
                await asyncio.sleep(0.01)
                beats += 1

        beating = asyncio.create_task(heartbeat())
        streamer.emergency_stop()
        streamer.control(lambda core: None)
        streamer.end()
        with pytest.raises(SerialPortError) as err:
            await asyncio.wait_for(task, 10)
        beating.cancel()
        return beats, str(err.value)

    with board(64, 0.0) as b:
        beats, message = asyncio.run(run(b))
    assert "took no data" in message
    assert beats >= 10, beats  # the loop ran all along (old code: 0, blocked in select)


def test_what_a_stalled_port_did_not_take_goes_out_in_order_when_it_takes_again() -> None:
    async def run(b: ScriptedMarlin) -> list[ProtocolEvent]:
        seen: list[ProtocolEvent] = []
        streamer, task = await ready_streamer(b.path, seen.append)
        wedge(b)
        streamer.send_command("M114")
        streamer.send_command("M115")
        assert not task.done()
        b.reading.set()  # the adapter takes data again
        for _ in range(500):
            if sum(isinstance(e, CommandDone) for e in seen) == 2:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    with board(64, 0.0) as b:
        seen = asyncio.run(run(b))
        executed = list(b.executed)
    done = [e for e in seen if isinstance(e, CommandDone)]
    assert [(d.command, d.ok) for d in done] == [("M114", True), ("M115", True)]
    # In order, once each (the handshake's M115 and temperature polls aside).
    asked = [x for x in executed if x in ("M114", "M115")]
    assert asked[-2:] == ["M114", "M115"] and asked.count("M114") == 1
