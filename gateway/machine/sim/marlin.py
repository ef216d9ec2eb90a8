"""A simulated Marlin 2.1 firmware: bytes in, bytes out, a clock passed in.

It models the parts of Marlin a host can trip over, after the 2.1.2 sources:

* **Serial input** (``MarlinSerial`` + ``GCodeQueue::get_serial_commands``): a
  ring buffer of ``rx_buffer_size`` bytes that holds ``rx_buffer_size - 1``
  (one slot stays empty); bytes that arrive while it is full are lost and
  counted in :attr:`overflows`.  Marlin reads the buffer from its main loop and
  from ``idle()`` whenever the command queue has room, so bytes only pile up
  while the queue is full; the model feeds a byte straight to the line reader
  in that case, as if the main loop kept up with the UART.
* **Line reader** (``process_stream_char``): ``;`` comments, backslash escapes,
  backspace, ``MAX_CMD_SIZE`` truncation, CR or LF as end of line.
* **Line checks** exactly as ``get_serial_commands``: a line must start with
  ``N`` to be checked; the number is checked before the checksum; a line whose
  number is ``last_N`` or ``last_N - 1`` is dropped silently ("a request-for-resend
  line was already in transit"); ``M110`` skips the sequence check.  Errors
  print ``Error:<reason>, Last Line: <last_N>``, drain the RX buffer
  (``gcode_line_error``, configurable with ``flush_rx_on_error``), then
  ``Resend: <last_N + 1>`` and ``ok`` (``flush_and_request_resend``).  Lines
  without ``N`` are accepted without a checksum.
* **Command queue** of ``bufsize`` lines and a **planner** of ``planner_blocks``
  blocks (``moves_free() = BLOCK_BUFFER_SIZE - 1 - movesplanned()``).  A move
  takes ``distance / feedrate * time_scale`` seconds (``0``: instant); ``G1``
  blocks while the planner is full.  ``ok`` is printed when a command has been
  processed (``ok_to_send``), as ``ok N<n> P<moves_free> B<BUFSIZE - length>``
  with ``advanced_ok``.
* Blocking commands (a ``G1`` waiting for a planner block, ``G28``, ``G4``,
  ``M400``, ``M109``/``M190``) print ``echo:busy: processing`` every 2 s
  (``HOST_KEEPALIVE_FEATURE``); heating waits also print temperatures with
  ``W:?`` every second.  Nothing blocks when ``time_scale`` is 0.
* ``M112`` halts (``kill()``): ``Error:Printer halted. kill() called!`` and
  silence until :meth:`power_on`.  An unnumbered ``M112`` is acted on when the
  line is read, ahead of the queue ("Process critical commands early").

:attr:`executed` records every command processed, without line number and
checksum; :attr:`lines_rejected` counts line errors.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.machine.sim.firmware import SimulatedFirmware

_NORMAL = 0
_SKIP = 1  # after ';' or an over-long line, until end of line
_ESCAPE = 4

_AMBIENT = 20.0
_DEFAULT_FEED = 25.0  # mm/s: Marlin boots with feedrate_mm_s = 1500 mm/min
_HOME_SECONDS = 4.0  # machine seconds for G28
_KEEPALIVE = 2.0  # DEFAULT_KEEPALIVE_INTERVAL
_TEMP_REPORT = 1.0  # wait_for_hotend/bed print temperatures every second
_NUMBER_CHARS = frozenset(b"0123456789.+-")
_CAPABILITIES = (
    ("SERIAL_XON_XOFF", False),
    ("BINARY_FILE_TRANSFER", False),
    ("EEPROM", True),
    ("VOLUMETRIC", True),
    ("AUTOREPORT_POS", False),
    ("PROGRESS", False),
    ("PRINT_JOB", True),
    ("AUTOLEVEL", False),
    ("Z_PROBE", False),
    ("EMERGENCY_PARSER", False),
    ("SDCARD", False),
    ("THERMAL_PROTECTION", True),
    ("ARCS", True),
)
_IGNORED = frozenset(
    {
        ("G", 20), ("G", 21), ("G", 29), ("M", 17), ("M", 18), ("M", 73), ("M", 75),
        ("M", 76), ("M", 77), ("M", 84), ("M", 106), ("M", 107), ("M", 108), ("M", 117),
        ("M", 201), ("M", 203), ("M", 204), ("M", 205), ("M", 220), ("M", 221),
        ("M", 500), ("M", 501), ("M", 502), ("M", 900),
    }
)  # fmt: skip


@dataclass
class _Heater:
    """A heater that moves linearly towards its target at ``rate`` °C per machine second."""

    rate: float
    start: float = _AMBIENT
    since: float = 0.0
    target: float = 0.0

    def temperature(self, now: float, scale: float) -> float:
        goal = max(self.target, _AMBIENT)
        if scale <= 0.0:
            return goal
        step = self.rate * (now - self.since) / scale
        if goal >= self.start:
            return min(goal, self.start + step)
        return max(goal, self.start - step)

    def set_target(self, target: float, now: float, scale: float) -> None:
        self.start = self.temperature(now, scale)
        self.since = now
        self.target = target

    def reached_at(self, now: float, scale: float) -> float:
        if scale <= 0.0:
            return now
        gap = abs(max(self.target, _AMBIENT) - self.temperature(now, scale))
        return now + gap / self.rate * scale


@dataclass
class _Wait:
    """The command at the head of the queue is blocked until ``until``."""

    until: float
    finish: Callable[[], None] | None
    next_busy: float
    heater: _Heater | None = None
    next_report: float = math.inf


def _strtol(data: bytes) -> int:
    """C ``strtol(s, nullptr, 10)``: leading spaces, a sign, digits; 0 if none."""
    text = data.lstrip(b" ")
    end = 1 if text[:1] in (b"-", b"+") else 0
    while end < len(text) and 48 <= text[end] <= 57:
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


def _params(text: str, case_insensitive: bool) -> dict[str, float]:
    """``X1.5 Y-2 E.3`` -> {"X": 1.5, "Y": -2.0, "E": 0.3}; letters without a value map to 0.

    Lowercase letters are not parameters unless ``GCODE_CASE_INSENSITIVE``.
    """
    out: dict[str, float] = {}
    i, n = 0, len(text)
    while i < n:
        c = text[i].upper() if case_insensitive else text[i]
        i += 1
        if not "A" <= c <= "Z":
            continue
        j = i
        while j < n and ord(text[j]) in _NUMBER_CHARS:
            j += 1
        try:
            out[c] = float(text[i:j]) if j > i else 0.0
        except ValueError:
            out[c] = 0.0
        i = j
    return out


class SimulatedMarlin(SimulatedFirmware):
    """Marlin 2.1.x as a host sees it through its serial port.

    ``rx_buffer_size`` (``RX_BUFFER_SIZE``, holds one byte less), ``bufsize``
    (``BUFSIZE``, command queue lines), ``planner_blocks`` (``BLOCK_BUFFER_SIZE``),
    ``advanced_ok`` (``ADVANCED_OK``), ``auto_report`` (``AUTO_REPORT_TEMPERATURES``,
    ``M155``), ``time_scale`` (simulated seconds per machine second; 0 makes
    moves, homing and heating instant), ``version`` (printed by ``M115``),
    ``flush_rx_on_error`` (``gcode_line_error`` drains the RX buffer, Marlin
    >= 2.0 since PR #13018), ``max_cmd_size`` (``MAX_CMD_SIZE``), ``extruders``,
    ``boot_time`` (seconds after :meth:`power_on` during which input is lost
    to the bootloader before ``start`` is printed) and ``case_insensitive``
    (``GCODE_CASE_INSENSITIVE``, off in stock Marlin), ``firmware_name``
    (False: ``M115`` prints neither ``FIRMWARE_NAME:`` nor ``Cap:`` lines, like
    older or vendor firmwares), ``error_last_line`` (False: a line error is
    printed without its ``, Last Line: N``, as some firmwares do).  With it, a line whose
    ``N`` was corrupted into ``n`` skips the line-number and checksum checks
    (``queue.cpp`` looks for ``'N'`` only) but still runs, as on a real board.
    """

    name = "marlin"
    integrity_checked = True

    def __init__(
        self,
        *,
        rx_buffer_size: int = 128,
        bufsize: int = 4,
        planner_blocks: int = 16,
        advanced_ok: bool = True,
        auto_report: bool = True,
        time_scale: float = 0.0,
        version: str = "2.1.2",
        flush_rx_on_error: bool = True,
        max_cmd_size: int = 96,
        extruders: int = 1,
        boot_time: float = 0.0,
        case_insensitive: bool = False,
        firmware_name: bool = True,
        error_last_line: bool = True,
    ) -> None:
        super().__init__()
        if rx_buffer_size < 2 or bufsize < 1 or planner_blocks < 2 or extruders < 1:
            raise ValueError(
                "rx_buffer_size >= 2, bufsize >= 1, planner_blocks >= 2, extruders >= 1"
            )
        self.rx_buffer_size = rx_buffer_size
        self.bufsize = bufsize
        self.planner_blocks = planner_blocks
        self.advanced_ok = advanced_ok
        self.auto_report = auto_report
        self.time_scale = time_scale
        self.version = version
        self.flush_rx_on_error = flush_rx_on_error
        self.max_cmd_size = max_cmd_size
        self.extruders = extruders
        self.boot_time = boot_time
        self.case_insensitive = case_insensitive
        self.firmware_name = firmware_name
        self.error_last_line = error_last_line
        #: Line errors answered with ``Resend`` (checksum, sequence, no checksum).
        self.lines_rejected = 0
        #: True after ``M112`` or a kill until the next :meth:`power_on`.
        self.halted = False
        self.powered = False
        self._boot_at: float | None = None
        self._reset(0.0)

    # -- SimulatedFirmware -------------------------------------------------

    def power_on(self, now: float) -> None:
        self._reset(now)
        self.powered = True
        self.halted = False
        if self.boot_time > 0.0:
            self._boot_at = now + self.boot_time
        else:
            self._boot_at = None
            self._banner()

    def receive(self, data: bytes, now: float) -> None:
        self._now = now
        if not self.powered or self.halted or self._boot_at is not None:
            return  # off, killed, or the bootloader eats it
        rx = self._rx
        capacity = self.rx_buffer_size - 1
        for c in data:
            if rx or len(self._queue) >= self.bufsize:
                if len(rx) < capacity:
                    rx.append(c)
                else:
                    self.overflows += 1
            elif self._read_char(c):
                self._service()
                if self.halted:
                    return

    def output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def tick(self, now: float) -> None:
        self._now = now
        if not self.powered or self.halted:
            return
        if self._boot_at is not None:
            if now < self._boot_at:
                return
            self._boot_at = None
            self._banner()
        self._service()
        self._periodic(now)

    def next_wakeup(self) -> float | None:
        if not self.powered or self.halted:
            return None
        if self._boot_at is not None:
            return self._boot_at
        times = [self._next_report] if self._report_interval else []
        wait = self._wait
        if wait is not None:
            times += (wait.until, wait.next_busy, wait.next_report)
        if self._blocks:
            times.append(self._blocks[0])
        due = min(times, default=math.inf)
        return None if due == math.inf else due

    def moving(self, now: float) -> bool:
        if not self.powered or self.halted:
            return False
        wait = self._wait
        return self._planner_end > now or (wait is not None and wait.until > now)

    # -- state ---------------------------------------------------------------

    def _reset(self, now: float) -> None:
        self._now = now
        self._out = bytearray()
        self._rx = bytearray()
        self._line = bytearray()
        self._state = _NORMAL
        self._last_n = 0
        self._queue: deque[bytes] = deque()
        self._wait: _Wait | None = None
        self._blocks: deque[float] = deque()  # end times of planned moves
        self._planner_end = now
        self._position = [0.0, 0.0, 0.0, 0.0]
        self._relative = False
        self._relative_e = False
        self._feed = _DEFAULT_FEED
        self._hotends = [_Heater(rate=4.0, since=now) for _ in range(self.extruders)]
        self._bed = _Heater(rate=1.5, since=now)
        self._report_interval = 0
        self._next_report = math.inf
        self._skip_ok = False

    def _emit(self, text: str) -> None:
        self._out += text.encode("utf-8") + b"\n"

    def _banner(self) -> None:
        for text in (
            "start",
            f"echo:Marlin {self.version}",
            "echo: Last Updated: 2022-12-24 | Author: (gateway simulator)",
            "echo:Compiled: Dec 24 2022",
            "echo: Free Memory: 4096  PlannerBufferBytes: 1792",
            "echo:Hardcoded Default Settings Loaded",
        ):
            self._emit(text)

    # -- serial input ------------------------------------------------------

    def _read_char(self, c: int) -> bool:
        """``process_stream_char`` plus end-of-line handling; True when a line was queued."""
        if c == 10 or c == 13:
            line = bytes(self._line)
            self._line.clear()
            self._state = _NORMAL
            return bool(line) and self._line_done(line)
        state = self._state
        if state == _SKIP:
            return False
        if state >= _ESCAPE:
            self._state = state - _ESCAPE
        elif c == 0x5C:  # backslash: keep the next character as it is
            self._state = state + _ESCAPE
            return False
        elif c == 0x3B:  # ';' starts a comment up to the end of the line
            self._state = _SKIP
            return False
        if c == 0x08:
            if self._line:
                self._line.pop()
        else:
            self._line.append(c)
            if len(self._line) >= self.max_cmd_size - 1:
                self._state = _SKIP
        return False

    def _drain_rx(self) -> None:
        rx = self._rx
        i = 0
        while i < len(rx) and len(self._queue) < self.bufsize and not self.halted:
            c = rx[i]
            i += 1
            self._read_char(c)  # a line error may empty ``rx`` under us
        del rx[:i]

    def _line_done(self, line: bytes) -> bool:
        """Line-number and checksum checks of ``get_serial_commands``; True if queued."""
        command = line.lstrip(b" ")
        if command[:1] == b"N":
            m110 = b"M110" in command
            npos = command
            if m110:
                second = command.find(b"N", 4)
                if second >= 0:
                    npos = command[second:]
            number = _strtol(npos[1:])
            if number != self._last_n + 1 and not m110:
                if self._last_n - 1 <= number <= self._last_n:
                    return False  # a copy already in transit when Resend was sent
                self._line_error("Line Number is not Last Line Number+1, Last Line: ")
                return False
            star = command.rfind(b"*")
            if star < 0:
                self._line_error("No Checksum with line number, Last Line: ")
                return False
            checksum = 0
            for b in command[:star]:
                checksum ^= b
            if _strtol(command[star + 1 :]) != checksum:
                self._line_error("checksum mismatch, Last Line: ")
                return False
            self._last_n = number
        # Critical commands act when read, ahead of the queue (no EMERGENCY_PARSER).
        if command[:4] == b"M112":
            self.executed.append(self._command_text(line))
            self._kill()
            return False
        if command[:4] == b"M108" and self._wait is not None and self._wait.heater is not None:
            self._wait.until = self._now
        self._queue.append(line)
        return True

    def _line_error(self, reason: str) -> None:
        self.lines_rejected += 1
        if self.error_last_line:
            self._emit(f"Error:{reason}{self._last_n}")
        else:
            self._emit(f"Error:{reason.partition(',')[0]}")  # firmwares that name no line
        if self.flush_rx_on_error:
            self._rx.clear()
        self._emit(f"Resend: {self._last_n + 1}")
        self._emit("ok")
        self._line.clear()
        self._state = _NORMAL

    # -- command processing --------------------------------------------------

    def _service(self) -> None:
        """Run the main loop until it has to wait for time or input."""
        now = self._now
        while not self.halted:
            blocks = self._blocks
            while blocks and blocks[0] <= now:
                blocks.popleft()
            if self._rx and len(self._queue) < self.bufsize:
                self._drain_rx()  # idle() reads serial even while a command blocks
                continue
            wait = self._wait
            if wait is not None:
                if wait.until > now:
                    return
                self._wait = None
                if wait.finish is not None:
                    wait.finish()
                self._ok()
            elif self._queue:
                self._process(self._queue[0])
                if self._wait is None and not self.halted:
                    self._ok()
            else:
                return

    def _ok(self) -> None:
        """``ok_to_send`` for the command at the head of the queue, then drop it."""
        if not self._queue:
            return
        raw = self._queue[0]
        if self._skip_ok:
            self._skip_ok = False
        elif self.advanced_ok:
            number = ""
            if raw[:1] == b"N":
                end = 1
                while end < len(raw) and (48 <= raw[end] <= 57 or raw[end] == 45):
                    end += 1
                number = " N" + raw[1:end].decode("ascii")
            free = self.planner_blocks - 1 - len(self._blocks)
            self._emit(f"ok{number} P{free} B{self.bufsize - len(self._queue)}")
        else:
            self._emit("ok")
        self._queue.popleft()

    def _command_text(self, raw: bytes) -> str:
        """The command as ``GCodeParser::parse`` sees it: no line number, no checksum."""
        text = raw.decode("latin-1").lstrip(" ")
        first = text[:1].upper() if self.case_insensitive else text[:1]
        if first == "N" and text[1:2] and text[1:2] in "-0123456789":
            text = text.partition(" ")[2].lstrip(" ")  # Marlin skips up to the first space
        return text.split("*", 1)[0].rstrip(" ")

    def _process(self, raw: bytes) -> None:
        """``GCodeParser::parse`` and ``process_parsed_command`` for one queued line."""
        ci = self.case_insensitive
        text = self._command_text(raw)
        self.executed.append(text)
        self._skip_ok = False
        letter = text[:1].upper() if ci else text[:1]
        body = text[1:].lstrip(" ")
        end = 0
        while end < len(body) and "0" <= body[end] <= "9":
            end += 1
        if letter not in ("G", "M", "T") or end == 0:
            self._emit(f'echo:Unknown command: "{text}"')
            return
        code = int(body[:end])
        rest = body[end:]
        if rest[:1] == ".":  # sub-code, e.g. G29.1
            rest = rest[1:].lstrip("0123456789")
        args = _params(rest, ci)
        key = (letter, code)
        handler = self._handlers.get(key)
        if handler is not None:
            handler(self, args)
        elif letter == "T" and code < self.extruders:
            pass  # tool change: nothing to simulate
        elif key not in _IGNORED:
            self._emit(f'echo:Unknown command: "{text}"')

    def _block(
        self, until: float, finish: Callable[[], None] | None, heater: _Heater | None = None
    ) -> None:
        now = self._now
        if until <= now:
            if finish is not None:
                finish()
            return
        self._wait = _Wait(
            until, finish, now + _KEEPALIVE, heater, now + _TEMP_REPORT if heater else math.inf
        )

    def _periodic(self, now: float) -> None:
        wait = self._wait
        if wait is not None:
            if now >= wait.next_busy:
                self._emit("echo:busy: processing")
                wait.next_busy = now + _KEEPALIVE
            if now >= wait.next_report:
                self._emit(self._temperatures() + " W:?")
                wait.next_report = now + _TEMP_REPORT
        if self._report_interval and now >= self._next_report:
            self._emit(self._temperatures())
            self._next_report = now + self._report_interval

    def _temperatures(self) -> str:
        """``print_heater_states``: `` T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0``."""
        now, scale = self._now, self.time_scale
        first = self._hotends[0]
        parts = [f" T:{first.temperature(now, scale):.2f} /{first.target:.2f}"]
        parts.append(f" B:{self._bed.temperature(now, scale):.2f} /{self._bed.target:.2f}")
        if self.extruders > 1:
            for i, h in enumerate(self._hotends):
                parts.append(f" T{i}:{h.temperature(now, scale):.2f} /{h.target:.2f}")
        parts.append(" @:0 B@:0")
        if self.extruders > 1:
            parts.extend(f" @{i}:0" for i in range(self.extruders))
        return "".join(parts)

    def _kill(self) -> None:
        self._emit("Error:Printer halted. kill() called!")
        self.halted = True
        self._queue.clear()
        self._rx.clear()
        self._blocks.clear()
        self._wait = None
        self._report_interval = 0

    # -- G-code handlers -----------------------------------------------------

    def _g_move(self, args: dict[str, float]) -> None:
        if "F" in args and args["F"] > 0:
            self._feed = args["F"] / 60.0
        target = list(self._position)
        for i, axis in enumerate("XYZ"):
            if axis in args:
                target[i] = target[i] + args[axis] if self._relative else args[axis]
        if "E" in args:
            target[3] = target[3] + args["E"] if self._relative or self._relative_e else args["E"]
        delta = [b - a for a, b in zip(self._position, target, strict=True)]
        distance = math.sqrt(delta[0] ** 2 + delta[1] ** 2 + delta[2] ** 2) or abs(delta[3])
        duration = distance / self._feed * self.time_scale

        def plan() -> None:
            self._position = target
            if duration <= 0.0:
                return  # no steps: Marlin plans no block (Planner::_populate_block)
            start = max(self._now, self._planner_end)
            self._planner_end = start + duration
            if self._planner_end > self._now:
                self._blocks.append(self._planner_end)

        if duration <= 0.0 or len(self._blocks) < self.planner_blocks - 1:
            plan()
        else:
            self._block(self._blocks[0], plan)

    def _g_dwell(self, args: dict[str, float]) -> None:
        seconds = args.get("P", 0.0) / 1000.0 if "P" in args else args.get("S", 0.0)
        self._block(max(self._now, self._planner_end) + seconds * self.time_scale, None)

    def _g_home(self, args: dict[str, float]) -> None:
        def homed() -> None:
            for i, axis in enumerate("XYZ"):
                if not ({"X", "Y", "Z"} & args.keys()) or axis in args:
                    self._position[i] = 0.0

        start = max(self._now, self._planner_end)
        self._block(start + _HOME_SECONDS * self.time_scale, homed)

    def _g_set_position(self, args: dict[str, float]) -> None:
        for i, axis in enumerate("XYZE"):
            if axis in args:
                self._position[i] = args[axis]

    def _g_absolute(self, args: dict[str, float]) -> None:
        self._relative = False

    def _g_relative(self, args: dict[str, float]) -> None:
        self._relative = True

    def _m_extrude_absolute(self, args: dict[str, float]) -> None:
        self._relative_e = False

    def _m_extrude_relative(self, args: dict[str, float]) -> None:
        self._relative_e = True

    def _heater(self, args: dict[str, float]) -> _Heater:
        index = int(args.get("T", 0))
        return self._hotends[index] if 0 <= index < len(self._hotends) else self._hotends[0]

    def _m_hotend(self, args: dict[str, float]) -> None:
        if "S" in args:
            self._heater(args).set_target(args["S"], self._now, self.time_scale)

    def _m_bed(self, args: dict[str, float]) -> None:
        if "S" in args:
            self._bed.set_target(args["S"], self._now, self.time_scale)

    def _wait_for(self, heater: _Heater, args: dict[str, float]) -> None:
        target = args.get("S", args.get("R"))
        if target is None:
            return
        now = self._now
        current = heater.temperature(now, self.time_scale)
        heater.set_target(target, now, self.time_scale)
        if "S" in args and current >= target:
            return  # M109 S does not wait for cooling
        self._block(heater.reached_at(now, self.time_scale), None, heater)

    def _m_hotend_wait(self, args: dict[str, float]) -> None:
        self._wait_for(self._heater(args), args)

    def _m_bed_wait(self, args: dict[str, float]) -> None:
        self._wait_for(self._bed, args)

    def _m_report_temperatures(self, args: dict[str, float]) -> None:
        # M105 prints its own "ok" and returns before ok_to_send: no N/P/B.
        self._emit("ok" + self._temperatures())
        self._skip_ok = True

    def _m_line_number(self, args: dict[str, float]) -> None:
        if "N" in args:
            self._last_n = int(args["N"])

    def _m_position(self, args: dict[str, float]) -> None:
        x, y, z, e = self._position
        counts = f"Count X:{round(x * 80)} Y:{round(y * 80)} Z:{round(z * 400)}"
        self._emit(f"X:{x:.2f} Y:{y:.2f} Z:{z:.2f} E:{e:.2f} {counts}")

    def _m_firmware_info(self, args: dict[str, float]) -> None:
        if not self.firmware_name:
            self._emit(f"echo:{self.version}")  # a vendor build: no name, no capabilities
            return
        self._emit(
            f"FIRMWARE_NAME:Marlin {self.version} (Dec 24 2022 12:00:00) "
            "SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 "
            f"MACHINE_TYPE:3D Printer EXTRUDER_COUNT:{self.extruders} "
            "UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff"
        )
        caps = dict(_CAPABILITIES)
        caps["AUTOREPORT_TEMP"] = self.auto_report
        for cap, enabled in sorted(caps.items()):
            self._emit(f"Cap:{cap}:{int(enabled)}")

    def _m_auto_report(self, args: dict[str, float]) -> None:
        if not self.auto_report:
            self._emit(f'echo:Unknown command: "{self.executed[-1]}"')
            return
        self._report_interval = int(args.get("S", 0))
        self._next_report = self._now + self._report_interval if self._report_interval else math.inf

    def _m_finish_moves(self, args: dict[str, float]) -> None:
        self._block(self._planner_end, None)

    def _m_kill(self, args: dict[str, float]) -> None:
        self._kill()

    _handlers: dict[tuple[str, int], Callable[[SimulatedMarlin, dict[str, float]], None]] = {
        ("G", 0): _g_move,
        ("G", 1): _g_move,
        ("G", 2): _g_move,
        ("G", 3): _g_move,
        ("G", 4): _g_dwell,
        ("G", 28): _g_home,
        ("G", 90): _g_absolute,
        ("G", 91): _g_relative,
        ("G", 92): _g_set_position,
        ("M", 82): _m_extrude_absolute,
        ("M", 83): _m_extrude_relative,
        ("M", 104): _m_hotend,
        ("M", 105): _m_report_temperatures,
        ("M", 109): _m_hotend_wait,
        ("M", 110): _m_line_number,
        ("M", 112): _m_kill,
        ("M", 114): _m_position,
        ("M", 115): _m_firmware_info,
        ("M", 140): _m_bed,
        ("M", 155): _m_auto_report,
        ("M", 190): _m_bed_wait,
        ("M", 400): _m_finish_moves,
    }
