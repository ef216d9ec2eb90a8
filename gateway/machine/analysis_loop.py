"""The analysis' hot loop: plain ``G0``/``G1`` lines interpreted in one place.

Split from :mod:`gateway.machine.analysis` (which it serves) to keep both
readable.  It reads and writes the interpreter's state directly, keeping it in
local variables while it runs, and hands every other line to the
interpreter's general path.  The property tests
``test_fast_loop_agrees_with_the_line_by_line_path`` and
``test_file_loop_agrees_with_the_line_by_line_path`` hold the two to the same
results.

Lines come from :mod:`gateway.machine.analysis_read` with their signature
and digits.  A plain move (``G0``/``G1`` with X, Y, Z, E, F, each once) is
interpreted here with the state in locals and the planner inlined: the same
arithmetic as the interpreter's ``_linear`` and
:meth:`~gateway.machine.planner.Planner.add`, in the same order, so the same
numbers.  Three shortcuts keep to that rule: ``G1 X.. Y.. (E..)`` in absolute
millimetres on Marlin leaves out multiplications by 1.0 and the Z terms (Z
stays: dZ is 0.0); the square roots of speeds already taken are remembered;
a junction straight enough for the feed (:func:`_straight`) is given the
feed, which the formula would give.  Every other line, and a plain one whose
numbers are not numbers, takes the general path as text, so nothing here
decides what a strange line means.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from gateway.machine.analysis_read import (
    BLANK,
    NUMBERS,
    PLAIN,
    SIGNATURES,
    XY,
    XYE,
    Reading,
    lines_of,
    reading_of,
)
from gateway.machine.planner import PLANNER_BLOCKS

if TYPE_CHECKING:
    from gateway.machine.analysis import _Machine as Interpreter

__all__ = ["HUGE", "MIN_FEED", "run_blocks"]

HUGE = 1e9  # mm; anything longer is a broken number, not a move
MIN_FEED = 0.06  # mm/min (1 µm/s): a slower F is taken as this
_E_VALUES = 512  # E numbers remembered (their value)
_REMEMBERED_LINE = 256  # bytes: a longer line's signature is worked out each time


def _straight(nominal_sq: float, jd_accel: float) -> float:
    """A cosine below which a junction's speed limit is above ``nominal_sq``.

    The junction deviation limit ``jd_accel·s/(1-s)``, ``s = √(½(1-cos θ))``
    (cos θ kept above -0.999999), grows as cos θ falls; it reaches
    ``nominal_sq`` at ``s = n/(jd_accel+n)``.  The cosine returned is that
    point less 1e-9, a margin a million times the rounding of the
    computation, so a junction below it is limited by the feed alone; -2.0
    (no cosine) when the limit never reaches the feed.  Never above 0.999999,
    where a reversal stops the motion whatever the feed.
    """
    s = nominal_sq / (jd_accel + nominal_sq)
    cosine = 1.0 - 2.0 * s * s - 1e-9
    if cosine > 0.999999:
        return 0.999999
    return cosine if cosine > -0.999999 + 1e-9 else -2.0


def run_blocks(m: Interpreter, text: Iterable[bytes | str]) -> tuple[int, int]:
    """Interpret blocks of raw lines; return (understood, skipped).

    A ``bytes`` block is whole Latin-1 lines, each ending at ``\n`` (the last
    may lack it); a ``str`` block is one piece of a line, fed to the general
    path as it is.  A plain move is interpreted here in one loop with the
    state in local variables and the planner inlined: the same arithmetic as
    :meth:`feed_line`, :meth:`_linear` and
    :meth:`~gateway.machine.planner.Planner.add`, without their calls.  Every
    other line goes through :meth:`feed_one` with the state written back first
    and read again after.
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
    huge, neg_huge = HUGE, -HUGE
    layers_add = m.layers.add
    readings: dict[bytes, Reading] = {}
    read_as = readings.get
    e_values: dict[bytes, float] = {}  # E digits read, for e_values_places
    e_values_places = 0.0
    e_seen = e_values.get
    wx: float | None
    wy: float | None
    wz: float | None
    we: float | None
    wf: float | None
    numbers_table = NUMBERS
    rapid_word = b"1" if grbl else b"0"  # GRBL's G0 goes the general way
    ext, work = m.ext, m.work_ext
    ext_z = math.nan  # a Z known to be inside ext already
    motion_word: bytes | None = None  # the G word of the last plain move
    # The square roots of the last nominal speed² and of the last exit speed²
    # (the next block's entry speed²): the same numbers, computed once.
    root_nom_sq = root_nom = root_exit_sq = root_exit = -1.0
    chunks = iter(text)
    lines: Iterator[tuple[bytes, bytes, bytes | str]] = iter(())
    while True:
        # -- sync in: the interpreter's state into locals
        sc, relative, e_relative = m.scale, m.relative, m.e_relative
        # Absolute millimetres on Marlin: the two commonest shapes are read
        # without the general arithmetic (times 1.0 and the Z terms left out,
        # the same numbers).
        flat = not relative and sc == 1.0 and not grbl
        cuts = grbl and m.spindle_on and m.spindle_power > 0.0
        feed, feed_sq = m.feed, m.feed_sq
        feed_fresh = True
        straight = _straight(feed_sq, jd_accel)
        x, y, z, e_pos = m.x, m.y, m.z, m.e
        moves, travel_mm, work_mm, e_total = m.moves, m.travel_mm, m.work_mm, m.e_total
        moves_in = moves  # a plain move counted in moves is a line understood
        feed_min, feed_max = m.feed_min, m.feed_max
        work_here, layer_z = m.work_here, m.layer_z
        lo_x, lo_y, lo_z, hi_x, hi_y, hi_z = ext
        wlo_x, wlo_y, wlo_z, whi_x, whi_y, whi_z = work
        prev_nominal_sq, seconds = planner.prev_nominal_sq, planner.seconds
        moving = planner.prev is not None  # else the planner is at rest
        px, py, pz = planner.prev or (0.0, 0.0, 0.0)
        queued = len(blocks)
        # Whether the newest block is below its maximum entry speed: the
        # reverse pass stops at the first block that is not.
        below = bool(blocks) and blocks[-1][3] < blocks[-1][2]
        for signature, digits, raw in lines:
            reading = read_as(signature)
            if reading is None:
                reading = reading_of(signature)
                if len(signature) <= _REMEMBERED_LINE:  # memory stays bounded
                    if len(readings) >= SIGNATURES:
                        readings.clear()
                    readings[signature] = reading
            what, cut, x_places, y_places, e_places, kind = reading
            if what <= XY:  # "G X Y E" or "G X Y", unsigned, read as integers
                if cut:
                    digits = digits[:cut]
                if what == XYE:
                    word, sx, sy, se = digits.split()
                    # A slicer repeats E along a stretch of one width: a
                    # dict look-up is quicker than reading the number.
                    if e_places != e_values_places:
                        e_values.clear()
                        e_values_places = e_places
                    we = e_seen(se)
                    if we is None:
                        we = int(se) / e_places
                        if len(e_values) >= _E_VALUES:
                            e_values.clear()
                        e_values[se] = we
                    de = we if e_relative else we - e_pos  # as Marlin, when flat
                else:
                    word, sx, sy = digits.split()
                    we = None
                    de = 0.0
                if word != b"1" and word != rapid_word:  # "G01", "G2"
                    break
                wx = int(sx) / x_places
                wy = int(sy) / y_places
                if flat:
                    # Absolute millimetres on Marlin: the general arithmetic
                    # below without its multiplications by 1.0 and Z terms
                    # (Z stays, so dZ is 0.0 and the sums the same numbers).
                    dx = wx - x
                    dy = wy - y
                    length = sqrt(dx * dx + dy * dy)
                    if length and length < huge and neg_huge < de < huge:
                        # A move: what follows "if plain" below does, in the
                        # plane (pz * 0.0 changes a sum at most in the sign
                        # of a zero, which no comparison or root sees).
                        motion_word = word
                        if de != 0.0:
                            e_pos += de
                            e_total += de
                        moves += 1
                        if feed_fresh:
                            feed_fresh = False
                            if feed < feed_min:
                                feed_min = feed
                            if feed > feed_max:
                                feed_max = feed
                        ux = dx / length
                        uy = dy / length
                        if moving:
                            cos_theta = -(px * ux + py * uy)
                            if cos_theta < straight and feed_sq == prev_nominal_sq:
                                max_entry_sq = feed_sq
                            elif cos_theta > 0.999999:
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
                        else:
                            max_entry_sq = 0.0
                            moving = True
                        brake_sq = two_accel * length
                        if brake_sq < max_entry_sq:
                            append([length, feed_sq, max_entry_sq, brake_sq])
                        else:
                            append([length, feed_sq, max_entry_sq, max_entry_sq])
                        px = ux
                        py = uy
                        pz = 0.0
                        prev_nominal_sq = feed_sq
                        if below:
                            i = queued - 1
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
                        below = brake_sq < max_entry_sq
                        if queued < PLANNER_BLOCKS:
                            queued += 1
                        else:
                            b_len, b_nom, _, b_entry = popleft()
                            following = blocks[0]
                            exit_sq = b_entry + two_accel * b_len
                            if following[3] < exit_sq:
                                exit_sq = following[3]
                            following[2] = following[3] = exit_sq
                            if b_nom != root_nom_sq:
                                root_nom_sq, root_nom = b_nom, sqrt(b_nom)
                            if b_entry == b_nom and exit_sq == b_nom:
                                # Cruising through: both ramps are empty, and the sum
                                # below comes to exactly this (2v - v - v is 0.0).
                                seconds += b_len / root_nom
                                root_exit_sq, root_exit = exit_sq, root_nom
                            else:
                                v_in = root_exit if b_entry == root_exit_sq else sqrt(b_entry)
                                v_out = sqrt(exit_sq)
                                root_exit_sq, root_exit = exit_sq, v_out
                                accel_mm = (b_nom - b_entry) / two_accel
                                decel_mm = (b_nom - exit_sq) / two_accel
                                if accel_mm + decel_mm <= b_len:
                                    seconds += (2.0 * root_nom - v_in - v_out) / accel + (
                                        b_len - accel_mm - decel_mm
                                    ) / root_nom
                                else:
                                    v_peak = sqrt(0.5 * (two_accel * b_len + b_entry + exit_sq))
                                    seconds += (2.0 * v_peak - v_in - v_out) / accel
                        if wx < lo_x:
                            lo_x = wx
                        if wx > hi_x:
                            hi_x = wx
                        if wy < lo_y:
                            lo_y = wy
                        if wy > hi_y:
                            hi_y = wy
                        if z != ext_z:
                            ext_z = z
                            if z < lo_z:
                                lo_z = z
                            if z > hi_z:
                                hi_z = z
                        if de > 0.0:
                            work_mm += length
                            if not work_here:
                                if x < wlo_x:
                                    wlo_x = x
                                if x > whi_x:
                                    whi_x = x
                                if y < wlo_y:
                                    wlo_y = y
                                if y > whi_y:
                                    whi_y = y
                                if z < wlo_z:
                                    wlo_z = z
                                if z > whi_z:
                                    whi_z = z
                                work_here = True
                            if wx < wlo_x:
                                wlo_x = wx
                            if wx > whi_x:
                                whi_x = wx
                            if wy < wlo_y:
                                wlo_y = wy
                            if wy > whi_y:
                                whi_y = wy
                            if z != layer_z:
                                layer_z = z
                                layers_add(round(z * 1000.0))
                        else:
                            travel_mm += length
                            work_here = False
                        x = wx
                        y = wy
                        continue
                    # Not a move, or out of range: the way below.
                    nx = wx
                    ny = wy
                    nz = z
                    dz = 0.0
                    plain = False
                else:
                    wz = wf = None
                    plain = True
            elif what == PLAIN:
                assert kind is not None and isinstance(raw, bytes)
                numbers = (raw[:cut] if cut else raw).translate(numbers_table).split()
                _, ix, iy, iz, ie, jf = kind
                try:
                    # Every index up to the last word's is read: a word
                    # without a number ("X") leaves too few, an IndexError.
                    wx = float(numbers[ix]) if ix else None
                    wy = float(numbers[iy]) if iy else None
                    wz = float(numbers[iz]) if iz else None
                    we = float(numbers[ie]) if ie else None
                    wf = float(numbers[jf]) if jf else None
                except (ValueError, IndexError):  # "X1.2.3", "X-", "X"
                    break
                word = numbers[0]
                if word != b"1" and word != rapid_word:
                    break
                plain = True
            elif what == BLANK:
                continue
            else:
                break
            if plain:
                if wf is not None:
                    wf *= sc
                    if 0.0 < wf < huge:
                        if wf < MIN_FEED:
                            wf = MIN_FEED
                        elif max_feed is not None and wf > max_feed:
                            wf = max_feed
                        feed = wf
                        feed_sq = (wf / 60.0) ** 2
                        feed_fresh = True
                        straight = _straight(feed_sq, jd_accel)
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
            motion_word = word
            if not (length < huge and neg_huge < de < huge):
                skipped += 1
                continue
            if de != 0.0:
                e_pos += de
                e_total += de
            if length == 0.0:
                understood += 1
                if de != 0.0:
                    moves += 1
                    moves_in += 1
                    # -- Planner.add_alone, inlined: run every waiting block
                    # to a stop, then this extruder-only move from rest to rest.
                    for alone in (None, [abs(de), feed_sq, 0.0, 0.0]):
                        if alone is not None:
                            append(alone)
                        while blocks:  # Planner._execute_oldest
                            b_len, b_nom, _, b_entry = popleft()
                            if blocks:
                                following = blocks[0]
                                exit_sq = b_entry + two_accel * b_len
                                if following[3] < exit_sq:
                                    exit_sq = following[3]
                                following[2] = following[3] = exit_sq
                            else:
                                exit_sq = 0.0
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
                    moving = below = False
                    queued = 0
                continue
            moves += 1
            if feed_fresh:  # the feed is new since the last move
                feed_fresh = False
                if feed < feed_min:
                    feed_min = feed
                if feed > feed_max:
                    feed_max = feed
            # -- Planner.add, inlined (entry and exit directions equal)
            ux, uy, uz = dx / length, dy / length, dz / length
            if moving:
                cos_theta = -(px * ux + py * uy + pz * uz)
                if cos_theta < straight and feed_sq == prev_nominal_sq:
                    # So straight on that the junction allows the feed: what
                    # the lines below give, without their square root.
                    max_entry_sq = feed_sq
                elif cos_theta > 0.999999:
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
            else:
                max_entry_sq = 0.0
                moving = True
            brake_sq = two_accel * length
            if brake_sq < max_entry_sq:
                append([length, feed_sq, max_entry_sq, brake_sq])
            else:
                append([length, feed_sq, max_entry_sq, max_entry_sq])
            px, py, pz = ux, uy, uz
            prev_nominal_sq = feed_sq
            if below:  # the reverse pass, from the block before the new one
                i = queued - 1
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
            below = brake_sq < max_entry_sq
            if queued < PLANNER_BLOCKS:
                queued += 1
            else:
                # -- Planner._execute_oldest, inlined
                b_len, b_nom, _, b_entry = popleft()
                following = blocks[0]
                exit_sq = b_entry + two_accel * b_len
                if following[3] < exit_sq:
                    exit_sq = following[3]
                following[2] = following[3] = exit_sq
                if b_nom != root_nom_sq:
                    root_nom_sq, root_nom = b_nom, sqrt(b_nom)
                if b_entry == b_nom and exit_sq == b_nom:
                    # Cruising through: both ramps are empty, and the sum
                    # below comes to exactly this (2v - v - v is 0.0).
                    seconds += b_len / root_nom
                    root_exit_sq, root_exit = exit_sq, root_nom
                else:
                    v_in = root_exit if b_entry == root_exit_sq else sqrt(b_entry)
                    v_out = sqrt(exit_sq)
                    root_exit_sq, root_exit = exit_sq, v_out
                    accel_mm = (b_nom - b_entry) / two_accel
                    decel_mm = (b_nom - exit_sq) / two_accel
                    if accel_mm + decel_mm <= b_len:
                        seconds += (2.0 * root_nom - v_in - v_out) / accel + (
                            b_len - accel_mm - decel_mm
                        ) / root_nom
                    else:
                        v_peak = sqrt(0.5 * (two_accel * b_len + b_entry + exit_sq))
                        seconds += (2.0 * v_peak - v_in - v_out) / accel
            # -- extents, work and travel, as in _linear
            if nx < lo_x:
                lo_x = nx
            if nx > hi_x:
                hi_x = nx
            if ny < lo_y:
                lo_y = ny
            if ny > hi_y:
                hi_y = ny
            if nz != ext_z:  # including a Z already inside changes nothing
                ext_z = nz
                if nz < lo_z:
                    lo_z = nz
                if nz > hi_z:
                    hi_z = nz
            if (cuts and word == b"1") if grbl else de > 0.0:
                work_mm += length
                if not work_here:
                    # The start of a stretch of work (Interpreter._include).
                    if x < wlo_x:
                        wlo_x = x
                    if x > whi_x:
                        whi_x = x
                    if y < wlo_y:
                        wlo_y = y
                    if y > whi_y:
                        whi_y = y
                    if z < wlo_z:
                        wlo_z = z
                    if z > whi_z:
                        whi_z = z
                    work_here = True
                if nx < wlo_x:
                    wlo_x = nx
                if nx > whi_x:
                    whi_x = nx
                if ny < wlo_y:
                    wlo_y = ny
                if ny > whi_y:
                    whi_y = ny
                if dz != 0.0:
                    if nz < wlo_z:
                        wlo_z = nz
                    if nz > whi_z:
                        whi_z = nz
                elif nz != layer_z:
                    layer_z = nz
                    layers_add(round(nz * 1000.0))
            else:
                travel_mm += length
                work_here = False
            x = nx
            y = ny
            z = nz
            continue
        else:
            raw = None  # the block is done
        # -- sync out: the locals back into the interpreter
        understood += moves - moves_in
        if motion_word is not None:
            m.motion_mode = 1 if motion_word == b"1" else 0
            motion_word = None
        m.feed, m.feed_sq = feed, feed_sq
        m.x, m.y, m.z, m.e = x, y, z, e_pos
        m.moves, m.travel_mm, m.work_mm = moves, travel_mm, work_mm
        m.e_total, m.feed_min, m.feed_max = e_total, feed_min, feed_max
        m.work_here, m.layer_z = work_here, layer_z
        ext[:] = lo_x, lo_y, lo_z, hi_x, hi_y, hi_z
        work[:] = wlo_x, wlo_y, wlo_z, whi_x, whi_y, whi_z
        planner.prev = (px, py, pz) if moving else None
        planner.prev_nominal_sq = prev_nominal_sq
        planner.seconds = seconds
        if raw is None:
            chunk = next(chunks, None)
            if chunk is None:
                break
            lines = lines_of(chunk)
        else:
            # -- the general path
            result = m.feed_one(raw.decode("latin-1") if isinstance(raw, bytes) else raw)
            if result > 0:
                understood += 1
            elif result < 0:
                skipped += 1
            ext_z = math.nan
    return understood, skipped
