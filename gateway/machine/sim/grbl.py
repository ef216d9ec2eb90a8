"""A simulated GRBL 1.1 controller: the parts of the firmware a host can trip over.

Modelled on gnea/grbl 1.1 (``serial.c``, ``protocol.c``, ``gcode.c``,
``system.c``, ``report.c``):

* a serial RX buffer of ``rx_buffer_size`` bytes; a byte arriving while it is
  full is lost and counted in :attr:`overflows` (GRBL's RX interrupt drops it,
  which corrupts the line: the host broke character counting);
* real-time bytes (``?``, ``!``, ``~``, Ctrl-X and every byte >= 0x80) picked off
  on arrival, never stored in the RX buffer, recorded in :attr:`realtime`;
* the main loop reads a line out of the RX buffer, runs GRBL's pre-parser
  (blanks and comments dropped, upper-cased, more than 79 characters is
  ``error:11``) and parses it.  A motion waits for a free planner block
  (``planner_blocks``) and ``ok`` is printed only once it is planned, so lines
  back up in the RX buffer while the planner is full.  Nothing is read while
  in a feed hold.  ``G4`` and ``M0``/``M2``/``M30`` wait for the planner to empty;
* moves take their real duration (distance / feed) times ``time_scale``
  (0: instant), honouring feed and rapid overrides;
* status reports with ``Bf:`` (planner blocks and RX bytes free, when
  ``$10`` bit 1 is set), ``Ln:``, ``FS:``, and ``WCO:``/``Ov:`` on GRBL's
  refresh counters, printed at the real-time checkpoint that follows each line
  read (so a report can precede the ``ok`` of the line just read);
* soft reset, with ``ALARM:3`` when it interrupts motion; an alarm on boot
  (``alarm_on_boot``, as with homing lock) with ``[MSG:'$H'|'$X' to unlock]``;
  ``$$ $# $G $I $N $C $X $H $J= $SLP $RST= $x=``.

The G-code rules it applies (modal groups, number reading, pre-parser, arcs)
are in :mod:`gateway.machine.sim.grbl_gcode`.

Every line answered ``ok`` (G-code and ``$`` commands) is recorded in
:attr:`executed`, every status report in :attr:`reports`.  Not modelled:
probing, safety door, spindle-stop and coolant toggles, jog cancel (0x85),
soft and hard limits, tool length offsets.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from gateway.machine.sim.firmware import SimulatedFirmware
from gateway.machine.sim.grbl_gcode import (
    AXES,
    G_GROUPS,
    M_GROUPS,
    VALUE_LETTERS,
    arc_length,
    preparse,
    read_number,
)

_SETTINGS: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0,
    20: 0, 21: 0, 22: 0, 23: 0, 24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0,
    32: 0, 100: 250.0, 101: 250.0, 102: 250.0, 110: 500.0, 111: 500.0, 112: 500.0,
    120: 10.0, 121: 10.0, 122: 10.0, 130: 200.0, 131: 200.0, 132: 200.0,
}  # fmt: skip
_INT_SETTINGS = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32})
_HELP = "[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]"


class MachineState(Enum):
    IDLE = "Idle"
    RUN = "Run"
    HOLD = "Hold"
    JOG = "Jog"
    ALARM = "Alarm"
    CHECK = "Check"
    HOME = "Home"
    SLEEP = "Sleep"


_BUSY = frozenset({MachineState.RUN, MachineState.HOLD, MachineState.JOG, MachineState.HOME})


def _xyz(values: Iterable[float]) -> str:
    return ",".join(f"{v:.3f}" for v in values)


@dataclass
class _Block:
    target: tuple[float, float, float]
    seconds: float  # at 100 % override, already times time_scale
    feed: float  # mm/min shown in FS:
    rapid: bool
    line_number: int


@dataclass
class _Pending:
    """The line GRBL is executing and has not answered yet."""

    text: str
    blocks: deque[_Block] = field(default_factory=deque)  # waiting for planner room
    sync: str = ""  # "dwell" | "pause" | "end" | "home": waits for an empty planner
    seconds: float = 0.0
    until: float | None = None
    paused: bool = False
    silent: bool = False  # a startup line: echoed as ">line:ok", no plain ok


@dataclass
class _Modal:
    motion: int = 0
    coord: int = 0  # 0 = G54
    plane: int = 17
    inches: bool = False
    incremental: bool = False
    inverse_time: bool = False
    spindle: int = 5
    coolant: int = 9
    feed: float = 0.0
    speed: float = 0.0
    tool: int = 0


def _override(value: int, step: int) -> int:
    return 100 if step == 0 else min(200, max(10, value + (0, 10, -10, 1, -1)[step]))


class SimulatedGrbl(SimulatedFirmware):
    """GRBL 1.1 on an Arduino-class board, in memory.

    ``rx_buffer_size`` is the serial RX buffer (128 in GRBL 1.1),
    ``planner_blocks`` the usable planner blocks (15), ``time_scale`` multiplies
    real motion time (0: moves finish instantly), ``report_buffer_state`` sets
    ``$10`` bit 1 so status reports carry ``Bf:``, ``version`` is printed in the
    banner, ``alarm_on_boot`` boots locked in ALARM as with homing enabled, and
    ``startup_lines`` are the ``$N0``/``$N1`` blocks run after each reset.
    """

    name = "grbl"
    integrity_checked = False

    def __init__(
        self,
        *,
        rx_buffer_size: int = 128,
        planner_blocks: int = 15,
        time_scale: float = 0.0,
        report_buffer_state: bool = True,
        version: str = "1.1h",
        alarm_on_boot: bool = False,
        line_buffer_size: int = 80,
        startup_lines: tuple[str, str] = ("", ""),
    ) -> None:
        super().__init__()
        self.rx_buffer_size = rx_buffer_size
        self.planner_blocks = planner_blocks
        self.time_scale = time_scale
        self.version = version
        self.alarm_on_boot = alarm_on_boot
        self.line_buffer_size = line_buffer_size
        self.settings = dict(_SETTINGS)
        self.settings[10] = 1 + (2 if report_buffer_state else 0)
        self.settings[22] = 1 if alarm_on_boot else 0
        self.startup_lines = list(startup_lines)
        self.build_info = ""
        #: Every status report printed, for tests that look at what GRBL said.
        self.reports: list[str] = []
        self._out = bytearray()
        self._rx = bytearray()
        self._planner: deque[_Block] = deque()
        self._pending: _Pending | None = None
        self.state = MachineState.IDLE
        self._hold_active = False
        self._clock = 0.0
        self._progress = 0.0  # fraction of the first planner block done
        self._pos = (0.0, 0.0, 0.0)  # machine position at the start of the current block
        self._gc_pos = (0.0, 0.0, 0.0)  # where the parser's last planned move ends
        self._modal = _Modal()
        self._wcs = [[0.0, 0.0, 0.0] for _ in range(6)]
        self._g92 = [0.0, 0.0, 0.0]
        self._g28 = (0.0, 0.0, 0.0)
        self._g30 = (0.0, 0.0, 0.0)
        self._report_wanted = False
        self._reset_after_reply = False
        self._silent = False
        self._wco_counter = 0
        self._ov_counter = 0
        self.feed_override = 100
        self.rapid_override = 100
        self.spindle_override = 100

    # -- SimulatedFirmware -----------------------------------------------------

    def _histories(self) -> list[list[str] | list[int]]:
        return [*super()._histories(), self.reports]

    def power_on(self, now: float) -> None:
        self._clock = now
        self._pos = self._gc_pos = (0.0, 0.0, 0.0)
        self._g92 = [0.0, 0.0, 0.0]
        self._reset(now, locked=self.alarm_on_boot, power_on=True)

    def receive(self, data: bytes, now: float) -> None:
        self._advance(now)
        for byte in data:
            if byte in (0x3F, 0x21, 0x7E, 0x18) or byte >= 0x80:
                self.realtime.append(byte)
                self._realtime(byte, now)
            elif len(self._rx) >= self.rx_buffer_size:
                self.overflows += 1
            else:
                self._rx.append(byte)
                if byte in (0x0A, 0x0D):
                    self._process(now)  # the main loop keeps up while the planner has room
        self._service(now)

    def output(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def tick(self, now: float) -> None:
        self._advance(now)
        self._service(now)

    def next_wakeup(self) -> float | None:
        if self._hold_active or self.state in (MachineState.ALARM, MachineState.SLEEP):
            return None
        p = self._pending
        if p is not None and p.until is not None:
            return p.until
        if self._planner:
            return self._clock + self._remaining(self._planner[0])
        return None

    def moving(self, now: float) -> bool:
        self._advance(now)
        return bool(self._planner) and self.state not in (MachineState.ALARM, MachineState.SLEEP)

    # -- real-time commands ----------------------------------------------------

    def _realtime(self, byte: int, now: float) -> None:
        moving = self.state in (MachineState.RUN, MachineState.JOG) and bool(self._planner)
        if byte == 0x18:
            self._reset(now, alarm=6 if self.state is MachineState.HOME else 3 if moving else 0)
        elif byte == 0x3F:
            self._report_wanted = True
        elif byte == 0x21 and self.state in (MachineState.IDLE, MachineState.RUN):
            self.state, self._hold_active = MachineState.HOLD, True
        elif byte == 0x21 and self.state is MachineState.JOG:
            self._pos = self._gc_pos = self._position()
            self._planner.clear()  # a hold cancels a jog and flushes it (commands.md)
            self._progress = 0.0
            self.state = MachineState.IDLE
        elif byte == 0x7E and self._hold_active:
            self._hold_active = False
            self.state = MachineState.RUN if self._planner else MachineState.IDLE
        elif 0x90 <= byte <= 0x94:  # feed: 100 %, +10, -10, +1, -1 (10-200 %)
            self.feed_override = _override(self.feed_override, byte - 0x90)
        elif 0x95 <= byte <= 0x97:
            self.rapid_override = (100, 50, 25)[byte - 0x95]
        elif 0x99 <= byte <= 0x9D:  # spindle: the same steps as feed
            self.spindle_override = _override(self.spindle_override, byte - 0x99)
        if 0x90 <= byte <= 0x9D:
            self._ov_counter = 0  # a changed override shows in the next report

    def _reset(
        self, now: float, *, alarm: int = 0, locked: bool = False, power_on: bool = False
    ) -> None:
        """Soft reset (Ctrl-X) or power-on: main.c re-initialises and prints the banner."""
        if alarm:
            self._say(f"ALARM:{alarm}")
        was_locked = self.state in (MachineState.ALARM, MachineState.SLEEP) and not power_on
        self._pos = self._position()
        self._rx.clear()
        self._planner.clear()
        self._pending = None
        self._progress = 0.0
        self._gc_pos = self._pos
        self._hold_active = False
        self._report_wanted = False  # a reset clears a pending '?' (interface doc)
        self._reset_after_reply = False
        self._modal = _Modal()
        self._g92 = [0.0, 0.0, 0.0]
        self._wco_counter = self._ov_counter = 0
        self.feed_override = self.rapid_override = self.spindle_override = 100
        self._out += f"\r\nGrbl {self.version} ['$' for help]\r\n".encode()
        if alarm or locked or was_locked:
            self.state = MachineState.ALARM
            self._say("[MSG:'$H'|'$X' to unlock]")
            return
        self.state = MachineState.IDLE
        self._silent = True
        for line in self.startup_lines:
            if line:
                code = self._gcode(preparse(line.encode(), self.line_buffer_size)[0], now, line)
                self._say(f">{line}:ok" if not code else f">{line}:error:{code}")
        self._silent = False

    # -- motion ----------------------------------------------------------------

    def _rate(self, block: _Block) -> float:
        return (self.rapid_override if block.rapid else self.feed_override) / 100.0

    def _remaining(self, block: _Block) -> float:
        return (1.0 - self._progress) * block.seconds / self._rate(block)

    def _advance(self, now: float) -> None:
        dt, self._clock = max(0.0, now - self._clock), max(now, self._clock)
        if self._hold_active or self.state in (MachineState.ALARM, MachineState.SLEEP):
            return
        while self._planner:
            block = self._planner[0]
            need = self._remaining(block)
            if need > dt:
                self._progress += dt * self._rate(block) / block.seconds
                break
            dt -= need
            self._planner.popleft()
            self._pos, self._progress = block.target, 0.0
        if not self._planner and self.state in (MachineState.RUN, MachineState.JOG):
            self.state = MachineState.IDLE

    def _position(self) -> tuple[float, float, float]:
        if not self._planner or self._progress == 0.0:
            return self._pos
        t, f = self._planner[0].target, self._progress
        return (
            self._pos[0] + (t[0] - self._pos[0]) * f,
            self._pos[1] + (t[1] - self._pos[1]) * f,
            self._pos[2] + (t[2] - self._pos[2]) * f,
        )

    def _plan(self, block: _Block) -> bool:
        if len(self._planner) >= self.planner_blocks:
            return False
        self._planner.append(block)
        if self.state is MachineState.IDLE:
            self.state = MachineState.JOG if block.line_number < 0 else MachineState.RUN
        return True

    # -- the main loop ---------------------------------------------------------

    def _service(self, now: float) -> None:
        self._process(now)
        if self._report_wanted:
            self._report_wanted = False
            self._status_report()

    def _process(self, now: float) -> None:
        while True:
            if self._hold_active:
                pending = self._pending
                if pending is None or pending.sync != "pause" or pending.paused:
                    return  # suspended: protocol_exec_rt_suspend() blocks the main loop
            if self._pending is not None:
                if not self._continue(self._pending, now):
                    return
                continue
            end = next((i for i, c in enumerate(self._rx) if c in (0x0A, 0x0D)), -1)
            if end < 0:
                return
            raw = bytes(self._rx[:end])
            del self._rx[: end + 1]
            if self._report_wanted:
                # protocol.c runs its real-time checkpoint at each end of line, after
                # reading the line and before executing it: the report shows an empty
                # RX buffer while this line's ok is still to come.
                self._report_wanted = False
                self._status_report()
            self._line(raw, now)

    def _line(self, raw: bytes, now: float) -> None:
        text = raw.decode("latin-1")
        line, overflow = preparse(raw, self.line_buffer_size)
        code: int | None
        if overflow:
            code = 11
        elif not line:
            code = 0
        elif line[0] == "$":
            code = self._system(line, now, text)
        elif self.state in (MachineState.ALARM, MachineState.JOG):
            code = 9
        else:
            code = self._gcode(line, now, text)
        if code is not None:
            self._reply(code, text if line else "")

    def _reply(self, code: int, text: str) -> None:
        if code:
            self._say(f"error:{code}")
            return
        if text and self.state is not MachineState.CHECK:
            self.executed.append(text)
        self._say("ok")
        if self._reset_after_reply:
            self._reset(self._clock, alarm=0)

    def _continue(self, p: _Pending, now: float) -> bool:
        """Move the executing line on; True once it has been answered."""
        while p.blocks:
            if not self._plan(p.blocks[0]):
                return False
            p.blocks.popleft()
        if p.sync:
            if self._planner:
                return False
            if p.until is None:
                p.until = now + p.seconds
                if p.sync == "home":
                    self.state = MachineState.HOME
                elif p.sync == "pause":
                    self.state, self._hold_active = MachineState.HOLD, True
                    p.paused = True
                    return False
            if p.sync == "pause" and self._hold_active:
                return False
            if now < p.until:
                return False
            if p.sync == "home":
                self._pos = self._gc_pos = (0.0, 0.0, 0.0)
                self.state = MachineState.IDLE
            elif p.sync == "end":
                self._modal = _Modal(
                    motion=1, coord=0, feed=self._modal.feed, tool=self._modal.tool
                )
                self._say("[MSG:Pgm End]")
        self._pending = None
        if not p.silent:
            self._reply(0, p.text)
        return True

    def _say(self, text: str) -> None:
        self._out += text.encode("latin-1") + b"\r\n"

    # -- status ----------------------------------------------------------------

    def _wco(self) -> list[float]:
        return [self._wcs[self._modal.coord][i] + self._g92[i] for i in range(3)]

    def _status_report(self) -> None:
        state = self.state.value
        if self.state is MachineState.HOLD:
            state += ":0"
        mask = int(self.settings[10])
        pos = list(self._position())
        if not mask & 1:
            pos = [p - o for p, o in zip(pos, self._wco(), strict=True)]
        fields = [state, ("MPos:" if mask & 1 else "WPos:") + _xyz(pos)]
        if mask & 2:
            free = self.rx_buffer_size - len(self._rx)
            fields.append(f"Bf:{self.planner_blocks - len(self._planner)},{free}")
        moving = self._planner and not self._hold_active
        block = self._planner[0] if self._planner else None
        if block is not None and block.line_number > 0:
            fields.append(f"Ln:{block.line_number}")
        feed = block.feed * self._rate(block) if moving and block is not None else 0.0
        on = self._modal.spindle in (3, 4)
        speed = self._modal.speed * self.spindle_override / 100 if on else 0.0
        fields.append(f"FS:{feed:.0f},{speed:.0f}")
        busy = self.state in _BUSY
        if self._wco_counter > 0:
            self._wco_counter -= 1
        else:
            self._wco_counter = 29 if busy else 9
            self._ov_counter = max(self._ov_counter, 1)
            fields.append("WCO:" + _xyz(self._wco()))
        if self._ov_counter > 0:
            self._ov_counter -= 1
        else:
            self._ov_counter = 19 if busy else 9
            fields.append(f"Ov:{self.feed_override},{self.rapid_override},{self.spindle_override}")
            acc = ("S" if self._modal.spindle == 3 else "C" if on else "") + (
                "F" if self._modal.coolant == 8 else ""
            )
            if acc:
                fields.append(f"A:{acc}")
        report = "<" + "|".join(fields) + ">"
        self.reports.append(report)
        self._say(report)

    # -- '$' system commands (system.c) ----------------------------------------

    def _system(self, line: str, now: float, text: str) -> int | None:
        state = self.state
        if line == "$":
            self._say(_HELP)
            return 0
        kind = line[1]
        if kind == "J":
            if state not in (MachineState.IDLE, MachineState.JOG):
                return 8
            return self._gcode(line[3:], now, text, jog=True) if line[2:3] == "=" else 3
        if kind in "$GCX":
            if len(line) != 2:
                return 3
            if kind == "$":
                if state in (MachineState.RUN, MachineState.HOLD):
                    return 8
                for key, value in self.settings.items():
                    self._say(f"${key}={int(value) if key in _INT_SETTINGS else f'{value:.3f}'}")
            elif kind == "G":
                self._say(self._parser_state())
            elif kind == "C" and state is MachineState.CHECK:
                self._say("[MSG:Disabled]")
                self._reset_after_reply = True  # leaving check mode resets GRBL
            elif kind == "C":
                if state is not MachineState.IDLE:
                    return 8
                self.state = MachineState.CHECK
                self._say("[MSG:Enabled]")
            elif kind == "X" and state is MachineState.ALARM:
                self._say("[MSG:Caution: Unlocked]")
                self.state = MachineState.IDLE
            return 0
        if state not in (MachineState.IDLE, MachineState.ALARM):
            return 8
        if line == "$#":
            for i, offset in enumerate(self._wcs):
                self._say(f"[G{54 + i}:{_xyz(offset)}]")
            for name, vec in (("G28", self._g28), ("G30", self._g30), ("G92", self._g92)):
                self._say(f"[{name}:{_xyz(vec)}]")
            self._say("[TLO:0.000]")
            self._say("[PRB:0.000,0.000,0.000:0]")
        elif line == "$H":
            if not self.settings[22]:
                return 5
            self._pending = _Pending(text, sync="home", seconds=2.0 * self.time_scale)
            return None
        elif line == "$SLP":
            self._say("[MSG:Sleeping]")
            self.state = MachineState.SLEEP
        elif line == "$I":
            self._say(f"[VER:{self.version}.20190830:{self.build_info}]")
            self._say(f"[OPT:V,{self.planner_blocks},{self.rx_buffer_size}]")
        elif line.startswith("$I="):
            self.build_info = text.split("=", 1)[1].strip()
        elif line.startswith("$RST="):
            if line[5:] not in ("$", "#", "*"):
                return 3
            if line[5:] in "$*":
                self.settings.update({k: v for k, v in _SETTINGS.items() if k not in (10, 22)})
            self._say("[MSG:Restoring defaults]")
            self._reset_after_reply = True
        elif line == "$N":
            for i, stored in enumerate(self.startup_lines):
                self._say(f"$N{i}={stored}")
        elif line.startswith("$N"):
            if state is not MachineState.IDLE:
                return 8
            number = read_number(line, 2)
            if number is None or line[number[1] : number[1] + 1] != "=" or number[0] not in (0, 1):
                return 3
            self.startup_lines[int(number[0])] = line[number[1] + 1 :]
        else:
            return self._store_setting(line)
        return 0

    def _store_setting(self, line: str) -> int:
        parameter = read_number(line, 1)
        if parameter is None:
            return 2
        if line[parameter[1] : parameter[1] + 1] != "=":
            return 3
        value = read_number(line, parameter[1] + 1)
        if value is None:
            return 2
        key = parameter[0]
        if value[1] != len(line) or key != int(key) or int(key) not in self.settings:
            return 3
        if value[0] < 0:
            return 4
        if key == 0 and value[0] < 3:
            return 6
        if key == 20 and value[0] and not self.settings[22]:
            return 10
        self.settings[int(key)] = value[0]
        return 0

    def _parser_state(self) -> str:
        m = self._modal
        return (
            f"[GC:G{m.motion} G{54 + m.coord} G{m.plane} G{20 if m.inches else 21} "
            f"G{91 if m.incremental else 90} G{93 if m.inverse_time else 94} M{m.spindle} "
            f"M{m.coolant} T{m.tool} F{m.feed:.0f} S{m.speed:.0f}]"
        )

    # -- G-code (gcode.c) ------------------------------------------------------

    def _gcode(self, line: str, now: float, text: str, *, jog: bool = False) -> int | None:
        """Parse and execute one block; an error code, 0 for ok, None when the ok waits."""
        groups: dict[tuple[str, int], int] = {}
        values: dict[str, float] = {}
        axis_command = ""
        i = 0
        while i < len(line):
            letter = line[i]
            if not "A" <= letter <= "Z":
                return 1
            number = read_number(line, i + 1)
            if number is None:
                return 2
            value, i = number
            if letter in "GM":
                whole = int(value)
                mantissa = round(100 * (value - whole))
                if letter == "M":
                    if mantissa:
                        return 23
                    group = M_GROUPS.get(whole)
                elif (whole, mantissa) in G_GROUPS:
                    group = G_GROUPS[(whole, mantissa)]
                else:
                    return 23 if any(w == whole for w, _ in G_GROUPS) else 20
                if group is None or (jog and (letter == "M" or whole not in (20, 21, 53, 90, 91))):
                    return 16 if jog else 20
                if letter == "G" and mantissa == 0 and whole in (0, 1, 2, 3, 10, 28, 30, 92):
                    if axis_command:
                        return 24
                    axis_command = "motion" if whole < 4 else "non-modal"
                if (letter, group) in groups:
                    return 21
                groups[(letter, group)] = whole * 100 + mantissa
            else:
                if letter not in VALUE_LETTERS or (jog and letter not in "XYZFN"):
                    return 16 if jog else 20
                if letter in values:
                    return 25
                if value < 0 and letter in "FNPTS":
                    return 4
                if letter == "T" and value > 255:
                    return 38
                values[letter] = value
        return self._execute(groups, values, axis_command, now, text, jog)

    def _execute(
        self,
        groups: dict[tuple[str, int], int],
        values: dict[str, float],
        axis_command: str,
        now: float,
        text: str,
        jog: bool,
    ) -> int | None:
        m = self._modal
        g = {group: code for (letter, group), code in groups.items() if letter == "G"}
        mc = {group: code for (letter, group), code in groups.items() if letter == "M"}
        non_modal = g.get(0)
        axes = [a for a in AXES if a in values]
        if axes and not axis_command:
            axis_command = "motion"
        if values.get("N", 0) > 9_999_999:
            return 27
        if jog and not axes:
            return 16
        inches = g[6] == 2000 if 6 in g else m.inches
        scale = 25.4 if inches else 1.0
        inverse = not jog and (g[5] == 9300 if 5 in g else m.inverse_time)
        motion = 1 if jog else g[1] // 100 if 1 in g else m.motion
        feed = values["F"] * scale if "F" in values else (0.0 if inverse or jog else m.feed)
        unused = set(values) - {"N", "F", "S", "T"}
        if axis_command:
            unused -= set(AXES)
        if non_modal == 400:
            if "P" not in values:
                return 28
            unused.discard("P")
        if non_modal == 1000:
            if "L" not in values or "P" not in values:
                return 28
            if values["L"] not in (2, 20):
                return 20
            if values["P"] > 6 or values["P"] != int(values["P"]):
                return 29
            unused -= {"L", "P"}
        if non_modal == 9200 and not axes:
            return 26
        if non_modal == 5300 and motion not in (0, 1):
            return 30
        # Where the block goes, in the distance mode and coordinate system it selects.
        incremental = g[3] == 9100 if 3 in g else m.incremental
        coord = g[12] // 100 - 54 if 12 in g else m.coord
        wco = (
            [0.0] * 3
            if non_modal == 5300
            else [self._wcs[coord][k] + self._g92[k] for k in range(3)]
        )
        base = self._gc_pos
        end = tuple(
            (base[k] + values[a] * scale if incremental else values[a] * scale + wco[k])
            if a in values
            else base[k]
            for k, a in enumerate(AXES)
        )
        length = math.dist(base, end)
        plane = g[2] // 100 if 2 in g else m.plane
        if axis_command == "motion" and motion == 80 and axes:
            return 31
        if axis_command == "motion" and motion in (1, 2, 3):
            if feed <= 0:
                return 16 if jog else 22
            if motion in (2, 3):
                arc = arc_length(base, end, values, scale, plane, motion)
                if isinstance(arc, int):
                    return arc
                length = arc
                unused -= {"I", "J", "K", "R"}
        if unused:
            return 36
        # Valid: apply the block in gcode.c's order of execution.
        if not jog:  # a jog leaves the parser's modes alone (commands.md, "$J=")
            m.inches, m.inverse_time, m.incremental, m.coord, m.plane = (
                inches, inverse, incremental, coord, plane
            )  # fmt: skip
            m.motion = motion if 1 in g else m.motion
            m.feed = feed if not inverse else m.feed
            m.speed = values.get("S", m.speed)
            m.tool = int(values.get("T", m.tool))
            m.spindle = mc.get(7, m.spindle * 100) // 100
            m.coolant = mc.get(8, m.coolant * 100) // 100
        targets: list[tuple[float, ...]] = []
        if non_modal == 1000:
            slot = int(values["P"]) - 1 if values["P"] else m.coord
            for k, axis in enumerate(AXES):
                if axis in values:
                    v = values[axis] * scale
                    self._wcs[slot][k] = v if values["L"] == 2 else base[k] - v - self._g92[k]
        elif non_modal == 9200:
            for k, axis in enumerate(AXES):
                if axis in values:
                    self._g92[k] = base[k] - self._wcs[m.coord][k] - values[axis] * scale
        elif non_modal == 9210:
            self._g92 = [0.0, 0.0, 0.0]
        elif non_modal in (2810, 3010):
            setattr(self, "_g28" if non_modal == 2810 else "_g30", base)
        elif non_modal in (2800, 3000):
            targets = [end] if axes else []
            targets.append(self._g28 if non_modal == 2800 else self._g30)
            motion, length = 0, -1.0
        elif axis_command == "motion" and motion != 80 and axes:
            targets.append(end)
        pending = _Pending(text, silent=self._silent)
        for target in targets:
            start, self._gc_pos = self._gc_pos, (target[0], target[1], target[2])
            distance = length if length >= 0 else math.dist(start, target)
            moving = [k for k in range(3) if start[k] != target[k]] or [0]
            rate = min(self.settings[110 + k] for k in moving) if motion == 0 else feed
            minutes = (1.0 / feed) if inverse and motion else distance / rate
            number = -1 if jog else int(values.get("N", 0))
            if self.state is not MachineState.CHECK:
                seconds = minutes * 60.0 * self.time_scale
                shown = distance / minutes if minutes else rate
                pending.blocks.append(_Block(self._gc_pos, seconds, shown, motion == 0, number))
        if non_modal == 400 and self.state is not MachineState.CHECK:
            pending.sync, pending.seconds = "dwell", values["P"] * self.time_scale
        flow = mc.get(4)
        if flow is not None and self.state is not MachineState.CHECK:
            pending.sync = "pause" if flow in (0, 100) else "end"
        if not pending.blocks and not pending.sync:
            return 0
        self._pending = pending
        self._continue(pending, now)  # answers now if the planner has room
        return None
