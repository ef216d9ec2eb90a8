"""An in-memory serial line between a protocol core and a firmware model.

Runs both on a virtual clock, with the wire's byte time for the given baud rate
in each direction, and with faults drawn from a seeded RNG: corrupted bytes
towards a firmware that checks integrity, and dropped or garbled reply lines.
No I/O: property tests push thousands of lines through it in milliseconds.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from gateway.machine.protocol import ControllerProtocol, ProtocolEvent
from gateway.machine.sim.firmware import SimulatedFirmware


@dataclass
class Faults:
    """Fault rates, each a probability per line crossing the wire."""

    corrupt: float = 0.0  # host -> controller: one byte of the line flipped
    drop_reply: float = 0.0  # controller -> host: the whole reply line lost
    garble_reply: float = 0.0  # controller -> host: one byte of the reply replaced
    drop_ok: float = 0.0  # controller -> host: an ``ok`` line lost
    drop_resend: float = 0.0  # controller -> host: a ``Resend:`` line lost (the Error stays)
    drop_resent: float = 0.0  # host -> controller: the second copy of a numbered line lost
    seed: int = 0


@dataclass
class LinkResult:
    completed: bool
    seconds: float  # virtual time taken
    bytes_to_controller: int
    events: list[ProtocolEvent] = field(default_factory=list)


class Wire:
    """One direction of a serial line: bytes queued with their arrival times.

    Shared by :class:`Link` (virtual clock) and the pty server (real clock).
    """

    def __init__(self, byte_time: float) -> None:
        self.byte_time = byte_time
        self.free_at = 0.0
        self.pending: deque[tuple[float, bytes]] = deque()
        self.sent = 0

    def put(self, data: bytes, now: float) -> None:
        if not data:
            return
        start = max(now, self.free_at)
        self.free_at = start + len(data) * self.byte_time
        self.pending.append((self.free_at, data))
        self.sent += len(data)

    def take(self, now: float) -> bytes:
        out = bytearray()
        while self.pending and self.pending[0][0] <= now + 1e-12:
            out += self.pending.popleft()[1]
        if self.pending:
            # Deliver the part of the next chunk that has arrived by now.
            arrive, data = self.pending[0]
            n = len(data) - int((arrive - now) / self.byte_time)
            if n > 0:
                out += data[:n]
                self.pending[0] = (arrive, data[n:])
        return bytes(out)

    def next_arrival(self) -> float | None:
        if not self.pending:
            return None
        arrive, data = self.pending[0]
        return arrive - (len(data) - 1) * self.byte_time


def _split_lines(data: bytes) -> Iterator[bytes]:
    start = 0
    while True:
        i = data.find(b"\n", start)
        if i < 0:
            if start < len(data):
                yield data[start:]
            return
        yield data[start : i + 1]
        start = i + 1


class FaultInjector:
    """Applies :class:`Faults` to the bytes crossing the wire, line by line."""

    def __init__(self, faults: Faults, integrity_checked: bool) -> None:
        self.faults = faults
        self.integrity_checked = integrity_checked
        self.rng = random.Random(faults.seed)
        # The targeted faults draw from their own generator, so adding them leaves
        # the sequence of the others (and the tests built on it) unchanged.
        self.targeted = random.Random(faults.seed + 1)
        self._reply_partial = b""
        self._host_partial = b""
        self._numbers_seen: dict[bytes, int] = {}  # line number -> copies seen
        self.corrupted = 0
        self.dropped = 0
        self.garbled = 0
        #: Lines lost by the targeted faults: ``ok``, ``Resend:``, re-sent host lines.
        self.dropped_ok = 0
        self.dropped_resend = 0
        self.dropped_resent = 0

    def host_bytes(self, data: bytes) -> bytes:
        """Corrupt a byte in some host lines (only where the firmware can tell)."""
        if self.faults.drop_resent:
            data = self._drop_resent(data)
        if not self.faults.corrupt or not self.integrity_checked:
            return data
        out = bytearray()
        for line in _split_lines(data):
            if len(line) > 2 and line.endswith(b"\n") and self.rng.random() < self.faults.corrupt:
                b = bytearray(line)
                i = self.rng.randrange(len(b) - 1)
                b[i] = (b[i] ^ (1 << self.rng.randrange(7))) or 0x21
                if b[i] == 0x0A:
                    b[i] = 0x21
                line = bytes(b)
                self.corrupted += 1
            out += line
        return bytes(out)

    def _drop_resent(self, data: bytes) -> bytes:
        """Lose some numbered lines that were sent before (a resend that never arrives)."""
        data = self._host_partial + data
        out = bytearray()
        self._host_partial = b""
        for line in _split_lines(data):
            if not line.endswith(b"\n"):
                self._host_partial = line
                break
            if line.startswith(b"N") and b"M110" not in line:
                number = line.split(b" ", 1)[0]
                copies = self._numbers_seen.get(number, 0)
                self._numbers_seen[number] = copies + 1
                # The first copy sent again is the one at risk; a line is lost once.
                if copies == 1 and self.targeted.random() < self.faults.drop_resent:
                    self.dropped_resent += 1
                    continue
            out += line
        return bytes(out)

    def _drop_targeted(self, line: bytes) -> bool:
        f = self.faults
        if f.drop_ok and line.startswith(b"ok") and self.targeted.random() < f.drop_ok:
            self.dropped_ok += 1
            return True
        if (
            f.drop_resend
            and line.startswith(b"Resend:")
            and self.targeted.random() < f.drop_resend
        ):
            self.dropped_resend += 1
            return True
        return False

    def reply_bytes(self, data: bytes) -> bytes:
        """Drop or garble some whole reply lines."""
        f = self.faults
        targeted = f.drop_ok or f.drop_resend
        if not (f.drop_reply or f.garble_reply or targeted):
            return data
        data = self._reply_partial + data
        out = bytearray()
        self._reply_partial = b""
        for line in _split_lines(data):
            if not line.endswith(b"\n"):
                self._reply_partial = line
                break
            if targeted and self._drop_targeted(line):
                continue
            if not (f.drop_reply or f.garble_reply):
                out += line
                continue
            r = self.rng.random()
            if r < f.drop_reply:
                self.dropped += 1
                continue
            if r < f.drop_reply + f.garble_reply and len(line) > 1:
                b = bytearray(line)
                b[self.rng.randrange(len(b) - 1)] = self.rng.choice(b"#~%&@Z\x00\xff")
                line = bytes(b)
                self.garbled += 1
            out += line
        return bytes(out)


class Link:
    """Connects ``core`` and ``firmware`` through two simulated wires."""

    def __init__(
        self,
        core: ControllerProtocol,
        firmware: SimulatedFirmware,
        *,
        baud: int = 115200,
        faults: Faults | None = None,
        latency: float = 0.001,
        tick: float = 0.001,
        fast: bool = False,
    ) -> None:
        self.core = core
        # As the streamer does: hold a reply until its newline, and let a lone
        # ``ok`` (one-per-ok) or a read of only ``ok N P B`` (ADVANCED_OK) go
        # through the core's fast paths when it has them.
        self.fast = fast
        self.firmware = firmware
        self.faults = faults or Faults()
        self.inject = FaultInjector(self.faults, firmware.integrity_checked)
        byte_time = 10.0 / baud  # 8N1: start + 8 data + stop bits
        self.to_controller = Wire(byte_time)
        self.to_host = Wire(byte_time)
        self.latency = latency
        self.step = tick
        self.now = 0.0

    def run(self, lines: Iterable[str], *, max_seconds: float = 600.0) -> LinkResult:
        """Stream ``lines`` as a job until the core is idle or time runs out."""
        source = iter(lines)
        exhausted = False
        held = b""
        events: list[ProtocolEvent] = []
        core, fw = self.core, self.firmware
        fw.power_on(self.now)
        core.start(self.now)
        while self.now < max_seconds:
            now = self.now
            while not exhausted and core.ready and core.wants_lines():
                try:
                    core.send_line(next(source))
                except StopIteration:
                    exhausted = True
            out = core.data_to_send(now)
            self.to_controller.put(self.inject.host_bytes(out), now)
            arrived = self.to_controller.take(now)
            if arrived:
                fw.receive(arrived, now)
            fw.tick(now)
            self.to_host.put(self.inject.reply_bytes(fw.output()), now + self.latency)
            replies = self.to_host.take(now)
            if self.fast:
                replies, held = held + replies, b""
                if replies and not replies.endswith(b"\n") and len(replies) < 4096:
                    replies, held = b"", replies
            if replies:
                fast_ok = getattr(core, "fast_ok", None) if self.fast else None
                fast_npb = getattr(core, "fast_npb", None) if self.fast else None
                wire = fast_ok(now) if fast_ok is not None and replies == b"ok\n" else None
                if wire is not None:
                    self.to_controller.put(self.inject.host_bytes(wire), now)
                elif fast_npb is None or not fast_npb(replies, now):
                    events.extend(core.receive(replies, now))
            events.extend(core.tick(now))
            if exhausted and core.ready and core.idle() and not self.to_controller.pending:
                return LinkResult(True, now, self.to_controller.sent, events)
            wake = [now + self.step]
            for t in (
                self.to_controller.next_arrival(),
                self.to_host.next_arrival(),
                fw.next_wakeup(),
            ):
                if t is not None and t > now:
                    wake.append(t)
            self.now = min(wake)
        return LinkResult(False, self.now, self.to_controller.sent, events)
