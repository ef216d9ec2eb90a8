"""The energy integrator: trapezoids, gaps marked estimated, counter resets and wraps."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.metering.integrator import EnergyIntegrator, Sample


def test_constant_power_integrates_exactly_and_agrees_with_the_counter() -> None:
    integ = EnergyIntegrator()
    wh = 0.0
    for i in range(0, 3601):
        wh = 100.0 * i / 3600.0
        integ.add(Sample(float(i), 100.0, math.floor(wh)))
    assert integ.total_wh == pytest.approx(100.0)
    assert integ.stats.estimated_intervals == 0
    assert not integ.mismatch


def test_a_gap_longer_than_30_s_is_estimated_from_the_counter() -> None:
    integ = EnergyIntegrator()
    integ.add(Sample(0.0, 100.0, 1000.0))
    for _ in range(20):
        integ.failed("timeout")
    iv = integ.add(Sample(60.0, 100.0, 1010.0))
    assert iv is not None and iv.estimated and iv.reason == "gap"
    assert iv.wh == pytest.approx(10.0)  # what the meter counted, not 60 s of 100 W
    assert integ.stats.failures == {"timeout": 20}


def test_a_gap_without_a_counter_is_interpolated_and_marked() -> None:
    integ = EnergyIntegrator()
    integ.add(Sample(0.0, 100.0))
    iv = integ.add(Sample(40.0, 200.0))
    assert iv is not None and iv.estimated
    assert iv.wh == pytest.approx(150.0 * 40 / 3600)


def test_a_failed_read_inside_a_short_interval_marks_it() -> None:
    integ = EnergyIntegrator()
    integ.add(Sample(0.0, 50.0, 0.0))
    integ.failed("crc")
    iv = integ.add(Sample(4.0, 50.0, 0.0))
    assert iv is not None and iv.estimated and iv.reason == "read_failed"
    ok = integ.add(Sample(6.0, 50.0, 0.0))
    assert ok is not None and not ok.estimated


def test_counter_reset_is_counted_and_power_still_integrates() -> None:
    integ = EnergyIntegrator()
    integ.add(Sample(0.0, 360.0, 5000.0))
    iv = integ.add(Sample(10.0, 360.0, 0.0))
    assert iv is not None and iv.estimated and iv.reason == "counter_reset"
    assert iv.wh == pytest.approx(1.0)
    assert integ.stats.resets == 1


def test_counter_wrap_is_taken_across_the_top() -> None:
    integ = EnergyIntegrator(counter_wrap_wh=2**32)
    integ.add(Sample(0.0, 3600.0, 2**32 - 1.0))
    iv = integ.add(Sample(40.0, 3600.0, 39.0))
    assert iv is not None and iv.reason == "gap"
    assert iv.wh == pytest.approx(40.0)
    assert integ.stats.wraps == 1


@pytest.mark.parametrize("power", [-5.0, float("nan"), float("inf"), 1e9])
def test_absurd_readings_are_rejected_and_mark_the_interval(power: float) -> None:
    integ = EnergyIntegrator(max_power_w=3680)
    integ.add(Sample(0.0, 100.0))
    assert integ.add(Sample(1.0, power)) is None
    iv = integ.add(Sample(2.0, 100.0))
    assert iv is not None and iv.estimated and iv.reason == "rejected"
    assert integ.stats.rejected == 1


samples = st.lists(
    st.tuples(st.floats(0.01, 60.0), st.floats(0.0, 3000.0), st.booleans()), min_size=2, max_size=80
)


@given(samples)
def test_energy_is_never_negative_and_sums_its_intervals(
    steps: list[tuple[float, float, bool]],
) -> None:
    integ = EnergyIntegrator()
    t, total, counter = 0.0, 0.0, 0.0
    for dt, power, fail in steps:
        t += dt
        counter += power * dt / 3600.0
        if fail:
            integ.failed("timeout")
            continue
        iv = integ.add(Sample(t, power, math.floor(counter)))
        if iv is not None:
            assert iv.wh >= 0
            assert iv.estimated == (iv.reason is not None)
            if iv.seconds > 30.0:
                assert iv.estimated
            total += iv.wh
    assert integ.total_wh == pytest.approx(total)


@given(st.lists(st.floats(1.0, 3000.0), min_size=2, max_size=200))
def test_without_gaps_the_result_is_the_trapezoid_rule(powers: list[float]) -> None:
    integ = EnergyIntegrator()
    for i, p in enumerate(powers):
        integ.add(Sample(float(i), p))
    expected = sum((a + b) / 2 for a, b in itertools.pairwise(powers)) / 3600
    assert integ.total_wh == pytest.approx(expected)
    assert integ.stats.estimated_intervals == 0
