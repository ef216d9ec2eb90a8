"""The resume core: modal state at a line, layer index, and the preamble that restores it."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.machine.gcode import Firmware, clean_line
from gateway.machine.resume import (
    ModalState,
    ModalTracker,
    ResumeError,
    layer_index,
    preamble,
    state_at,
)

coord = st.integers(-20000, 20000).map(lambda v: f"{v / 100:g}")
positive = st.integers(1, 20000).map(lambda v: f"{v / 10:g}")
temp = st.integers(0, 280).map(str)


def _fmt(template: str, *parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map(lambda values: template.format(*values))


_common = [
    st.sampled_from(["G90", "G91", "G20", "G21", "G17", "G18", "G19"]),
    _fmt("G1 X{} Y{} F{}", coord, coord, positive),
    _fmt("G0 Z{}", coord),
    _fmt("G1 X{}", coord),
    _fmt("X{} Y{}", coord, coord),
    _fmt("G92 X{} Y{}", coord, coord),
    _fmt("G92 Z{}", coord),
    _fmt("G2 X{} Y{} I{} J{}", coord, coord, coord, coord),
    _fmt("G3 X{} Y{} R{}", coord, coord, positive),
    _fmt("G1 F{}", positive),
    _fmt("G4 P{}", st.integers(0, 100).map(str)),
]
_marlin = st.one_of(
    *_common,
    st.sampled_from(["M82", "M83", "M107", "G28", "G28 X", "G28 Y Z", "T0", "T1", "M400"]),
    _fmt("G1 X{} Y{} E{}", coord, coord, coord),
    _fmt("G1 E{} F{}", coord, positive),
    _fmt("G92 E{}", coord),
    _fmt("M104 S{}", temp),
    _fmt("M109 S{}", temp),
    _fmt("M104 T1 S{}", temp),
    _fmt("M140 S{}", temp),
    _fmt("M190 S{}", temp),
    _fmt("M106 S{}", st.integers(0, 255).map(str)),
    _fmt("M106 P1 S{}", st.integers(0, 255).map(str)),
    st.just("M117 G91 X5 is a message"),
)
_grbl = st.one_of(
    *_common,
    st.sampled_from(["G54", "G55", "G59", "G92.1", "G93", "G94", "M5", "M7", "M8", "M9"]),
    _fmt("M3 S{}", positive),
    _fmt("M4 S{}", positive),
    _fmt("S{}", positive),
    _fmt("G1 X{} Y{} S{} F{}", coord, coord, positive, positive),
    _fmt("G93 G1 X{} F{}", coord, positive),
)


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=2e-3)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _assert_same(restored: ModalState, original: ModalState) -> None:
    want = original.restorable()
    got = restored.restorable()
    if want["feed"] is None:
        # The file never set a feed: the preamble's own moves leave theirs.
        got["feed"] = None
    if want["motion"] is None:
        got["motion"] = None
    different = {k: (got[k], want[k]) for k in want if not _close(got[k], want[k])}
    assert not different, different


def _run(lines: list[str], firmware: Firmware) -> ModalState:
    tracker = ModalTracker(firmware)
    for line in lines:
        tracker.feed(line)
    return tracker.state


@pytest.mark.parametrize("firmware", ["marlin", "grbl"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_preamble_restores_the_state_at_any_line(firmware: Firmware, data: st.DataObject) -> None:
    lines = data.draw(st.lists(_marlin if firmware == "marlin" else _grbl, max_size=40))
    line = data.draw(st.integers(0, len(lines)))
    try:
        pre = preamble(lines, line, firmware)
    except ResumeError:
        # Only refused where the next line would continue an arc with bare words.
        assume(False)
    for text in pre:
        assert clean_line(text, firmware=firmware) == text
    restored = _run(pre, firmware)
    _assert_same(restored, state_at(lines, line, firmware))


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(_marlin, max_size=30), data=st.data())
def test_resumed_run_ends_where_the_full_run_ends(lines: list[str], data: st.DataObject) -> None:
    """Preamble plus the rest of the file leaves the machine as the whole file does."""
    line = data.draw(st.integers(0, len(lines)))
    try:
        pre = preamble(lines, line, "marlin")
    except ResumeError:
        assume(False)
    _assert_same(_run(pre + lines[line:], "marlin"), _run(lines, "marlin"))


def test_marlin_preamble_heats_homes_xy_and_declares_z() -> None:
    lines = [
        "M140 S60",
        "M104 S215",
        "M190 S60",
        "M109 S215",
        "G28",
        "G90",
        "M83",
        "M106 S128",
        "G1 Z0.2 F720",
        "G1 X10 Y10 E1 F1500",
        "G1 Z0.4",
        "G1 X20 Y10 E1",
        "G1 X20 Y20 E1",
    ]
    pre = preamble(lines, 11, "marlin", head_z=0.4)
    assert pre.index("G92 Z0.4") < pre.index("G28 X Y")
    assert not any(line.startswith("G28") and "Z" in line for line in pre)
    assert pre.index("M190 S60") < pre.index("G0 X10 Y10 F3000") < pre.index("G0 Z0.4 F600")
    assert "M109 T0 S215" in pre and "M106 S128" in pre and "M83" in pre
    assert pre[-1] == "G1 F1500"


def test_grbl_preamble_spins_up_before_moving_and_plunges_last() -> None:
    lines = ["G21 G90 G55", "M3 S12000", "G0 Z5", "G0 X10 Y10", "G1 Z-1 F200", "G1 X30 F800"]
    pre = preamble(lines, 5, "grbl", spin_up=3)
    spindle = pre.index("M3 S12000")
    assert pre.index("G55") < pre.index("G0 Z5") < spindle
    assert pre[spindle + 1] == "G4 P3"
    assert pre.index("G0 X10 Y10") > spindle
    assert pre.index("G1 Z-1 F600") > pre.index("G0 X10 Y10")
    assert pre[-1] == "G1 F200"


def test_layers_from_heights_and_comments() -> None:
    lines = [
        "G28",
        "M83",
        "G1 Z0.2 F720",
        "G1 X10 Y10",  # travel
        "G1 X20 Y10 E1",  # layer 1 starts
        "G1 Z0.6",  # z-hop
        "G1 X0 Y0",
        "G1 Z0.2",
        "G1 X5 Y5 E1",  # same height: still layer 1
        "G1 Z0.4",
        "G1 X6 Y6 E1",  # layer 2
    ]
    layers = layer_index(lines, "marlin")
    assert [(la.number, la.line, la.z) for la in layers] == [(1, 4, 0.2), (2, 10, 0.4)]
    raw = ["M83", ";LAYER:0", "G1 X1 Y1 E1", ";LAYER:1", "G1 X2 Y1 E1"]
    assert [la.line for la in layer_index(raw, "marlin")] == [2, 4]


def test_grbl_layers_are_depth_passes() -> None:
    lines = ["M3 S1000", "G0 Z1", "G1 Z-1 F100", "G1 X10 F500", "G1 Z-2", "G1 X0", "M5"]
    assert [(la.line, la.z) for la in layer_index(lines, "grbl")] == [(3, -1.0), (5, -2.0)]


def test_inches_and_relative_modes_come_back_last() -> None:
    lines = ["G20", "G91", "G1 X1 Y1 F10", "M83"]
    pre = preamble(lines, 4, "marlin")
    assert pre[-4:] == ["G20", "G91", "M83", "G1 F10"]
    assert "G0 X25.4 Y25.4 F3000" in pre


def test_out_of_range_line_is_refused() -> None:
    with pytest.raises(ResumeError, match="outside the file"):
        preamble(["G1 X1"], 5, "marlin")


def test_bare_arc_continuation_is_refused() -> None:
    with pytest.raises(ResumeError, match="arc"):
        preamble(["G2 X1 Y1 I1 J0", "X2 Y0 I1 J0"], 1, "grbl")


def test_text_commands_and_garbage_change_nothing() -> None:
    st_ = _run(["M117 G91 M83", "$H", "hello", "G1 X1e5", "(comment) G91"], "marlin")
    assert not st_.relative and st_.e_mode == "follow"


@pytest.mark.parametrize("firmware", ["marlin", "grbl"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fast_path_agrees_with_the_general_one(firmware: Firmware, data: st.DataObject) -> None:
    """A leading space sends every line the general way; the state must not differ."""
    extra = st.sampled_from(["G1 X1E5", "G1 Xinf", "G1 X1_0", "G1 X1 X2", "G1 X1  Y2", "G1 X1 ;c"])
    lines = data.draw(st.lists(st.one_of(_marlin if firmware == "marlin" else _grbl, extra)))
    fast = ModalTracker(firmware)
    slow = ModalTracker(firmware)
    for line in lines:
        fast.feed(line)
        slow.feed(" " + line)
    assert fast.state == slow.state
    assert fast.layers == slow.layers


def test_head_height_is_the_lowest_of_the_last_moves() -> None:
    from gateway.machine.resume import head_height

    lines = ["G1 Z0.2", "G1 X1 E1", "G1 Z0.6", "G1 X5", "G1 Z0.2", "G1 X6 E1", "G1 Z0.8"]
    assert head_height(lines, 7, "marlin", window=3) == 0.2
    assert head_height(lines, 7, "marlin", window=1) == 0.8
    assert head_height(lines, 0, "marlin") == 0.0
