"""Usage accounting: busy and idle time, energy shared by overlap, grams by lines run."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.metering.usage import UsageBook, grams_per_mm


def book(**kw: object) -> UsageBook:
    return UsageBook(grams_per_mm=grams_per_mm(1.75, 1.24), **kw)  # type: ignore[arg-type]


def start(b: UsageBook, t: float, session: str = "s1") -> None:
    b.session_started(t, session_id=session, member_id="m-ada", member_name="Ada", role="user")


def test_a_session_with_one_job() -> None:
    b = book()
    start(b, 0.0)
    b.energy(0.0, 60.0, 0.5)
    b.job_started(60.0, job_id=7, file="cube.gcode", lines=1000, filament_mm=1000.0)
    b.energy(60.0, 300.0, 8.0)
    b.job_paused(300.0, job_id=7)
    b.job_paused(360.0, job_id=7, paused=False)
    b.energy(300.0, 660.0, 12.0)
    job = b.job_finished(660.0, job_id=7, outcome="cancelled", lines_done=500)
    assert job is not None
    assert job.busy_seconds == pytest.approx(540.0)
    assert job.energy_wh == pytest.approx(20.0)
    assert job.grams == pytest.approx(500 * grams_per_mm(1.75, 1.24))
    assert job.session_id == "s1" and job.member_id == "m-ada"
    s = b.session_ended(720.0, reason="badge_out")
    assert s is not None
    assert s.powered_seconds == pytest.approx(720.0)
    assert s.busy_seconds == pytest.approx(540.0)
    assert s.idle_seconds == pytest.approx(180.0)
    assert s.energy_wh == pytest.approx(20.5)
    assert s.grams == pytest.approx(job.grams)
    assert s.jobs == ((7, "cancelled"),)
    assert not s.estimated


def test_energy_before_the_session_is_not_billed_to_it() -> None:
    b = book()
    start(b, 30.0)
    b.energy(0.0, 60.0, 6.0)
    s = b.session_ended(60.0, reason="badge_out")
    assert s is not None and s.energy_wh == pytest.approx(3.0)


def test_an_estimated_interval_marks_the_session() -> None:
    b = book()
    start(b, 0.0)
    b.energy(0.0, 45.0, 1.0, estimated=True)
    s = b.session_ended(50.0, reason="badge_out")
    assert s is not None and s.estimated


def test_busy_from_power_for_machines_without_jobs() -> None:
    b = book(busy_source="power", busy_threshold_w=100.0)
    start(b, 0.0)
    b.energy(0.0, 60.0, 60.0 * 500 / 3600)  # 500 W: busy
    b.energy(60.0, 120.0, 60.0 * 20 / 3600)  # 20 W: idle
    s = b.session_ended(120.0, reason="badge_out")
    assert s is not None
    assert s.busy_seconds == pytest.approx(60.0)
    assert s.idle_seconds == pytest.approx(60.0)


def test_a_job_still_running_at_session_end_stays_open() -> None:
    b = book()
    start(b, 0.0)
    b.job_started(10.0, job_id=1, file="a.gcode", lines=10, filament_mm=None)
    s = b.session_ended(20.0, reason="idle_timeout")
    assert s is not None and s.jobs == ((1, "running"),)
    job = b.job_finished(30.0, job_id=1, outcome="completed", lines_done=10)
    assert job is not None and job.busy_seconds == pytest.approx(20.0)


events = st.lists(
    st.tuples(
        st.sampled_from(["start", "end", "job", "done", "pause", "resume", "energy"]),
        st.floats(0.0, 120.0),
        st.floats(0.0, 50.0),
    ),
    max_size=60,
)


@given(events)
def test_busy_never_exceeds_powered_and_nothing_is_negative(
    steps: list[tuple[str, float, float]],
) -> None:
    b = book()
    t = 0.0
    closed = []
    job_id = 0
    for kind, dt, wh in steps:
        t0, t = t, t + dt
        if kind == "start":
            start(b, t, f"s{t}")
        elif kind == "end":
            closed.append(b.session_ended(t, reason="badge_out"))
        elif kind == "job":
            job_id += 1
            b.job_started(t, job_id=job_id, file="f", lines=100, filament_mm=100.0)
        elif kind == "done":
            b.job_finished(t, job_id=job_id, outcome="completed", lines_done=100)
        elif kind in ("pause", "resume"):
            b.job_paused(t, job_id=job_id, paused=kind == "pause")
        else:
            b.energy(t0, t, wh)
    closed.append(b.session_ended(t + 1, reason="shutdown"))
    for s in closed:
        if s is None:
            continue
        assert 0 <= s.busy_seconds <= s.powered_seconds + 1e-9
        assert s.energy_wh >= 0 and s.grams >= 0
        assert s.idle_seconds >= 0


@given(st.floats(1.0, 100.0), st.floats(0.0, 500.0), st.floats(0.01, 0.99))
def test_splitting_an_interval_at_a_session_end_bills_only_its_part(
    length: float, wh: float, end_frac: float
) -> None:
    """What the service does with the reading taken when a session ends."""
    b = book()
    start(b, 0.0)
    t_end = length * end_frac
    b.energy(0.0, t_end, wh * end_frac)
    s = b.session_ended(t_end, reason="badge_out")
    b.energy(t_end, length, wh * (1 - end_frac))
    assert s is not None
    assert s.energy_wh == pytest.approx(wh * end_frac)
    assert b.current_session() is None
