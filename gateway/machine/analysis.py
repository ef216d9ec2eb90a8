"""Streaming analysis of a G-code file: distances, extents, filament, duration.

Pure: lines in, an :class:`Analysis` out, constant memory (apart from the set
of layer heights), no line ever rejected (a line that
:func:`~gateway.machine.gcode.clean_line` refuses, or whose numbers are not
numbers, is counted in ``skipped_lines``).

Interpretation, per firmware:

* Positions are logical (after ``G92``), in mm; ``G20`` makes coordinates,
  ``E`` and ``F`` inches.  ``G90``/``G91`` switch absolute/relative.  Arcs
  ``G2``/``G3`` take ``I``/``J``/``K`` (offsets from the start) or ``R``, in
  the ``G17``/``G18``/``G19`` plane, and are measured along the arc.
* Marlin extrusion: ``M82``/``M83`` set absolute/relative ``E``; ``G91`` makes
  ``E`` relative too and ``G90`` cancels an earlier ``M83`` (Marlin 2
  ``set_relative_mode``); ``G92 E`` resets the position.  Filament used is the
  net extrusion (pushes minus retractions).  An extruding move is one with XYZ
  motion and a positive ``E``.
* GRBL cutting: a ``G1``/``G2``/``G3`` move while the spindle or laser is on
  (``M3``/``M4``) with ``S`` > 0.  ``G0`` never cuts.
* Feed ``F`` is modal, in mm/min.  Marlin treats ``G0`` like ``G1`` (Marlin
  G-code reference: "G0 and G1 are synonymous"), so a ``G0`` moves at the
  modal feed; GRBL's ``G0`` moves at the rapid rate.  The rapid rate, and the
  feed before any ``F``, is ``max_feed`` or 3000 mm/min; ``max_feed`` also
  caps every feed.
* ``G28`` (home) is a rough guess: a move of the named axes (all if none) to 0
  at the rapid rate, starting and ending at rest.  GRBL's ``$`` commands
  (homing, jogging) are ignored.
* ``G4`` dwells ``P`` ms or ``S`` s on Marlin, ``P`` s on GRBL.
* Layers are the distinct Z heights (to 1 µm) of extruding/cutting moves that
  stay at one height, so a helical ramp or a spiral-vase wall adds none.

Duration uses the motion planner model Marlin and GRBL share: each move is a
trapezoid (accelerate at ``acceleration``, cruise at the feed, decelerate);
the speed through the corner between two moves is limited by junction
deviation (``v² = a·δ·sin(θ/2) / (1 - sin(θ/2))``, δ = 0.013 mm for Marlin,
0.010 mm for GRBL, θ the angle of the corner: 180° going straight on, 0° for
a reversal), and the planner looks
ahead :data:`PLANNER_BLOCKS` moves, the last of which must be able to stop.
So tiny segments at sharp corners cost time, and a curve cut into many short
segments is not estimated as instant.  Extruder-only moves (retractions),
``G4``, ``G28``, temperature waits and pauses stop the motion; the time spent
heating is not known and not counted.  Per-axis speed and acceleration
limits are not modelled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.machine.analysis_loop import HUGE as _HUGE
from gateway.machine.analysis_loop import MIN_FEED as _MIN_FEED
from gateway.machine.analysis_loop import run_blocks
from gateway.machine.analysis_read import file_blocks, line_blocks
from gateway.machine.gcode import MAX_SOURCE_LINE, Firmware, GcodeError, clean_line
from gateway.machine.planner import PLANNER_BLOCKS, Planner

__all__ = ["PLANNER_BLOCKS", "Analysis", "Extents", "analyze_file", "analyze_lines"]

DEFAULT_RAPID = 3000.0  # mm/min
_JUNCTION_DEVIATION = {"marlin": 0.013, "grbl": 0.010}  # mm; Marlin and GRBL 1.1 defaults
_INCH = 25.4
_TAU = 2.0 * math.pi

_MOTION = {"G0": 0, "G00": 0, "G1": 1, "G01": 1, "G2": 2, "G02": 2, "G3": 3, "G03": 3}
_WORD = re.compile(r"([A-Z])[ \t]*([-+]?(?:\d+\.?\d*|\.\d+))?")
# Marlin commands whose argument is free text, never axis words.
_TEXT_COMMANDS = frozenset({0, 1, 16, 23, 28, 30, 32, 33, 117, 118, 928})
# Marlin commands that wait for the planner to empty.
_MARLIN_WAITS = frozenset({0, 1, 109, 190, 191, 226, 400, 600, 116})
# G-codes that only set a mode: axis words beside them are a move in the
# current motion mode ("G90 X10").  Axis words beside any other G- or M-code
# are that command's arguments (G92 X0, G28 X, M201 X500).
_MODAL_ONLY = frozenset(
    {17.0, 18.0, 19.0, 20.0, 21.0, 40.0, 49.0, 53.0, 54.0, 55.0, 56.0, 57.0, 58.0, 59.0}
    | {61.0, 64.0, 80.0, 90.0, 91.0, 90.1, 91.1, 93.0, 94.0}
)
_PLANES = {17.0: (0, 1, 2, "I", "J"), 18.0: (2, 0, 1, "K", "I"), 19.0: (1, 2, 0, "J", "K")}
_AXES = ("X", "Y", "Z")
_QUADRANTS = (
    (0.0, 1.0, 0.0),
    (0.5 * math.pi, 0.0, 1.0),
    (math.pi, -1.0, 0.0),
    (1.5 * math.pi, 0.0, -1.0),
)


@dataclass(frozen=True, slots=True)
class Extents:
    """An axis-aligned box, in mm."""

    min_x: float
    min_y: float
    min_z: float
    max_x: float
    max_y: float
    max_z: float

    def to_dict(self) -> dict[str, dict[str, float]]:
        low = (self.min_x, self.min_y, self.min_z)
        high = (self.max_x, self.max_y, self.max_z)
        return {
            "min": {axis: round(v, 4) for axis, v in zip("xyz", low, strict=True)},
            "max": {axis: round(v, 4) for axis, v in zip("xyz", high, strict=True)},
        }


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a G-code file does, as far as can be told without running it."""

    lines: int  # non-blank commands understood
    skipped_lines: int  # lines that could not be read as G-code
    moves: int  # G0/G1/G2/G3/G28 with motion (XYZ or E)
    extents: Extents | None  # every position moved to
    print_extents: Extents | None  # positions where material is added or cut
    travel_mm: float  # XYZ distance without extruding or cutting
    work_mm: float  # XYZ distance extruding or cutting
    filament_mm: float  # net extrusion (Marlin)
    filament_g: float  # filament_mm as weight, from the diameter and density given
    layers: int  # distinct heights of planar extruding/cutting moves
    estimated_seconds: float  # motion and dwells; heating waits not included
    feed_rates: tuple[float, float] | None  # (min, max) mm/min of XYZ moves

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (numbers rounded for display, not for arithmetic)."""
        return {
            "lines": self.lines,
            "skipped_lines": self.skipped_lines,
            "moves": self.moves,
            "extents": None if self.extents is None else self.extents.to_dict(),
            "print_extents": None if self.print_extents is None else self.print_extents.to_dict(),
            "travel_mm": round(self.travel_mm, 3),
            "work_mm": round(self.work_mm, 3),
            "filament_mm": round(self.filament_mm, 3),
            "filament_g": round(self.filament_g, 3),
            "layers": self.layers,
            "estimated_seconds": round(self.estimated_seconds, 3),
            "feed_rates": None
            if self.feed_rates is None
            else {"min": round(self.feed_rates[0], 3), "max": round(self.feed_rates[1], 3)},
        }


def analyze_lines(
    lines: Iterable[str],
    *,
    firmware: Firmware = "marlin",
    acceleration: float = 1000.0,
    max_feed: float | None = None,
    filament_diameter: float = 1.75,
    filament_density: float = 1.24,
) -> Analysis:
    """Analyse G-code lines (raw or cleaned) for ``firmware``.

    ``acceleration`` is in mm/s², ``max_feed`` in mm/min,
    ``filament_diameter`` in mm, ``filament_density`` in g/cm³ (1.24: PLA).
    """
    return _analyze(
        line_blocks(lines),
        firmware,
        acceleration,
        max_feed,
        filament_diameter,
        filament_density,
    )


def analyze_file(
    path: Path,
    *,
    firmware: Firmware = "marlin",
    acceleration: float = 1000.0,
    max_feed: float | None = None,
    filament_diameter: float = 1.75,
    filament_density: float = 1.24,
) -> Analysis:
    """:func:`analyze_lines` over a file, read in blocks (any size).

    Lines end at ``\n`` (so LF and CRLF); a UTF-8 byte-order mark is skipped.
    Bytes are decoded as Latin-1, one character each, so a stray non-ASCII
    byte makes its line skipped, never the file unreadable.  A line longer
    than :data:`~gateway.machine.gcode.MAX_SOURCE_LINE`, which no G-code file
    has, is read in pieces of that size, to keep memory bounded.
    """
    with path.open("rb") as fh:
        return _analyze(
            file_blocks(fh, MAX_SOURCE_LINE),
            firmware,
            acceleration,
            max_feed,
            filament_diameter,
            filament_density,
        )


def _analyze(
    blocks: Iterable[bytes | str],
    firmware: Firmware,
    acceleration: float,
    max_feed: float | None,
    filament_diameter: float,
    filament_density: float,
) -> Analysis:
    if firmware not in _JUNCTION_DEVIATION:
        raise ValueError(f"unknown firmware {firmware!r}; use 'marlin' or 'grbl'")
    if not acceleration > 0:
        raise ValueError(f"acceleration must be positive, not {acceleration!r}")
    if max_feed is not None and not max_feed > 0:
        raise ValueError(f"max_feed must be positive, not {max_feed!r}")
    machine = _Machine(firmware, acceleration, max_feed)
    understood, skipped = run_blocks(machine, blocks)
    area_mm2 = math.pi * (filament_diameter / 2.0) ** 2
    return machine.result(understood, skipped, area_mm2 * filament_density / 1000.0)


class _Machine:
    """Interprets cleaned lines and accumulates what :class:`Analysis` reports."""

    __slots__ = (
        "e",
        "e_mode",
        "e_relative",
        "e_total",
        "ext",
        "feed",
        "feed_max",
        "feed_min",
        "feed_sq",
        "grbl",
        "layer_z",
        "layers",
        "max_feed",
        "motion_mode",
        "moves",
        "plane",
        "planner",
        "rapid",
        "rapid_sq",
        "relative",
        "scale",
        "spindle_on",
        "spindle_power",
        "travel_mm",
        "work_ext",
        "work_here",
        "work_mm",
        "x",
        "y",
        "z",
    )

    def __init__(self, firmware: str, acceleration: float, max_feed: float | None) -> None:
        self.grbl = firmware == "grbl"
        self.planner = Planner(acceleration, _JUNCTION_DEVIATION[firmware])
        self.max_feed = max_feed
        self.rapid = max_feed if max_feed is not None else DEFAULT_RAPID  # mm/min
        self.rapid_sq = (self.rapid / 60.0) ** 2  # (mm/s)²
        self.feed = self.rapid  # modal F, mm/min, capped at max_feed
        self.feed_sq = self.rapid_sq
        self.x = self.y = self.z = self.e = 0.0
        self.scale = 1.0  # mm per unit: 25.4 after G20
        self.relative = False  # G91
        self.e_mode = ""  # "" follows G90/G91; "abs" after M82, "rel" after M83
        self.e_relative = False
        self.plane = _PLANES[17.0]
        self.motion_mode = 0  # last G0-G3, repeated by bare axis words
        self.spindle_on = False
        self.spindle_power = 0.0
        self.moves = 0
        self.travel_mm = 0.0
        self.work_mm = 0.0
        self.e_total = 0.0
        self.feed_min = math.inf
        self.feed_max = -math.inf
        # [min_x, min_y, min_z, max_x, max_y, max_z]
        self.ext = [math.inf, math.inf, math.inf, -math.inf, -math.inf, -math.inf]
        self.work_ext = [math.inf, math.inf, math.inf, -math.inf, -math.inf, -math.inf]
        # True while the current position is already inside work_ext.
        self.work_here = False
        self.layers: set[int] = set()
        self.layer_z = math.nan  # height of the last extruding move, to skip re-adding it

    def feed_one(self, raw: str) -> int:
        """Clean and interpret one raw line: 1 understood, 0 blank, -1 skipped."""
        try:
            s = clean_line(raw, firmware="grbl" if self.grbl else "marlin")
        except GcodeError:
            return -1
        if not s:
            return 0
        return 1 if self.feed_line(s) else -1

    def feed_line(self, s: str) -> bool:
        """Interpret one cleaned, non-blank line; False if it made no sense."""
        words = s.split(" ")
        motion = _MOTION.get(words[0])
        if motion is not None and motion < 2 and "e" not in s and "_" not in s:
            # Fast path for the bulk of any file: "G1 X.. Y.. E.. F..".  G-code
            # numbers have no exponent ("X1E5" is X1 and E5, as in Marlin's
            # parser.h), which float() would accept: such lines, and "1_0",
            # go the general way.
            x = y = z = e = f = p = None
            try:
                for word in words[1:]:
                    k = word[0]
                    if k == "X":
                        x = float(word[1:])
                    elif k == "Y":
                        y = float(word[1:])
                    elif k == "E":
                        e = float(word[1:])
                    elif k == "Z":
                        z = float(word[1:])
                    elif k == "F":
                        f = float(word[1:])
                    elif k == "S":
                        p = float(word[1:])
                    else:
                        raise ValueError(k)
            except ValueError:
                return self._general(s)
            if ("E" in s) if e is None else (s.count("E") > 1):
                return self._general(s)
            if f is not None:
                self._set_feed(f)
            if p is not None and self.grbl:
                self.spindle_power = p
            self.motion_mode = motion
            return self._linear(motion == 0, x, y, z, e)
        return self._general(s)

    def result(self, lines: int, skipped: int, grams_per_mm: float) -> Analysis:
        self.planner.stop()
        filament = max(0.0, self.e_total)
        return Analysis(
            lines=lines,
            skipped_lines=skipped,
            moves=self.moves,
            extents=_extents(self.ext),
            print_extents=_extents(self.work_ext),
            travel_mm=self.travel_mm,
            work_mm=self.work_mm,
            filament_mm=filament,
            filament_g=filament * grams_per_mm,
            layers=len(self.layers),
            estimated_seconds=self.planner.seconds,
            feed_rates=None if self.feed_min > self.feed_max else (self.feed_min, self.feed_max),
        )

    def _set_feed(self, f: float) -> None:
        f *= self.scale
        if 0.0 < f < _HUGE:
            if f < _MIN_FEED:
                f = _MIN_FEED
            elif self.max_feed is not None and f > self.max_feed:
                f = self.max_feed
            self.feed = f
            self.feed_sq = (f / 60.0) ** 2

    def _set_modes(self, *, relative: bool | None = None, e_mode: str | None = None) -> None:
        if relative is not None:
            self.relative = relative
            self.e_mode = ""  # G90 and G91 also cancel M82/M83 (Marlin 2)
        if e_mode is not None:
            self.e_mode = e_mode
        self.e_relative = self.e_mode == "rel" or (not self.e_mode and self.relative)

    def _linear(
        self,
        rapid: bool,
        x: float | None,
        y: float | None,
        z: float | None,
        e: float | None,
    ) -> bool:
        sc = self.scale
        x0, y0, z0 = self.x, self.y, self.z
        if self.relative:
            nx = x0 if x is None else x0 + x * sc
            ny = y0 if y is None else y0 + y * sc
            nz = z0 if z is None else z0 + z * sc
        else:
            nx = x0 if x is None else x * sc
            ny = y0 if y is None else y * sc
            nz = z0 if z is None else z * sc
        de = 0.0
        if e is not None and not self.grbl:
            de = e * sc if self.e_relative else e * sc - self.e
        dx = nx - x0
        dy = ny - y0
        dz = nz - z0
        length = math.sqrt(dx * dx + dy * dy + dz * dz)
        if not (length < _HUGE and -_HUGE < de < _HUGE):
            return False
        if rapid and self.grbl:
            feed, feed_sq = self.rapid, self.rapid_sq
        else:
            feed, feed_sq = self.feed, self.feed_sq
        if de != 0.0:
            self.e += de
            self.e_total += de
        if length == 0.0:
            if de != 0.0:
                self.moves += 1
                self.planner.add_alone(abs(de), feed_sq)
            return True
        self.moves += 1
        self.x = nx
        self.y = ny
        self.z = nz
        if feed < self.feed_min:
            self.feed_min = feed
        if feed > self.feed_max:
            self.feed_max = feed
        direction = (dx / length, dy / length, dz / length)
        self.planner.add(length, feed_sq, direction, direction)
        ext = self.ext
        if nx < ext[0]:
            ext[0] = nx
        if nx > ext[3]:
            ext[3] = nx
        if ny < ext[1]:
            ext[1] = ny
        if ny > ext[4]:
            ext[4] = ny
        if nz < ext[2]:
            ext[2] = nz
        if nz > ext[5]:
            ext[5] = nz
        if (self.spindle_on and self.spindle_power > 0.0 and not rapid) if self.grbl else de > 0.0:
            self.work_mm += length
            work = self.work_ext
            if not self.work_here:
                self._include(work, (x0, y0, z0))
                self.work_here = True
            if nx < work[0]:
                work[0] = nx
            if nx > work[3]:
                work[3] = nx
            if ny < work[1]:
                work[1] = ny
            if ny > work[4]:
                work[4] = ny
            if dz != 0.0:
                self._include(work, (nx, ny, nz))
            elif nz != self.layer_z:
                self.layer_z = nz
                self.layers.add(round(nz * 1000.0))
        else:
            self.travel_mm += length
            self.work_here = False
        return True

    def _general(self, s: str) -> bool:
        """Any line the fast path does not take: several commands, modes,
        arcs, dwells, lower case, words without spaces."""
        s = s.upper()
        if s[0] == "$":
            return True
        g_codes: list[float] = []
        m_codes: list[int] = []
        params: dict[str, float] = {}
        bare: set[str] = set()
        for letter, number in _WORD.findall(s):
            if not number:
                bare.add(letter)
                continue
            value = float(number)  # the pattern only matches numbers
            if not -_HUGE < value < _HUGE:
                return False
            if letter == "G":
                g_codes.append(round(value, 1))
            elif letter == "M":
                if not m_codes and not g_codes and not self.grbl and int(value) in _TEXT_COMMANDS:
                    return True
                m_codes.append(int(value))
            else:
                params[letter] = value
        if not g_codes and not m_codes and not params:
            return False
        self._modes(g_codes, m_codes, params)
        return self._actions(g_codes, bool(m_codes), params, bare)

    def _modes(self, g_codes: list[float], m_codes: list[int], params: dict[str, float]) -> None:
        for g in g_codes:
            if g == 20.0:
                self.scale = _INCH
            elif g == 21.0:
                self.scale = 1.0
            elif g == 90.0:
                self._set_modes(relative=False)
            elif g == 91.0:
                self._set_modes(relative=True)
            elif g in _PLANES:
                self.plane = _PLANES[g]
        if "F" in params:
            self._set_feed(params["F"])
        for m in m_codes:
            if self.grbl:
                if m in (3, 4):
                    self.planner.stop()
                    self.spindle_on = True
                elif m in (0, 1):  # program pause: the spindle keeps its state
                    self.planner.stop()
                elif m in (2, 5, 30):  # spindle off, or program end
                    self.planner.stop()
                    self.spindle_on = False
            elif m == 82:
                self._set_modes(e_mode="abs")
            elif m == 83:
                self._set_modes(e_mode="rel")
            elif m in _MARLIN_WAITS:
                self.planner.stop()
        if self.grbl and "S" in params:
            self.spindle_power = params["S"]

    def _actions(
        self, g_codes: list[float], has_m: bool, params: dict[str, float], bare: set[str]
    ) -> bool:
        motion: int | None = None
        plain = not has_m
        for g in g_codes:
            if g == 4.0:
                self._dwell(params)
            elif g == 28.0:
                self._home(params, bare)
            elif g == 92.0:
                self._set_position(params)
            if g in (0.0, 1.0, 2.0, 3.0):
                motion = int(g)
            elif g not in _MODAL_ONLY:
                plain = False
        if motion is None:
            if not plain or not any(a in params for a in ("X", "Y", "Z", "E")):
                return True
            motion = self.motion_mode
        else:
            self.motion_mode = motion
        if motion >= 2:
            return self._arc(motion == 2, params)
        return self._linear(
            motion == 0, params.get("X"), params.get("Y"), params.get("Z"), params.get("E")
        )

    def _dwell(self, params: dict[str, float]) -> None:
        self.planner.stop()
        if self.grbl:
            seconds = params.get("P", 0.0)
        elif "S" in params:
            seconds = params["S"]
        else:
            seconds = params.get("P", 0.0) / 1000.0
        if 0.0 < seconds < _HUGE:
            self.planner.seconds += seconds

    def _home(self, params: dict[str, float], bare: set[str]) -> None:
        named = [a for a in _AXES if a in params or a in bare]
        targets = named or list(_AXES)
        x = 0.0 if "X" in targets else self.x
        y = 0.0 if "Y" in targets else self.y
        z = 0.0 if "Z" in targets else self.z
        length = math.sqrt((x - self.x) ** 2 + (y - self.y) ** 2 + (z - self.z) ** 2)
        self.planner.stop()
        self._include(self.ext, (x, y, z))
        self.work_here = False
        if length == 0.0:
            return
        self.moves += 1
        self.travel_mm += length
        self.x, self.y, self.z = x, y, z
        nominal = self.rapid / 60.0
        self.planner.add_alone(length, nominal * nominal)

    def _set_position(self, params: dict[str, float]) -> None:
        sc = self.scale
        self.work_here = False
        values = {a: params[a] * sc for a in ("X", "Y", "Z", "E") if a in params}
        if all(-_HUGE < v < _HUGE for v in values.values()):
            self.x = values.get("X", self.x)
            self.y = values.get("Y", self.y)
            self.z = values.get("Z", self.z)
            self.e = values.get("E", self.e)

    def _arc(self, clockwise: bool, params: dict[str, float]) -> bool:
        ia, ib, ic, off_a, off_b = self.plane
        sc = self.scale
        start = [self.x, self.y, self.z]
        end = list(start)
        for i, axis in enumerate(_AXES):
            if axis in params:
                end[i] = (start[i] if self.relative else 0.0) + params[axis] * sc
        a0, b0, a1, b1 = start[ia], start[ib], end[ia], end[ib]
        if "R" in params:
            radius = params["R"] * sc
            chord_a, chord_b = a1 - a0, b1 - b0
            chord = math.hypot(chord_a, chord_b)
            if chord == 0.0 or not chord < _HUGE:
                return False
            # Centre from the radius as in Marlin's G2_G3.cpp: a negative R
            # takes the long way round.
            sign = -1.0 if clockwise != (radius < 0) else 1.0
            h2 = (radius - 0.5 * chord) * (radius + 0.5 * chord)
            h = math.sqrt(h2) if h2 > 0 else 0.0
            ca = 0.5 * (a0 + a1) - sign * h * chord_b / chord
            cb = 0.5 * (b0 + b1) + sign * h * chord_a / chord
        else:
            ca = a0 + params.get(off_a, 0.0) * sc
            cb = b0 + params.get(off_b, 0.0) * sc
        ra0, rb0 = a0 - ca, b0 - cb
        ra1, rb1 = a1 - ca, b1 - cb
        radius = math.hypot(ra0, rb0)
        if radius == 0.0 or not radius < _HUGE:
            return False
        sweep = math.atan2(ra0 * rb1 - rb0 * ra1, ra0 * ra1 + rb0 * rb1)
        if sweep < 0.0:
            sweep += _TAU
        if clockwise:
            sweep -= _TAU
        elif sweep < 1e-9 and a0 == a1 and b0 == b1:
            sweep = _TAU
        if abs(sweep) < 1e-9:  # the end is on the start's radius: not an arc
            return False
        turns = params.get("P", 0.0) if not self.grbl else 0.0
        if 0.0 < turns < 1000.0:
            sweep += math.copysign(_TAU * int(turns), sweep)
        de = 0.0
        if "E" in params and not self.grbl:
            e = params["E"] * sc
            de = e if self.e_relative else e - self.e
        dc = end[ic] - start[ic]
        length = math.hypot(radius * sweep, dc)
        if not (length < _HUGE and -_HUGE < de < _HUGE):
            return False
        self.e += de
        self.e_total += de
        self.moves += 1
        self.x, self.y, self.z = end
        feed = self.feed
        self.feed_min = min(self.feed_min, feed)
        self.feed_max = max(self.feed_max, feed)
        # Tangents at both ends, in the plane (the helical part is ignored).
        turn = -1.0 if clockwise else 1.0
        t0 = [0.0, 0.0, 0.0]
        t1 = [0.0, 0.0, 0.0]
        t0[ia], t0[ib] = -turn * rb0 / radius, turn * ra0 / radius
        r1 = math.hypot(ra1, rb1) or radius
        t1[ia], t1[ib] = -turn * rb1 / r1, turn * ra1 / r1
        self.planner.add(length, self.feed_sq, (t0[0], t0[1], t0[2]), (t1[0], t1[1], t1[2]))
        points = [start, end]
        a_start = math.atan2(rb0, ra0)
        for angle, cos_a, sin_a in _QUADRANTS:
            ahead = (angle - a_start) % _TAU if sweep > 0 else (a_start - angle) % _TAU
            if ahead <= abs(sweep):
                point = list(start)
                point[ia] = ca + radius * cos_a
                point[ib] = cb + radius * sin_a
                point[ic] = start[ic] + dc * ahead / abs(sweep)
                points.append(point)
        for point in points[1:]:
            self._include(self.ext, point)
        if (self.spindle_on and self.spindle_power > 0.0) if self.grbl else de > 0.0:
            self.work_mm += length
            for point in points:
                self._include(self.work_ext, point)
            self.work_here = True
            if start[2] == end[2]:
                self.layer_z = end[2]
                self.layers.add(round(end[2] * 1000.0))
        else:
            self.travel_mm += length
            self.work_here = False
        return True

    @staticmethod
    def _include(ext: list[float], point: Sequence[float]) -> None:
        for i in range(3):
            v = point[i]
            if v < ext[i]:
                ext[i] = v
            if v > ext[i + 3]:
                ext[i + 3] = v


def _extents(ext: list[float]) -> Extents | None:
    if ext[0] > ext[3]:
        return None
    return Extents(ext[0], ext[1], ext[2], ext[3], ext[4], ext[5])
