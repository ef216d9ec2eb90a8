"""GRBL 1.1's G-code rules as the simulated controller applies them (pure).

Split out of :mod:`gateway.machine.sim.grbl`: the modal groups and value
letters of ``gcode.c``, ``read_float`` of ``nuts_bolts.c``, the line
pre-parser of ``protocol.c`` and the arc checks of ``gcode.c``.
"""

from __future__ import annotations

import math

__all__ = [
    "AXES",
    "G_GROUPS",
    "M_GROUPS",
    "VALUE_LETTERS",
    "arc_length",
    "preparse",
    "read_number",
]

# (number, mantissa) -> modal group, as gcode.c sorts G words.
G_GROUPS: dict[tuple[int, int], int] = {
    (4, 0): 0, (10, 0): 0, (28, 0): 0, (30, 0): 0, (28, 10): 0, (30, 10): 0, (53, 0): 0,
    (92, 0): 0, (92, 10): 0, (0, 0): 1, (1, 0): 1, (2, 0): 1, (3, 0): 1, (80, 0): 1,
    (17, 0): 2, (18, 0): 2, (19, 0): 2, (90, 0): 3, (91, 0): 3, (91, 10): 4, (93, 0): 5,
    (94, 0): 5, (20, 0): 6, (21, 0): 6, (40, 0): 7, (49, 0): 8, (61, 0): 13,
    **{(n, 0): 12 for n in range(54, 60)},
}  # fmt: skip
M_GROUPS = {0: 4, 1: 4, 2: 4, 30: 4, 3: 7, 4: 7, 5: 7, 8: 8, 9: 8}
VALUE_LETTERS = frozenset("FIJKLNPRSTXYZ")
AXES = "XYZ"
_PLANES = {17: (0, 1, 2), 18: (2, 0, 1), 19: (1, 2, 0)}


def read_number(line: str, i: int) -> tuple[float, int] | None:
    """GRBL's read_float: sign, digits and one '.', no exponent (nuts_bolts.c)."""
    j, n, digits, dot = i, len(line), 0, False
    if j < n and line[j] in "+-":
        j += 1
    while j < n:
        c = line[j]
        if c.isdigit():
            digits += 1
        elif c == "." and not dot:
            dot = True
        else:
            break
        j += 1
    return (float(line[i:j]), j) if digits else None


def preparse(raw: bytes, limit: int) -> tuple[str, bool]:
    """protocol.c: drop blanks, '/' and comments, upper-case; True if the line overflowed."""
    out: list[str] = []
    comment = ""
    for c in raw:
        if comment:
            if c == 0x29 and comment == "(":
                comment = ""
        elif c <= 0x20 or c == 0x2F:
            continue
        elif c in (0x28, 0x3B):
            comment = chr(c)
        elif len(out) >= limit - 1:
            return "", True
        else:
            out.append(chr(c).upper() if 0x61 <= c <= 0x7A else chr(c))
    return "".join(out), False


def arc_length(
    start: tuple[float, ...],
    end: tuple[float, ...],
    values: dict[str, float],
    scale: float,
    plane: int,
    motion: int,
) -> float | int:
    """Length of a G2/G3 arc, or GRBL's error code for an impossible one (gcode.c)."""
    a0, a1, linear = _PLANES[plane]
    if AXES[a0] not in values and AXES[a1] not in values:
        return 26
    dx, dy = end[a0] - start[a0], end[a1] - start[a1]
    height = end[linear] - start[linear]
    if "R" in values:
        r = abs(values["R"] * scale)
        chord = math.hypot(dx, dy)
        if chord == 0 or chord > 2 * r + 1e-6:
            return 33
        angle = 2 * math.asin(min(1.0, chord / (2 * r)))
        return math.hypot((2 * math.pi - angle if values["R"] < 0 else angle) * r, height)
    names = ("IJK"[a0], "IJK"[a1])
    if names[0] not in values and names[1] not in values:
        return 35
    ci, cj = values.get(names[0], 0.0) * scale, values.get(names[1], 0.0) * scale
    r0, r1 = math.hypot(ci, cj), math.hypot(dx - ci, dy - cj)
    if abs(r0 - r1) > 0.005 and (abs(r0 - r1) > 0.5 or abs(r0 - r1) > 0.001 * r0):
        return 33
    sweep = math.atan2(dy - cj, dx - ci) - math.atan2(-cj, -ci)
    if motion == 2 and sweep >= 0:
        sweep -= 2 * math.pi
    elif motion == 3 and sweep <= 0:
        sweep += 2 * math.pi
    return math.hypot(abs(sweep) * r0, height)
