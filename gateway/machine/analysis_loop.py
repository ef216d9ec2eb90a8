"""The analysis' hot loop: plain ``G0``/``G1`` lines interpreted in one place.

Split from :mod:`gateway.machine.analysis` (which it serves) to keep both
readable.  It reads and writes the interpreter's state directly, keeping it in
local variables while it runs, and hands every other line to the
interpreter's general path.  The property test
``test_fast_loop_agrees_with_the_line_by_line_path`` holds the two to the same
results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gateway.machine.planner import PLANNER_BLOCKS

if TYPE_CHECKING:
    from gateway.machine.analysis import _Machine as Interpreter

__all__ = ["HUGE", "MIN_FEED", "run_lines"]

HUGE = 1e9  # mm; anything longer is a broken number, not a move
MIN_FEED = 0.06  # mm/min (1 µm/s): a slower F is taken as this


def run_lines(m: Interpreter, lines: Iterable[str]) -> tuple[int, int]:
    """Interpret raw lines; return (understood, skipped).

    The bulk of any file, a ``G0``/``G1`` with X/Y/Z/E/F words (and a
    comment), is interpreted here in one loop with the state in local
    variables and the planner inlined: the same arithmetic as
    :meth:`feed_line`, :meth:`_linear` and :meth:`~gateway.machine.planner.Planner.add`, without
    their calls.  Every other line, and any line this loop is unsure of,
    goes through :meth:`feed_one` with the state written back first and
    read again after.
    """
    understood = skipped = 0
    grbl = m.grbl
    planner = m.planner
    blocks = planner.blocks
    append = blocks.append
    popleft = blocks.popleft
    two_accel = planner.two_accel
    accel = planner.accel
    jd_accel = planner.jd_accel
    max_feed = m.max_feed
    sqrt = math.sqrt
    huge = HUGE
    ext = m.ext
    work = m.work_ext
    layers_add = m.layers.add
    include = m._include
    # State kept in locals; "sync out" before the general path, "sync in" after.
    sc, relative, e_relative = m.scale, m.relative, m.e_relative
    feed, feed_sq = m.feed, m.feed_sq
    x, y, z, e_pos = m.x, m.y, m.z, m.e
    moves, travel_mm, work_mm, e_total = m.moves, m.travel_mm, m.work_mm, m.e_total
    feed_min, feed_max = m.feed_min, m.feed_max
    work_here, layer_z = m.work_here, m.layer_z
    motion_mode = m.motion_mode
    prev, prev_nominal_sq, seconds = planner.prev, planner.prev_nominal_sq, planner.seconds
    for raw in lines:
        head = raw[:3]
        if head == "G1 " or (head == "G0 " and not grbl):
            s = raw.strip(" \t\r\n")
            if s.isprintable():
                cut = s.find(";")
                if cut >= 0:
                    s = s[:cut].rstrip(" \t")
                if s.isascii() and "e" not in s and "_" not in s:
                    wx = wy = wz = we = wf = None
                    try:
                        for word in s[3:].split(" "):
                            k = word[0]
                            if k == "X":
                                wx = float(word[1:])
                            elif k == "Y":
                                wy = float(word[1:])
                            elif k == "E":
                                we = float(word[1:])
                            elif k == "F":
                                wf = float(word[1:])
                            elif k == "Z":
                                wz = float(word[1:])
                            else:
                                raise ValueError(k)
                        # "X1E5" is X1 and E5 in G-code; float() takes it whole.
                        ok = (s.count("E") == 1) if we is not None else ("E" not in s)
                    except (ValueError, IndexError):
                        ok = False
                    if ok:
                        if wf is not None:
                            wf *= sc
                            if 0.0 < wf < huge:
                                if wf < MIN_FEED:
                                    wf = MIN_FEED
                                elif max_feed is not None and wf > max_feed:
                                    wf = max_feed
                                feed = wf
                                feed_sq = (wf / 60.0) ** 2
                        motion_mode = 1 if head == "G1 " else 0
                        if relative:
                            nx = x if wx is None else x + wx * sc
                            ny = y if wy is None else y + wy * sc
                            nz = z if wz is None else z + wz * sc
                        else:
                            nx = x if wx is None else wx * sc
                            ny = y if wy is None else wy * sc
                            nz = z if wz is None else wz * sc
                        de = 0.0
                        if we is not None and not grbl:
                            de = we * sc if e_relative else we * sc - e_pos
                        dx = nx - x
                        dy = ny - y
                        dz = nz - z
                        length = sqrt(dx * dx + dy * dy + dz * dz)
                        if not (length < huge and -huge < de < huge):
                            skipped += 1
                            continue
                        understood += 1
                        if de != 0.0:
                            e_pos += de
                            e_total += de
                        if length == 0.0:
                            if de != 0.0:
                                moves += 1
                                planner.prev = prev
                                planner.prev_nominal_sq = prev_nominal_sq
                                planner.seconds = seconds
                                planner.add_alone(abs(de), feed_sq)
                                prev = planner.prev
                                seconds = planner.seconds
                            continue
                        moves += 1
                        x0, y0, z0 = x, y, z
                        x, y, z = nx, ny, nz
                        if feed < feed_min:
                            feed_min = feed
                        if feed > feed_max:
                            feed_max = feed
                        # -- Planner.add, inlined (entry and exit directions equal)
                        ux, uy, uz = dx / length, dy / length, dz / length
                        if prev is None:
                            max_entry_sq = 0.0
                        else:
                            cos_theta = -(prev[0] * ux + prev[1] * uy + prev[2] * uz)
                            if cos_theta > 0.999999:
                                max_entry_sq = 0.0
                            else:
                                if cos_theta < -0.999999:
                                    cos_theta = -0.999999
                                sin_half = sqrt(0.5 * (1.0 - cos_theta))
                                max_entry_sq = jd_accel * sin_half / (1.0 - sin_half)
                            if max_entry_sq > feed_sq:
                                max_entry_sq = feed_sq
                            if max_entry_sq > prev_nominal_sq:
                                max_entry_sq = prev_nominal_sq
                        brake_sq = two_accel * length
                        append(
                            [
                                length,
                                feed_sq,
                                max_entry_sq,
                                brake_sq if brake_sq < max_entry_sq else max_entry_sq,
                            ]
                        )
                        prev = (ux, uy, uz)
                        prev_nominal_sq = feed_sq
                        i = len(blocks) - 2
                        while i >= 0:
                            block = blocks[i]
                            if block[3] >= block[2]:
                                break
                            entry_sq = blocks[i + 1][3] + two_accel * block[0]
                            if entry_sq > block[2]:
                                entry_sq = block[2]
                            if entry_sq <= block[3]:
                                break
                            block[3] = entry_sq
                            i -= 1
                        if len(blocks) > PLANNER_BLOCKS:
                            # -- Planner._execute_oldest, inlined
                            b_len, b_nom, _, b_entry = popleft()
                            following = blocks[0]
                            exit_sq = b_entry + two_accel * b_len
                            if following[3] < exit_sq:
                                exit_sq = following[3]
                            following[2] = following[3] = exit_sq
                            v_in = sqrt(b_entry)
                            v_out = sqrt(exit_sq)
                            accel_mm = (b_nom - b_entry) / two_accel
                            decel_mm = (b_nom - exit_sq) / two_accel
                            if accel_mm + decel_mm <= b_len:
                                v_nom = sqrt(b_nom)
                                seconds += (2.0 * v_nom - v_in - v_out) / accel + (
                                    b_len - accel_mm - decel_mm
                                ) / v_nom
                            else:
                                v_peak = sqrt(0.5 * (two_accel * b_len + b_entry + exit_sq))
                                seconds += (2.0 * v_peak - v_in - v_out) / accel
                        # -- extents, work and travel, as in _linear
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
                        if (
                            (m.spindle_on and m.spindle_power > 0.0 and head == "G1 ")
                            if grbl
                            else de > 0.0
                        ):
                            work_mm += length
                            if not work_here:
                                include(work, (x0, y0, z0))
                                work_here = True
                            if nx < work[0]:
                                work[0] = nx
                            if nx > work[3]:
                                work[3] = nx
                            if ny < work[1]:
                                work[1] = ny
                            if ny > work[4]:
                                work[4] = ny
                            if dz != 0.0:
                                include(work, (nx, ny, nz))
                            elif nz != layer_z:
                                layer_z = nz
                                layers_add(round(nz * 1000.0))
                        else:
                            travel_mm += length
                            work_here = False
                        continue
        # -- the general path, with the state written back and read again
        m.feed, m.feed_sq = feed, feed_sq
        m.x, m.y, m.z, m.e = x, y, z, e_pos
        m.moves, m.travel_mm, m.work_mm = moves, travel_mm, work_mm
        m.e_total, m.feed_min, m.feed_max = e_total, feed_min, feed_max
        m.work_here, m.layer_z = work_here, layer_z
        m.motion_mode = motion_mode
        planner.prev, planner.prev_nominal_sq = prev, prev_nominal_sq
        planner.seconds = seconds
        result = m.feed_one(raw)
        if result > 0:
            understood += 1
        elif result < 0:
            skipped += 1
        sc, relative, e_relative = m.scale, m.relative, m.e_relative
        feed, feed_sq = m.feed, m.feed_sq
        x, y, z, e_pos = m.x, m.y, m.z, m.e
        moves, travel_mm, work_mm = m.moves, m.travel_mm, m.work_mm
        e_total, feed_min, feed_max = m.e_total, m.feed_min, m.feed_max
        work_here, layer_z = m.work_here, m.layer_z
        motion_mode = m.motion_mode
        prev, prev_nominal_sq = planner.prev, planner.prev_nominal_sq
        seconds = planner.seconds
    m.motion_mode = motion_mode
    m.feed, m.feed_sq = feed, feed_sq
    m.x, m.y, m.z, m.e = x, y, z, e_pos
    m.moves, m.travel_mm, m.work_mm = moves, travel_mm, work_mm
    m.e_total, m.feed_min, m.feed_max = e_total, feed_min, feed_max
    m.work_here, m.layer_z = work_here, layer_z
    planner.prev, planner.prev_nominal_sq = prev, prev_nominal_sq
    planner.seconds = seconds
    return understood, skipped
