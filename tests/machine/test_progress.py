"""Progress and time left from executed lines (gateway/machine/progress.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.machine.progress import ProgressClock, TimeProfile, profile_lines


def test_the_profile_weighs_lines_by_their_time() -> None:
    lines = ["G21", "G90", "G1 X0 Y0 F6000"]
    lines += [f"G1 X{i % 2} Y0 F6000" for i in range(100)]  # 1 mm zig-zags
    lines += ["G1 X200 Y0 F600", "G1 X0 Y0 F600"]  # two 20 s moves
    profile = profile_lines(lines, len(lines), marks=500)
    assert profile.total > 40.0
    short = profile.seconds_at(103)
    assert short < 0.25 * profile.total  # 100 lines, little time
    assert profile.seconds_at(len(lines)) == profile.total
    assert profile.line_at(profile.total / 2) > 100


def test_a_stall_is_left_out_of_the_pace() -> None:
    """A heat-up at the start takes minutes the model cannot know: once the
    machine moves, the time left follows the motion, not the wait."""
    profile = TimeProfile(step=1, marks=tuple(float(i) for i in range(101)), lines=100)
    clock = ProgressClock(100, 100.0, profile)
    clock.update(1, 0.0)
    clock.update(1, 120.0)  # heating: nothing moves for two minutes
    assert clock.eta(121.0) == pytest.approx(99.0 - 1.0, abs=1.1)  # holds, counts no further
    for line in range(2, 30):
        clock.update(line, 120.0 + 2.0 * (line - 1))  # then two seconds a line
    eta = clock.eta(176.0)
    assert eta is not None and eta == pytest.approx(2.0 * 71, rel=0.1)


@given(
    steps=st.lists(
        st.tuples(st.integers(-5, 20), st.floats(0.0, 10.0, allow_nan=False)), max_size=60
    )
)
def test_progress_never_goes_backwards(steps: list[tuple[int, float]]) -> None:
    profile = profile_lines(
        [f"G1 X{i} Y{i % 3} F3000" for i in range(200)], 200, marks=37
    )
    clock = ProgressClock(200, profile.total, profile)
    line, t, last = 0, 0.0, 0.0
    for delta, dt in steps:
        line += delta  # the estimate of the executed line may wobble back
        t += dt
        clock.update(line, t)
        fraction = clock.fraction()
        assert last <= fraction <= 1.0
        last = fraction
        eta = clock.eta(t)
        assert eta is None or eta >= 0.0
    clock.finish()
    assert clock.fraction() == 1.0 and clock.eta(t) == 0.0


def test_a_late_profile_keeps_the_observed_pace() -> None:
    """The profile is built while the job runs; its arrival must not throw the
    time left back to the model's unpaced figure."""
    profile = TimeProfile(step=1, marks=tuple(float(i) for i in range(101)), lines=100)
    clock = ProgressClock(100, 100.0)
    for line in range(0, 21):
        clock.update(line, 0.25 * line)  # four lines a second: pace 0.25
    before = clock.eta(5.0)
    clock.use_profile(profile)
    after = clock.eta(5.0)
    assert before is not None and after is not None
    assert after == pytest.approx(before, rel=0.1)
