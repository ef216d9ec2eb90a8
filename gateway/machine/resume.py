"""Resuming a job part-way: the modal state at a line, and the preamble that restores it.

Pure: lines in, a :class:`ModalState`, a layer index or a preamble out; no I/O,
no clock.  The machine service feeds it the job's prepared (cleaned) lines.

What :class:`ModalTracker` follows, line by line, as the controller would:

* distance mode ``G90``/``G91``; units ``G20``/``G21`` (positions and feed are
  kept in mm, mm/min); plane ``G17``/``G18``/``G19``; motion mode ``G0``-``G3``
  (bare axis words repeat it); feed ``F``; ``G93``/``G94``;
* Marlin extrusion mode ``M82``/``M83``; ``G90``/``G91`` cancel an earlier
  ``M82``/``M83`` (Marlin 2 ``set_relative_mode``), so the E mode is "follows
  G90/G91", "absolute" or "relative";
* work offsets: ``G54``-``G59`` (which one is active; the offsets themselves
  live in the controller) and ``G92`` (kept per axis as the shift between the
  work coordinates and the logical ones; ``G92.1`` clears it, and a Marlin
  ``G28`` clears it for the homed axes, as ``set_axis_is_at_home`` does);
* logical X/Y/Z/E after each move (arcs: their end point); a machine that
  has just powered up believes it is at 0, and so does the tracker;
* Marlin: hotend (``M104``/``M109``, per tool ``T``), bed (``M140``/``M190``),
  fans (``M106``/``M107``, per ``P``), the active tool (``T<n>``);
* GRBL: spindle/laser ``M3``/``M4``/``M5`` and its speed ``S`` (modal, also on a
  move line), coolant ``M7``/``M8``/``M9``;
* layers: a layer starts at the first working move (extruding for Marlin,
  ``G1``-``G3`` with the spindle on for GRBL) that stays at one height
  different from the current layer's, or after a ``;LAYER`` comment in raw
  slicer output.  Prepared files have no comments, so heights are what count.

The preamble (:func:`preamble`) is built so that feeding it to a fresh
tracker gives the same :meth:`ModalState.restorable` as the file gives up to
the chosen line; the property tests check exactly that.

Printers (Marlin): units mm and absolute for the preamble; ``G92 Z`` declares
the height the nozzle is at (the last confirmed one, not homed: homing Z would
drive the nozzle into the print), a lift, ``G28 X Y``, the tool, bed and nozzle
heated with waits (the nozzle parked at the home corner, off the print),
``G92 E``, fans, the XY position, down to Z, then the file's own modes and
feed.  GRBL (mills, lasers): units mm and absolute, the work coordinate
system, ``G92.1``, up to a safe Z (the highest Z the file reached so far, at
least ``clearance`` above the resume height), coolant, spindle or laser with a
spin-up dwell ``G4``, XY, the plunge at the file's feed, ``G92`` re-applied,
then the file's modes and feed.  GRBL does not know where it is after a power
loss: the machine must be homed (``$H``) first, which the member is told.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gateway.machine.errors import MachineError
from gateway.machine.gcode import Firmware

__all__ = [
    "Layer",
    "ModalState",
    "ModalTracker",
    "ResumeError",
    "head_height",
    "layer_index",
    "preamble",
    "state_at",
]

_INCH = 25.4
_AXES = ("X", "Y", "Z")
_MOTION = {0.0: 0, 1.0: 1, 2.0: 2, 3.0: 3}
_PLANES = {17.0: 17, 18.0: 18, 19.0: 19}
_WCS = {54.0: 54, 55.0: 55, 56.0: 56, 57.0: 57, 58.0: 58, 59.0: 59}
# Marlin commands whose argument is free text, never parameters.
_TEXT_COMMANDS = frozenset({0, 1, 16, 23, 28, 30, 32, 33, 117, 118, 928})
_HUGE = 1e9

EMode = Literal["follow", "absolute", "relative"]
Spindle = Literal["off", "cw", "ccw"]


class ResumeError(MachineError):
    """A resume cannot be prepared (line out of range, unknown firmware)."""


@dataclass(frozen=True, slots=True)
class ModalState:
    """What the controller believes after a prefix of a file.

    Positions are logical (what the file's coordinates mean), in mm; ``feed``
    in mm/min; ``g92`` is the ``G92`` shift per axis (work = logical + shift).
    """

    relative: bool = False
    e_mode: EMode = "follow"
    inches: bool = False
    plane: int = 17
    motion: int = 0
    inverse_time: bool = False
    work_offset: int = 54
    g92: tuple[float, float, float] = (0.0, 0.0, 0.0)
    feed: float | None = None
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    e: float = 0.0
    max_z: float = 0.0
    tool: int = 0
    hotends: tuple[tuple[int, float], ...] = ()  # (tool, target °C), targets > 0
    bed: float = 0.0
    fans: tuple[tuple[int, int], ...] = ()  # (fan, PWM 1-255), running fans
    spindle: Spindle = "off"
    spindle_speed: float = 0.0
    coolant: tuple[int, ...] = ()  # 7 (mist), 8 (flood)
    layer: int = 0  # layers started so far (0 before the first)
    layer_z: float | None = None

    @property
    def e_relative(self) -> bool:
        return self.e_mode == "relative" or (self.e_mode == "follow" and self.relative)

    def restorable(self, digits: int = 4) -> dict[str, object]:
        """The part of the state a resume must reproduce, rounded to ``digits``
        decimals (positions go through text in the preamble): everything but
        the layer count, the highest Z seen and the ``G92`` shift of Z (Z is
        never homed on resume, so its shift is declared rather than known)."""

        def r(v: float) -> float:
            return round(v, digits) + 0.0  # + 0.0 turns -0.0 into 0.0

        return {
            "relative": self.relative,
            "e_relative": self.e_relative,
            "e_mode": self.e_mode,
            "inches": self.inches,
            "plane": self.plane,
            # An arc mode is not restored by itself (a bare G2 is an error):
            # preamble() refuses a line that would continue one.
            "motion": self.motion if self.motion < 2 else None,
            "inverse_time": self.inverse_time,
            "work_offset": self.work_offset,
            "g92_xy": (r(self.g92[0]), r(self.g92[1])),
            "feed": None if self.feed is None else r(self.feed),
            "position": (r(self.x), r(self.y), r(self.z), r(self.e)),
            "tool": self.tool,
            "hotends": tuple((t, r(v)) for t, v in self.hotends),
            "bed": r(self.bed),
            "fans": self.fans,
            "spindle": self.spindle,
            "spindle_speed": r(self.spindle_speed),
            "coolant": self.coolant,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "relative": self.relative,
            "e_relative": self.e_relative,
            "inches": self.inches,
            "work_offset": f"G{self.work_offset}",
            "feed": self.feed,
            "position": {"x": self.x, "y": self.y, "z": self.z, "e": self.e},
            "hotends": {str(t): v for t, v in self.hotends},
            "bed": self.bed,
            "fans": {str(f): v for f, v in self.fans},
            "spindle": self.spindle,
            "spindle_speed": self.spindle_speed,
            "layer": self.layer,
        }


@dataclass(frozen=True, slots=True)
class Layer:
    """Layer ``number`` (1-based) starts at 0-based ``line`` at height ``z`` (mm)."""

    number: int
    line: int
    z: float


class ModalTracker:
    """Follows the modal state over cleaned lines; :meth:`feed` one at a time.

    Kept in plain attributes (a snapshot is :attr:`state`), with a fast path
    for the bulk of any file, ``G0``/``G1`` with axis words, so that a layer
    index of a large file takes seconds, not minutes, on a Pi.
    """

    __slots__ = (
        "bed",
        "coolant",
        "e",
        "e_mode",
        "fans",
        "feed_mm",
        "firmware",
        "g92",
        "grbl",
        "hotends",
        "inches",
        "inverse_time",
        "layer",
        "layer_comment",
        "layer_z",
        "layers",
        "lines",
        "max_z",
        "motion",
        "plane",
        "relative",
        "spindle",
        "spindle_speed",
        "tool",
        "work_offset",
        "x",
        "y",
        "z",
    )

    def __init__(self, firmware: Firmware = "marlin") -> None:
        self.firmware: Firmware = firmware
        self.grbl = firmware == "grbl"
        self.lines = 0
        self.layers: list[Layer] = []
        self.layer_comment = False
        self.relative = False
        self.e_mode: EMode = "follow"
        self.inches = False
        self.plane = 17
        self.motion = 0
        self.inverse_time = False
        self.work_offset = 54
        self.g92 = [0.0, 0.0, 0.0]
        self.feed_mm: float | None = None
        self.x = self.y = self.z = self.e = self.max_z = 0.0
        self.tool = 0
        self.hotends: dict[int, float] = {}
        self.bed = 0.0
        self.fans: dict[int, int] = {}
        self.spindle: Spindle = "off"
        self.spindle_speed = 0.0
        self.coolant: set[int] = set()
        self.layer = 0
        self.layer_z: float | None = None

    @property
    def state(self) -> ModalState:
        return ModalState(
            relative=self.relative,
            e_mode=self.e_mode,
            inches=self.inches,
            plane=self.plane,
            motion=self.motion,
            inverse_time=self.inverse_time,
            work_offset=self.work_offset,
            g92=(self.g92[0], self.g92[1], self.g92[2]),
            feed=self.feed_mm,
            x=self.x,
            y=self.y,
            z=self.z,
            e=self.e,
            max_z=self.max_z,
            tool=self.tool,
            hotends=tuple(sorted(self.hotends.items())),
            bed=self.bed,
            fans=tuple(sorted(self.fans.items())),
            spindle=self.spindle,
            spindle_speed=self.spindle_speed,
            coolant=tuple(sorted(self.coolant)),
            layer=self.layer,
            layer_z=self.layer_z,
        )

    def feed(self, line: str) -> None:
        """Take one line (raw or cleaned); a line that is not G-code changes nothing."""
        index = self.lines
        self.lines += 1
        head = line[:3]
        if (head == "G1 " or head == "G0 ") and line.isascii() and self._fast_move(line, index):
            return
        s = line.strip()
        if not s:
            return
        if s[0] == ";" or s[0] == "(":
            if s.upper().startswith((";LAYER:", ";LAYER_CHANGE", "(LAYER")):
                self.layer_comment = True
            return
        cut = s.find(";")
        if cut >= 0:
            s = s[:cut]
        words = _words(s.upper(), self.firmware)
        if words is not None:
            self._apply(words, index)

    def _fast_move(self, line: str, index: int) -> bool:
        """``G0``/``G1`` followed by X/Y/Z/E/F (and S on GRBL) words only; False
        (nothing changed) for anything else, which then goes the general way."""
        x = y = z = e = f = sp = None
        try:
            for word in line.split(" ")[1:]:
                k = word[0]
                v = float(word[1:])
                if k == "X" and x is None:
                    x = v
                elif k == "Y" and y is None:
                    y = v
                elif k == "Z" and z is None:
                    z = v
                elif k == "E" and e is None:
                    e = v
                elif k == "F" and f is None:
                    f = v
                elif k == "S" and sp is None and self.grbl:
                    sp = v
                else:
                    return False
        except (ValueError, IndexError):
            return False
        for value in (x, y, z, e, f, sp):
            if value is not None and not -_HUGE < value < _HUGE:
                return False
        # No exponents ("X1E5" is X1 and E5 in G-code), "inf", "nan" or "1_0":
        # G-code numbers are plain, float() is more lenient.
        if "e" in line or "_" in line or "n" in line or line.count("E") != (e is not None):
            return False
        sc = _INCH if self.inches else 1.0
        if f is not None and f > 0:
            self.feed_mm = f * sc
        if sp is not None:
            self.spindle_speed = sp
        self.motion = 0 if line[1] == "0" else 1
        self._move(x, y, z, e, sc, index)
        return True

    # -- interpretation ------------------------------------------------------------

    def _apply(self, words: list[tuple[str, float]], index: int) -> None:
        grbl = self.grbl
        g_codes = [v for k, v in words if k == "G"]
        m_codes = [int(v) for k, v in words if k == "M"]
        params: dict[str, float] = {k: v for k, v in words if k not in "GMN"}
        motion: int | None = None
        other_g = False
        for g in g_codes:
            if g == 20.0 or g == 21.0:
                self.inches = g == 20.0
            elif g == 90.0 or g == 91.0:
                self.relative = g == 91.0
                self.e_mode = "follow"
            elif g in _PLANES:
                self.plane = _PLANES[g]
            elif g in _WCS:
                self.work_offset = _WCS[g]
            elif g == 93.0 or g == 94.0:
                self.inverse_time = g == 93.0
            elif g in _MOTION:
                motion = _MOTION[g]
            else:
                other_g = True
        sc = _INCH if self.inches else 1.0
        if "F" in params and params["F"] > 0:
            self.feed_mm = params["F"] * sc
        if grbl and "S" in params:
            self.spindle_speed = params["S"]
        for m in m_codes:
            self._m_code(m, params)
        if "T" in params and not g_codes and not m_codes:
            self.tool = int(params["T"])
        for g in g_codes:
            if g == 28.0 and not grbl:
                self._home(params)
            elif g == 92.0:
                self._set_position(params, sc)
            elif g == 92.1 or g == 92.2:
                # GRBL and LinuxCNC: clear the G92 shift; logical becomes work.
                self.x += self.g92[0]
                self.y += self.g92[1]
                self.z += self.g92[2]
                self.g92 = [0.0, 0.0, 0.0]
        has_axes = any(a in params for a in ("X", "Y", "Z")) or ("E" in params and not grbl)
        if motion is None and not other_g and not m_codes and has_axes:
            motion = self.motion
        if motion is not None and not other_g:
            self.motion = motion
            self._move(
                params.get("X"), params.get("Y"), params.get("Z"), params.get("E"), sc, index
            )

    def _m_code(self, m: int, params: dict[str, float]) -> None:
        if self.grbl:
            if m == 3 or m == 4:
                self.spindle = "cw" if m == 3 else "ccw"
            elif m == 5:
                self.spindle = "off"
            elif m in (2, 30):  # program end: spindle and coolant off
                self.spindle = "off"
                self.coolant = set()
            elif m in (7, 8):
                self.coolant.add(m)
            elif m == 9:
                self.coolant = set()
            return
        if m == 82:
            self.e_mode = "absolute"
        elif m == 83:
            self.e_mode = "relative"
        elif m in (104, 109):
            target = params.get("S", params.get("R"))
            if target is not None:
                tool = int(params.get("T", self.tool))
                self.hotends.pop(tool, None)
                if target > 0:
                    self.hotends[tool] = target
        elif m in (140, 190):
            target = params.get("S", params.get("R"))
            if target is not None:
                self.bed = max(0.0, target)
        elif m in (106, 107):
            fan = int(params.get("P", 0))
            speed = 0 if m == 107 else int(min(255.0, max(0.0, params.get("S", 255.0))))
            self.fans.pop(fan, None)
            if speed > 0:
                self.fans[fan] = speed

    def _move(
        self,
        px: float | None,
        py: float | None,
        pz: float | None,
        pe: float | None,
        sc: float,
        index: int,
    ) -> None:
        rel = self.relative
        x0, y0, z0 = self.x, self.y, self.z
        x = x0 if px is None else (x0 + px * sc if rel else px * sc)
        y = y0 if py is None else (y0 + py * sc if rel else py * sc)
        z = z0 if pz is None else (z0 + pz * sc if rel else pz * sc)
        de = 0.0
        if pe is not None and not self.grbl:
            relative_e = self.e_mode == "relative" or (self.e_mode == "follow" and rel)
            new_e = self.e + pe * sc if relative_e else pe * sc
            de = new_e - self.e
            self.e = new_e
        self.x, self.y, self.z = x, y, z
        if z > self.max_z:
            self.max_z = z
        motion = self.motion
        if not (x != x0 or y != y0 or z != z0 or motion >= 2) or z != z0:
            return
        if self.grbl:
            working = motion >= 1 and self.spindle != "off" and self.spindle_speed > 0.0
        else:
            working = de > 0.0
        if not working:
            return
        layer_z = self.layer_z
        if self.layer_comment or layer_z is None or abs(z - layer_z) > 1e-6:
            self.layer += 1
            self.layers.append(Layer(self.layer, index, z))
            self.layer_z = z
            self.layer_comment = False

    def _home(self, params: dict[str, float]) -> None:
        named = [a for a in _AXES if a in params]
        for i, axis in enumerate(_AXES):
            if not named or axis in named:
                setattr(self, axis.lower(), 0.0)
                self.g92[i] = 0.0

    def _set_position(self, params: dict[str, float], sc: float) -> None:
        for i, axis in enumerate(_AXES):
            if axis in params:
                value = params[axis] * sc
                attr = axis.lower()
                self.g92[i] += getattr(self, attr) - value
                setattr(self, attr, value)
        if "E" in params:
            self.e = params["E"] * sc


def _words(s: str, firmware: Firmware) -> list[tuple[str, float]] | None:
    """The letter/number words of an upper-cased line, or None if it is not G-code."""
    if not s or s[0] == "$":
        return None
    out: list[tuple[str, float]] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == " " or c == "\t":
            i += 1
            continue
        if c == "(":
            end = s.find(")", i)
            if end < 0:
                return out or None
            i = end + 1
            continue
        if not ("A" <= c <= "Z"):
            return out or None
        j = i + 1
        while j < n and s[j] in " \t":
            j += 1
        k = j
        while k < n and (s[k].isdigit() or s[k] in "+-."):
            k += 1
        try:
            value = float(s[j:k])
        except ValueError:
            return out or None
        if not -_HUGE < value < _HUGE or math.isnan(value):
            return out or None
        if c == "M" and not out and firmware == "marlin" and int(value) in _TEXT_COMMANDS:
            return [(c, value)]
        out.append((c, round(value, 1) if c == "G" else value))
        i = k
    return out or None


def state_at(lines: list[str], line: int, firmware: Firmware) -> ModalState:
    """The modal state before 0-based ``line`` runs (after ``lines[:line]``)."""
    if not 0 <= line <= len(lines):
        raise ResumeError(f"line {line + 1} is outside the file (1 to {len(lines)})")
    tracker = ModalTracker(firmware)
    for text in lines[:line]:
        tracker.feed(text)
    return tracker.state


def head_height(lines: list[str], line: int, firmware: Firmware, window: int = 16) -> float:
    """The lowest Z of the ``window`` lines before ``line``: where the tool may be.

    The last confirmed line may still have been waiting in the controller's
    planner (16 moves on Marlin and GRBL), so the tool is somewhere in the
    moves just before it.  Declaring a height above the real one would drive
    the nozzle into the print on the way down; below it, it prints in the air.
    """
    if not 0 <= line <= len(lines):
        raise ResumeError(f"line {line + 1} is outside the file (1 to {len(lines)})")
    tracker = ModalTracker(firmware)
    low = math.inf
    first = max(0, line - window)
    for i, text in enumerate(lines[:line]):
        tracker.feed(text)
        if i >= first:
            low = min(low, tracker.z)
    return tracker.z if low == math.inf else low


def layer_index(lines: list[str], firmware: Firmware) -> list[Layer]:
    """Every layer of the file: where it starts and at what height."""
    tracker = ModalTracker(firmware)
    for text in lines:
        tracker.feed(text)
    return tracker.layers


def _num(v: float) -> str:
    text = f"{v:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def preamble(
    lines: list[str],
    line: int,
    firmware: Firmware,
    *,
    head_z: float | None = None,
    lift: float = 2.0,
    travel_feed: float = 3000.0,
    z_feed: float = 600.0,
    spin_up: float = 4.0,
    clearance: float = 5.0,
) -> list[str]:
    """The lines to send before ``lines[line:]`` so that they run as if the whole
    file had run up to there.

    ``head_z`` is the height (mm, logical) the tool is at now, as last confirmed
    (Marlin: declared with ``G92 Z``; default the resume height).  ``lift`` (mm)
    raises the nozzle off the print before homing X/Y; ``spin_up`` (s) is the
    GRBL dwell after starting the spindle; ``clearance`` (mm) the least height
    above the resume point for GRBL's travel.
    """
    if firmware not in ("marlin", "grbl"):
        raise ResumeError(f"unknown firmware {firmware!r}; use 'marlin' or 'grbl'")
    st = state_at(lines, line, firmware)
    if st.motion >= 2 and line < len(lines) and lines[line].lstrip()[:1] not in ("G", "g"):
        raise ResumeError(
            f"line {line + 1} continues an arc with bare coordinates; "
            "resume from the start of a layer or from a line that starts with G"
        )
    if firmware == "grbl":
        return _grbl_preamble(st, travel_feed, z_feed, spin_up, clearance)
    return _marlin_preamble(st, head_z, lift, travel_feed, z_feed)


def _final_modes(st: ModalState, grbl: bool) -> list[str]:
    out: list[str] = []
    sc = _INCH if st.inches else 1.0
    if st.inches:
        out.append("G20")
    if st.plane != 17:
        out.append(f"G{st.plane}")
    if st.relative:
        out.append("G91")
    if not grbl and st.e_mode != "follow":
        out.append("M82" if st.e_mode == "absolute" else "M83")
    if st.inverse_time:
        out.append("G93")
    if st.feed is not None:
        out.append(f"G1 F{_num(st.feed / sc)}")
    else:
        out.append("G1")
    if st.motion == 0:
        out.append("G0")
    return out


def _marlin_preamble(
    st: ModalState, head_z: float | None, lift: float, travel: float, z_feed: float
) -> list[str]:
    z_now = st.z if head_z is None else head_z
    out = ["G21", "G90"]
    out.append(f"G92 Z{_num(z_now)}")
    out.append(f"G0 Z{_num(z_now + lift)} F{_num(z_feed)}")
    out.append("G28 X Y")
    if st.tool != 0:
        out.append(f"T{st.tool}")
    if st.bed > 0:
        out.append(f"M140 S{_num(st.bed)}")
    for tool, target in st.hotends:
        out.append(f"M104 T{tool} S{_num(target)}")
    if st.bed > 0:
        out.append(f"M190 S{_num(st.bed)}")
    for tool, target in st.hotends:
        out.append(f"M109 T{tool} S{_num(target)}")
    out.append(f"G92 E{_num(st.e)}")
    for fan, speed in st.fans:
        out.append(f"M106 P{fan} S{speed}" if fan else f"M106 S{speed}")
    gx, gy, _ = st.g92
    out.append(f"G0 X{_num(st.x + gx)} Y{_num(st.y + gy)} F{_num(travel)}")
    if gx or gy:
        out.append(f"G92 X{_num(st.x)} Y{_num(st.y)}")
    out.append(f"G0 Z{_num(st.z)} F{_num(z_feed)}")
    return out + _final_modes(st, grbl=False)


def _grbl_preamble(
    st: ModalState, travel: float, z_feed: float, spin_up: float, clearance: float
) -> list[str]:
    gx, gy, gz = st.g92
    safe = max(st.max_z, st.z + clearance)
    out = ["G21", "G90", "G94", "G17", f"G{st.work_offset}", "G92.1"]
    out.append(f"G0 Z{_num(safe + gz)}")
    for c in st.coolant:
        out.append(f"M{c}")
    if st.spindle != "off":
        out.append(f"{'M3' if st.spindle == 'cw' else 'M4'} S{_num(st.spindle_speed)}")
        if spin_up > 0:
            out.append(f"G4 P{_num(spin_up)}")
    else:
        out.append(f"M5 S{_num(st.spindle_speed)}")
    out.append(f"G0 X{_num(st.x + gx)} Y{_num(st.y + gy)}")
    out.append(f"G1 Z{_num(st.z + gz)} F{_num(z_feed)}")
    if gx or gy or gz:
        out.append(f"G92 X{_num(st.x)} Y{_num(st.y)} Z{_num(st.z)}")
    return out + _final_modes(st, grbl=True)
