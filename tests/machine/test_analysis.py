"""Tests of the streaming G-code analysis (gateway/machine/analysis.py)."""

from __future__ import annotations

import json
import math
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.machine.analysis import Analysis, Extents, analyze_file, analyze_lines
from gateway.machine.analysis_loop import _straight
from gateway.machine.gcode import Firmware


def _run(program: str, **kwargs: Any) -> Analysis:
    return analyze_lines(program.strip().splitlines(), **kwargs)


def _trapezoid(distance: float, feed: float, accel: float = 1000.0) -> float:
    """Seconds for one move from rest to rest."""
    v = feed / 60.0
    if v * v / accel >= distance:  # never reaches the feed: a triangle
        return 2.0 * math.sqrt(distance / accel)
    return distance / v + v / accel


SQUARE = """
G21 ; mm
G90
M83
G1 Z0.2 F600
G1 X0 Y0 F1200 ; already there: no motion
G1 X10 Y0 E1
G1 X10 Y10 E1
G1 X0 Y10 E1
G1 X0 Y0 E1
"""


def test_square() -> None:
    a = _run(SQUARE)
    assert a.lines == 9
    assert a.skipped_lines == 0
    assert a.moves == 5
    assert a.work_mm == pytest.approx(40.0)
    assert a.travel_mm == pytest.approx(0.2)
    assert a.filament_mm == pytest.approx(4.0)
    assert a.filament_g == pytest.approx(math.pi * 0.875**2 * 4.0 * 1.24 / 1000.0)
    assert a.extents == Extents(0.0, 0.0, 0.2, 10.0, 10.0, 0.2)
    assert a.print_extents == Extents(0.0, 0.0, 0.2, 10.0, 10.0, 0.2)
    assert a.layers == 1
    assert a.feed_rates == (600.0, 1200.0)


def test_square_duration_is_four_stops_at_right_angles() -> None:
    # At a 90° corner the junction speed is sqrt(a·δ·s/(1-s)), s = sin(45°):
    # about 5.6 mm/s against the 20 mm/s feed, so each side is nearly a full
    # stop-and-go move.
    a = _run(SQUARE)
    upper = _trapezoid(0.2, 600) + 4 * _trapezoid(10.0, 1200)
    assert 0.9 * upper < a.estimated_seconds <= upper


def test_print_extents_differ_from_travel_extents() -> None:
    a = _run(
        """
        M83
        G1 X100 Y100 F3000 ; travel far away
        G1 X50 Y50
        G1 X60 Y50 E1
        G1 Z10 ; lift
        """
    )
    # positions reached: the end of every move (the start position is unknown)
    assert a.extents == Extents(50.0, 50.0, 0.0, 100.0, 100.0, 10.0)
    assert a.print_extents == Extents(50.0, 50.0, 0.0, 60.0, 50.0, 0.0)


def test_absolute_extrusion_with_retraction_and_reset() -> None:
    a = _run(
        """
        M82
        G92 E0
        G1 X10 E5 F1200
        G1 E3 ; retract 2 mm
        G1 X20 ; travel
        G1 E5 ; prime 2 mm
        G1 X30 E10
        G92 E0
        G1 X40 E5
        """
    )
    assert a.filament_mm == pytest.approx(15.0)
    assert a.work_mm == pytest.approx(30.0)
    assert a.travel_mm == pytest.approx(10.0)
    assert a.moves == 6


def test_relative_extrusion_and_final_retraction() -> None:
    a = _run(
        """
        M83
        G1 X10 E2 F1200
        G1 E-0.8 F2400
        G1 X20
        G1 E0.8
        G1 X30 E2
        G1 E-5 ; end-of-print retraction pulls filament back
        """
    )
    assert a.filament_mm == 0.0  # net 4 - 5 < 0: nothing left the nozzle
    b = _run("M83\nG1 X10 E2 F1200\nG1 E-0.8\nG1 X20\nG1 E0.8\nG1 X30 E2")
    assert b.filament_mm == pytest.approx(4.0)


def test_g91_makes_extrusion_relative_and_g90_cancels_m83() -> None:
    # Marlin 2: G91 sets every axis relative, E included; G90 clears M83.
    a = _run(
        """
        M82
        G91
        G1 X10 E1 F1200
        G1 X10 E1
        G90
        G1 X30 E5
        """
    )
    assert a.filament_mm == pytest.approx(5.0)
    assert a.extents == Extents(10.0, 0.0, 0.0, 30.0, 0.0, 0.0)
    b = _run("M83\nG1 X1 E1 F1200\nG90\nG1 X2 E1.5")
    assert b.filament_mm == pytest.approx(1.5)
    c = _run("G91\nM82\nG1 X1 E1 F1200\nG1 X1 E3")  # M82 after G91: E absolute, XYZ relative
    assert c.filament_mm == pytest.approx(3.0)
    assert c.extents is not None and c.extents.max_x == pytest.approx(2.0)


def test_retraction_while_moving_is_travel() -> None:
    a = _run("M83\nG1 X10 E1 F1200\nG1 X12 E-0.5 ; wipe")
    assert a.work_mm == pytest.approx(10.0)
    assert a.travel_mm == pytest.approx(2.0)
    assert a.filament_mm == pytest.approx(0.5)


def test_arc_full_circle_with_offsets() -> None:
    a = _run("M83\nG1 X10 Y0 F1200\nG2 X10 Y0 I-10 J0 E3")
    assert a.work_mm == pytest.approx(2 * math.pi * 10)
    assert a.print_extents == Extents(-10.0, -10.0, 0.0, 10.0, 10.0, 0.0)
    assert a.filament_mm == pytest.approx(3.0)
    assert a.moves == 2


def test_arc_quarter_counter_clockwise() -> None:
    a = _run("M83\nG1 X10 Y0 F1200\nG3 X0 Y10 I-10 J0 E1")
    assert a.work_mm == pytest.approx(2 * math.pi * 10 / 4)
    assert a.print_extents == pytest.approx(Extents(0.0, 0.0, 0.0, 10.0, 10.0, 0.0))


def test_arc_quarter_clockwise_goes_the_long_way() -> None:
    # Same end points, clockwise: three quarters of the circle.
    a = _run("M83\nG1 X10 Y0 F1200\nG2 X0 Y10 I-10 J0 E1")
    assert a.work_mm == pytest.approx(2 * math.pi * 10 * 3 / 4)
    ext = a.print_extents
    assert ext is not None
    assert (ext.min_x, ext.min_y, ext.max_x, ext.max_y) == pytest.approx((-10, -10, 10, 10))


def test_arc_with_radius() -> None:
    # Clockwise half circle from (0,0) to (10,0) around (5,0): over the top.
    a = _run("M83\nG1 F1200\nG2 X10 Y0 R5 E1")
    assert a.work_mm == pytest.approx(5 * math.pi)
    ext = a.print_extents
    assert ext is not None
    assert (ext.min_x, ext.min_y, ext.max_x, ext.max_y) == pytest.approx((0, 0, 10, 5))
    # counter-clockwise: under
    b = _run("M83\nG1 F1200\nG3 X10 Y0 R5 E1")
    assert b.print_extents is not None and b.print_extents.min_y == pytest.approx(-5)


def test_helical_arc_and_other_planes() -> None:
    a = _run("G1 X10 Y0 F600\nG3 X10 Y0 Z2 I-10")
    assert a.travel_mm == pytest.approx(10 + math.hypot(2 * math.pi * 10, 2))
    # G18: arc in the XZ plane with I/K.
    b = _run("G18\nG1 X10 Z0 F600\nG2 X-10 Z0 I-10 K0")
    assert b.travel_mm == pytest.approx(10 + math.pi * 10)
    assert b.extents is not None and b.extents.max_z - b.extents.min_z == pytest.approx(10)


def test_inches() -> None:
    a = _run("G20\nG1 X1 Y1 F10\nG21\nG1 X30 Y25.4")
    assert a.extents == pytest.approx(Extents(25.4, 25.4, 0.0, 30.0, 25.4, 0.0))
    assert a.travel_mm == pytest.approx(25.4 * math.sqrt(2) + 4.6)
    assert a.feed_rates == pytest.approx((254.0, 254.0))


def test_relative_positioning() -> None:
    a = _run("G91\nG1 X10 F600\nG1 X10\nG1 Y-5")
    assert a.extents == Extents(10.0, -5.0, 0.0, 20.0, 0.0, 0.0)
    assert a.travel_mm == pytest.approx(25.0)


def test_dwell() -> None:
    assert _run("G4 P500").estimated_seconds == pytest.approx(0.5)
    assert _run("G4 S2").estimated_seconds == pytest.approx(2.0)
    assert _run("G4 P1.5", firmware="grbl").estimated_seconds == pytest.approx(1.5)
    a = _run("G1 X100 F6000\nG4 S3")
    assert a.estimated_seconds == pytest.approx(_trapezoid(100, 6000) + 3)


def test_home_is_a_rapid_move_to_zero() -> None:
    a = _run("G1 X10 Y20 Z30 F600\nG28")
    assert a.moves == 2
    assert a.travel_mm == pytest.approx(math.sqrt(10**2 + 20**2 + 30**2) * 2)
    assert a.extents == Extents(0.0, 0.0, 0.0, 10.0, 20.0, 30.0)
    b = _run("G1 X10 Y20 F600\nG28 X\nG1 Y30")
    assert b.travel_mm == pytest.approx(math.hypot(10, 20) + 10 + math.hypot(0, 10))
    c = _run("G1 X10 Y20 F600\nG28 X0 Y0\nG1 X1")
    assert c.travel_mm == pytest.approx(math.hypot(10, 20) * 2 + 1)


def test_layers() -> None:
    a = _run(
        """
        M83
        G1 Z0.2 F600
        G1 X10 E1
        G1 Z1.2 ; z-hop, no extrusion
        G1 X20
        G1 Z0.4
        G1 X10 E1
        G1 X0 E1
        G1 Z0.6
        G1 X10 E1
        G1 Z0.6001 X11 E1 ; rising while extruding: no new layer
        """
    )
    assert a.layers == 3
    assert a.print_extents is not None and a.print_extents.max_z == pytest.approx(0.6001)


def test_grbl_cutting_and_levels() -> None:
    a = _run(
        """
        G21 G90
        G0 X0 Y0 Z5
        M3 S1000
        G1 Z-1 F300
        G1 X50 F600
        G0 Z5
        G0 X0
        G1 Z-2 F300
        G1 X50 F600
        G1 X60 S0 ; spindle at 0: not cutting
        M5
        G1 X70
        G0 Z5
        M2
        """,
        firmware="grbl",
    )
    assert a.layers == 2
    assert a.work_mm == pytest.approx(6 + 50 + 7 + 50)
    assert a.print_extents == Extents(0.0, 0.0, -2.0, 50.0, 0.0, 5.0)
    assert a.extents == Extents(0.0, 0.0, -2.0, 70.0, 0.0, 5.0)
    assert a.filament_mm == 0.0


def test_grbl_laser_power_on_each_move() -> None:
    a = _run("M4\nG1 X10 S500 F1000\nG1 X20 S0\nG1 X30 S800", firmware="grbl")
    assert a.work_mm == pytest.approx(20.0)
    assert a.travel_mm == pytest.approx(10.0)


def test_tiny_feed_is_slow_not_infinite() -> None:
    a = _run("G1 X1 F1e-300")
    assert 0 < a.estimated_seconds < math.inf
    json.dumps(a.to_dict(), allow_nan=False)


def test_rapid_feed() -> None:
    # GRBL: G0 ignores F and moves at the rapid rate (max_feed, or 3000 mm/min).
    a = _run("G0 X100 F100", firmware="grbl")
    assert a.estimated_seconds == pytest.approx(_trapezoid(100, 3000))
    b = _run("G0 X100 F100", firmware="grbl", max_feed=6000)
    assert b.estimated_seconds == pytest.approx(_trapezoid(100, 6000))
    # Marlin: G0 is G1, F applies; without any F the rapid rate is used.
    c = _run("G0 X100 F100")
    assert c.estimated_seconds == pytest.approx(_trapezoid(100, 100))
    d = _run("G0 X100")
    assert d.estimated_seconds == pytest.approx(_trapezoid(100, 3000))
    # max_feed caps every feed
    e = _run("G1 X100 F20000", max_feed=6000)
    assert e.estimated_seconds == pytest.approx(_trapezoid(100, 6000))
    assert e.feed_rates == (6000.0, 6000.0)


def test_straight_move_estimate() -> None:
    # 100 mm at F6000 (100 mm/s): 1 s cruising plus 0.1 s lost accelerating
    # (0.1 s to reach 100 mm/s at 1000 mm/s², and the same to stop).
    a = _run("G1 X100 F6000")
    assert a.estimated_seconds == pytest.approx(100 / 100 + 0.1)
    slow = _run("G1 X100 F6000", acceleration=100.0)
    assert slow.estimated_seconds == pytest.approx(_trapezoid(100, 6000, 100.0))
    assert slow.estimated_seconds > a.estimated_seconds


def test_short_move_never_reaches_its_feed() -> None:
    a = _run("G1 X1 F6000")
    assert a.estimated_seconds == pytest.approx(2 * math.sqrt(1 / 1000))


def _zigzag(segments: int, total: float = 100.0) -> list[str]:
    step = total / segments
    lines = ["G1 F6000"]
    for i in range(1, segments + 1):
        lines.append(f"G1 X{i * step / math.sqrt(2):.6f} Y{(i % 2) * step / math.sqrt(2):.6f}")
    return lines


def test_more_tinier_segments_take_longer() -> None:
    times = [analyze_lines(_zigzag(n)).estimated_seconds for n in (1, 10, 100, 1000)]
    assert times == sorted(times)
    assert times[-1] > 3 * times[0]
    for n, t in zip((1, 10, 100, 1000), times, strict=True):
        assert t >= 100 / 100, f"{n} segments cannot beat the feed rate"


def test_collinear_split_costs_nothing_until_the_lookahead_runs_short() -> None:
    whole = _run("G1 X100 F6000").estimated_seconds
    # 1 mm pieces: 16 planned blocks cover the 5 mm needed to brake.
    pieces = analyze_lines(["G1 F6000"] + [f"G1 X{i}" for i in range(1, 101)])
    assert pieces.estimated_seconds == pytest.approx(whole, rel=1e-6)
    # 0.05 mm pieces: 16 blocks are 0.8 mm, so the planner must stay slow.
    crumbs = analyze_lines(["G1 F6000"] + [f"G1 X{i * 0.05:.2f}" for i in range(1, 2001)])
    assert crumbs.estimated_seconds > 2 * whole


def test_smooth_curve_is_not_slowed_like_corners() -> None:
    def circle(segments: int) -> list[str]:
        lines = ["G1 X10 Y0 F3000"]
        for i in range(1, segments + 1):
            angle = 2 * math.pi * i / segments
            lines.append(f"G1 X{10 * math.cos(angle):.5f} Y{10 * math.sin(angle):.5f}")
        return lines

    a = analyze_lines(circle(200))
    length = 10 + 2 * math.pi * 10
    assert a.travel_mm == pytest.approx(length, rel=1e-3)
    # close to the feed-rate time (50 mm/s), far from stop-and-go
    assert a.estimated_seconds < 1.2 * (length / 50 + 0.1)


def test_modes_and_several_commands_on_a_line() -> None:
    a = _run("G90 G21 G0 X10 Y10 F3000\nG91\nX5 ; modal motion", firmware="grbl")
    assert a.extents == Extents(10.0, 10.0, 0.0, 15.0, 10.0, 0.0)
    assert a.moves == 2


def test_axis_words_of_other_commands_are_not_moves() -> None:
    a = _run(
        """
        M201 X500 Y500 Z100 E5000
        M203 X200 Y200
        M92 X80 Y80
        G92 X5 Y5
        G10 L20 P1 X0
        G1 X6 F600
        """
    )
    assert a.moves == 1
    assert a.travel_mm == pytest.approx(1.0)
    assert a.extents == Extents(6.0, 5.0, 0.0, 6.0, 5.0, 0.0)


def test_numbers_have_no_exponent() -> None:
    # "X1E5" is X1 with E5, as Marlin reads it, not X100000.
    a = _run("M83\nG1 X1E5 F600\nG1 X2e1\nG1 X3 E1E2\nG1 X1_0")
    assert a.extents == Extents(1.0, 0.0, 0.0, 3.0, 0.0, 0.0)
    assert a.filament_mm == pytest.approx(5 + 1 + 2)


def test_messages_and_compact_words() -> None:
    a = _run("M117 X100 Y100 not a move\nG1X10Y5F600\ng1 x20")
    assert a.moves == 2
    assert a.extents == Extents(10.0, 5.0, 0.0, 20.0, 5.0, 0.0)


def test_bad_lines_are_skipped_not_fatal() -> None:
    huge = "9" * 400  # beyond any float
    a = analyze_lines(
        [
            "G1 X10 F600",
            "<html>",
            "G1 X20 (never closed",
            "M117 café",
            "G1 Xnan",
            f"G1 X{huge}",
            f"M{huge}",
            f"G92 X{huge}",
            "G2 X10 I0 J0 ; no radius",
            "G3 X5 I5 ; the end is on the ray from the centre through the start",
            "G1 X30",
        ]
    )
    assert a.skipped_lines == 9
    assert a.lines == 2
    assert a.travel_mm == pytest.approx(30.0)


def test_empty_program() -> None:
    a = analyze_lines([])
    assert a == Analysis(
        lines=0,
        skipped_lines=0,
        moves=0,
        extents=None,
        print_extents=None,
        travel_mm=0.0,
        work_mm=0.0,
        filament_mm=0.0,
        filament_g=0.0,
        layers=0,
        estimated_seconds=0.0,
        feed_rates=None,
    )
    assert json.loads(json.dumps(a.to_dict()))["extents"] is None


def test_to_dict_is_json() -> None:
    d = _run(SQUARE).to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["filament_mm"] == 4.0
    assert d["extents"] == {
        "min": {"x": 0.0, "y": 0.0, "z": 0.2},
        "max": {"x": 10.0, "y": 10.0, "z": 0.2},
    }
    assert d["feed_rates"] == {"min": 600.0, "max": 1200.0}
    assert set(d) >= {"lines", "moves", "travel_mm", "work_mm", "filament_g", "layers"}
    assert set(d) >= {"estimated_seconds", "print_extents", "skipped_lines"}


def test_filament_weight_parameters() -> None:
    a = _run("M83\nG1 X10 E1000 F600", filament_diameter=2.85, filament_density=1.04)
    assert a.filament_g == pytest.approx(math.pi * (2.85 / 2) ** 2 * 1000 * 1.04 / 1000)


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        analyze_lines([], firmware="reprap")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        analyze_lines([], acceleration=0)
    with pytest.raises(ValueError):
        analyze_lines([], max_feed=-1)


def test_analyze_file_reads_an_endless_line_in_pieces(tmp_path: Path) -> None:
    path = tmp_path / "binary.gcode"
    path.write_bytes(b"G1 X10 F600\n" + b"\x00\xff" * 1_500_000 + b"\nG1 X20\n")
    a = analyze_file(path)
    assert a.lines == 2 and a.skipped_lines == 3
    assert a.travel_mm == pytest.approx(20.0)


def test_analyze_file_raw_crlf_bom(tmp_path: Path) -> None:
    path = tmp_path / "raw.gcode"
    path.write_bytes(b"\xef\xbb\xbf; header\r\n" + SQUARE.strip().replace("\n", "\r\n").encode())
    assert analyze_file(path) == _run(SQUARE)


def _write_layers(path: Path, lines: int) -> None:
    with path.open("w") as fh:
        fh.write("M83\nG1 F1800\n")
        for i in range(lines):
            layer, step = divmod(i, 1000)
            angle = 2 * math.pi * step / 1000
            x, y = 50 + 20 * math.cos(angle), 50 + 20 * math.sin(angle)
            fh.write(f"G1 X{x:.3f} Y{y:.3f} E0.01 ; perimeter\n")
            if step == 999:
                fh.write(f";LAYER_CHANGE\nG1 Z{0.2 * (layer + 1):.2f}\n")


def _traced_peak(path: Path) -> tuple[Analysis, int]:
    tracemalloc.start()
    try:
        analysis = analyze_file(path)
        return analysis, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_analyze_file_streams_in_constant_memory(tmp_path: Path) -> None:
    small, big = tmp_path / "small.gcode", tmp_path / "big.gcode"
    _write_layers(small, 10_000)
    _write_layers(big, 60_000)
    small_result, small_peak = _traced_peak(small)
    big_result, big_peak = _traced_peak(big)
    assert (small_result.moves, small_result.layers) == (10_010, 10)
    assert (big_result.moves, big_result.layers) == (60_060, 60)
    # Six times the file, not six times the memory: only the read buffer,
    # the planner's look-ahead and the set of layer heights are held.
    size = big.stat().st_size
    assert big_peak < size // 4, f"peak {big_peak} bytes for a {size}-byte file"
    assert big_peak < 1.5 * small_peak + 64 * 1024, (small_peak, big_peak)


# --- properties -------------------------------------------------------------

_word = st.builds(
    "{}{}".format,
    st.sampled_from([*"GMXYZEFIJKRPSTN", "G", "M"]),
    st.one_of(
        st.sampled_from(["0", "1", "2", "3", "4", "17", "18", "19", "20", "21", "28", "82"]),
        st.sampled_from(["83", "90", "91", "92", "3", "5", "-0", "1e3", ".", "-", ""]),
        st.floats(allow_nan=True, allow_infinity=True, width=32).map(str),
        st.integers(-(10**12), 10**12).map(str),
    ),
)
_gcode_line = st.lists(_word, min_size=1, max_size=6).map(" ".join)


@settings(max_examples=300)
@given(st.lists(st.text(max_size=40), max_size=20), st.sampled_from(["marlin", "grbl"]))
def test_never_raises_on_arbitrary_text(lines: list[str], firmware: Firmware) -> None:
    a = analyze_lines(lines, firmware=firmware)
    json.dumps(a.to_dict(), allow_nan=False)


@settings(max_examples=300)
@given(st.lists(_gcode_line, max_size=30), st.sampled_from(["marlin", "grbl"]))
def test_never_raises_on_gcode_like_lines(lines: list[str], firmware: Firmware) -> None:
    a = analyze_lines(lines, firmware=firmware)
    d = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert a.lines + a.skipped_lines <= len(lines)
    assert a.estimated_seconds >= 0.0
    assert a.travel_mm >= 0.0 and a.work_mm >= 0.0 and a.filament_mm >= 0.0
    assert d["moves"] <= len(lines)


_num = st.integers(-3000, 3000).map(lambda v: f"{v / 10:g}")
_word = st.tuples(st.sampled_from("XYZEF"), _num).map("".join)
_fast_line = st.tuples(
    st.sampled_from(["G1", "G0"]),
    st.lists(_word, max_size=5),
    st.sampled_from(["", " ; note", "  ", "\r"]),
).map(lambda t: " ".join([t[0], *t[1]]) + t[2])
_other_line = st.sampled_from(
    [
        "G91", "G90", "M82", "M83", "G20", "G21", "G92 E0", "G28", "M3 S1000", "M5",
        "G2 X5 Y5 I2 J0", "G4 P100", "G1 X1E5", "G1 Xinf", "G1 X1  Y2", "g1 x3 y4",
        "G1 X1 X2", "G1 Q5", "G1 X1_0", "M109 S200", "G1 X(1)", "G1 X1*5", "N5 G1 X2",
    ]
)


# What a slicer writes most: the shapes the loop reads by unpacking, with
# the numbers slicers print (".8", "-0", "5.") and a few it does not.
_slicer_num = st.one_of(
    _num,
    st.sampled_from(["-0", "0", "-0.000", ".8", "-.8", "5.", "1.2.3", "-", "", "1e3"]),
    # the same digits in other places; 15, 16 and 17 significant digits
    st.sampled_from(["05", "0.5", "00.5", ".05", "+5", "--5"]),
    st.sampled_from(["99999999999", "123456789.012345", "1234567890.123456", "0.1000000000000001"]),
)
_slicer_line = st.tuples(
    st.sampled_from(["G1", "G0", "G01", "G2"]),
    _slicer_num,
    _slicer_num,
    st.one_of(st.none(), _slicer_num),
    st.sampled_from(["", " ; infill", " ", "\r"]),
).map(lambda t: f"{t[0]} X{t[1]} Y{t[2]}" + ("" if t[3] is None else f" E{t[3]}") + t[4])


@pytest.mark.parametrize("firmware", ["marlin", "grbl"])
@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.one_of(_fast_line, _other_line), max_size=60))
def test_fast_loop_agrees_with_the_line_by_line_path(firmware: Firmware, lines: list[str]) -> None:
    """A leading tab sends every line the general way (clean_line, then the
    interpreter); the one-loop fast path must give exactly the same analysis."""
    fast = analyze_lines([line + "\n" for line in lines], firmware=firmware)
    slow = analyze_lines(["\t" + line + "\n" for line in lines], firmware=firmware)
    assert fast == slow


@pytest.mark.parametrize("firmware", ["marlin", "grbl"])
@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.one_of(_slicer_line, _fast_line, _other_line), max_size=80))
def test_slicer_shapes_agree_with_the_line_by_line_path(
    firmware: Firmware, lines: list[str]
) -> None:
    """Mostly 'G1 X.. Y.. E..' and 'G1 X.. Y..', the shapes read by
    unpacking, between mode changes (G91, M82/M83, G20, G92 ...)."""
    fast = analyze_lines([line + "\n" for line in lines], firmware=firmware)
    slow = analyze_lines(["\t" + line + "\n" for line in lines], firmware=firmware)
    assert fast == slow


_file_line = st.tuples(
    st.sampled_from(["G1", "G0", "G1 F4800", "G0 F9000"]),
    st.lists(_word, max_size=5),
    st.sampled_from(["", " ; infill", ";TYPE:Skirt", " ;\tx", " ; caf\xe9", " ", "\r", "\x00"]),
).map(lambda t: " ".join([t[0], *t[1]]) + t[2])


@pytest.mark.parametrize("firmware", ["marlin", "grbl"])
@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.one_of(_file_line, _slicer_line, _slicer_line, _other_line), max_size=60),
    bom=st.booleans(),
)
def test_file_loop_agrees_with_the_line_by_line_path(
    firmware: Firmware, lines: list[str], bom: bool
) -> None:
    """Reading a file goes through the block reader (shapes and numbers of
    whole blocks at a time): the same analysis as every line the general way."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "job.gcode"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "\n".join(lines).encode("latin-1"))
        from_file = analyze_file(path, firmware=firmware)
    slow = analyze_lines(["\t" + line + "\n" for line in lines], firmware=firmware)
    assert from_file == slow


@settings(max_examples=500)
@given(
    feed=st.floats(0.06, 1e9),
    jd_accel=st.sampled_from([13.0, 10.0, 65.0, 1.0]),
    below=st.floats(0.0, 2.0),
)
def test_a_junction_below_the_straight_cosine_is_limited_by_the_feed(
    feed: float, jd_accel: float, below: float
) -> None:
    """The loop skips the junction formula for cosines below _straight():
    there the formula (as Planner.add computes it) must give the feed."""
    nominal_sq = (feed / 60.0) ** 2
    threshold = _straight(nominal_sq, jd_accel)
    for cos_theta in (threshold - below, math.nextafter(threshold, -math.inf)):
        if not -1.0 <= cos_theta < threshold:
            continue
        if cos_theta > 0.999999:
            limit = 0.0
        else:
            sin_half = math.sqrt(0.5 * (1.0 - max(cos_theta, -0.999999)))
            limit = jd_accel * sin_half / (1.0 - sin_half)
        assert min(limit, nominal_sq) == nominal_sq


@pytest.mark.parametrize(
    "lines",
    [
        # the same E digits in other places, one after the other
        ["M83", "G1 X1 Y1 E05", "G1 X2 Y2 E0.5", "G1 X3 Y3 E00.5", "G1 X4 Y4 E.05", "G1 X5 Y5 E05"],
        ["G1 X0.12345678901234567 Y1.0000000000000001 E0.1", "G1 X123456.789012345 Y2"],
        ["G1 X9007199254740993 Y1", "G1 X0.9007199254740993 Y0.1"],  # beyond 2**53
        ["G1 X-0.000 Y-0 E-0", "G1 X-1.5 Y2", "G1 X+1 Y+2", "G1 X1. Y.5 E5."],
        ["G1 X10 Y10 E1 ; infill", "G1 X11 Y10 ;", "G1 X12 Y10 E.5;x", "G1 X1 Y1 ; caf\xe9"],
    ],
)
def test_slicer_numbers_agree_with_the_line_by_line_path(lines: list[str]) -> None:
    fast = analyze_lines([line + "\n" for line in lines])
    slow = analyze_lines(["\t" + line + "\n" for line in lines])
    assert fast == slow
    assert fast.lines + fast.skipped_lines == len(lines)


@settings(max_examples=500)
@given(whole=st.integers(0, 10**9), places=st.integers(0, 15), width=st.integers(0, 15))
def test_digits_over_a_power_of_ten_are_what_float_reads(
    whole: int, places: int, width: int
) -> None:
    """The fast loop reads an unsigned number of at most 15 digits as
    int(digits) / 10**places: exact operands, so the correctly rounded
    quotient is the correctly rounded number float() reads."""
    digits = str(whole).zfill(width)[-15:]
    text = digits[: len(digits) - places] + "." + digits[len(digits) - places :]
    assert int(digits) / float(10 ** (len(text) - text.index(".") - 1)) == float(text)


def test_analyze_file_memory_with_long_distinct_lines(tmp_path: Path) -> None:
    """Signatures are remembered per file, but not those of long lines: a file
    of many distinct long lines does not grow the memory with them."""
    path = tmp_path / "comments.gcode"
    with path.open("w") as fh:
        for i in range(2_000):
            fh.write("; " + "x" * (i % 997) + "1" * 200 + " " * (i % 7) + "\n")
            fh.write(f"G1 X{i % 50} Y{i % 30} E0.1 ;{'y' * (i % 300)}\n")
    tracemalloc.start()
    try:
        analysis = analyze_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert analysis.lines == 2_000 and analysis.skipped_lines == 0
    assert peak < path.stat().st_size // 4, f"peak {peak} bytes"


@pytest.mark.parametrize("firmware", ["marlin", "grbl"])
def test_cruising_and_curves_agree_with_the_line_by_line_path(firmware: Firmware) -> None:
    """Straight runs cut into segments (blocks that cruise through), gentle and
    sharp curves, retractions between them: the loop's shortcuts (cruise,
    junctions straight enough for the feed) give the general path's numbers."""
    lines = ["G90", "M83", "G1 F1800"]
    for i in range(1, 120):
        lines.append(f"G1 X{i * 0.5:.3f} Y10 E0.02")
    lines += ["G1 E-.8 F2100", "G1 X60 Y40 F7200", "G1 E.8 F2100", "G1 F600"]
    for i in range(200):
        angle = 2 * math.pi * i / (7 + i % 40)
        lines.append(f"G1 X{60 + 20 * math.cos(angle):.3f} Y{40 + 20 * math.sin(angle):.3f} E.03")
    fast = analyze_lines([line + "\n" for line in lines], firmware=firmware)
    slow = analyze_lines(["\t" + line + "\n" for line in lines], firmware=firmware)
    assert fast == slow
    assert fast.estimated_seconds > 0.0
