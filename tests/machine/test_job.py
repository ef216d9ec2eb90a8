import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.machine.job import TERMINAL, TRANSITIONS, Job, JobAction, JobState, JobStateError


def make() -> Job:
    return Job(id=1, file="a.gcode", lines_total=100, bytes_total=1000, estimated_seconds=100.0)


def test_happy_path_and_elapsed_excludes_pauses() -> None:
    job = make()
    job.apply(JobAction.START, now=1000.0, mono=0.0)
    job.apply(JobAction.PAUSE, now=1010.0, mono=10.0)
    assert job.elapsed(30.0) == 10.0
    job.apply(JobAction.RESUME, now=1030.0, mono=30.0)
    job.lines_done = 100
    job.apply(JobAction.FINISH, now=1045.0, mono=45.0)
    assert job.state is JobState.FINISHING and not job.finished
    job.apply(JobAction.COMPLETE, now=1050.0, mono=50.0)
    assert job.state is JobState.COMPLETED
    assert job.elapsed(999.0) == 30.0
    assert job.eta(60.0) == 0.0


def test_a_job_completes_only_through_finishing() -> None:
    """The last ``ok`` only means the last move was planned: completion waits."""
    job = make()
    job.apply(JobAction.START, now=0, mono=0)
    with pytest.raises(JobStateError, match="running"):
        job.apply(JobAction.COMPLETE, now=1, mono=1)
    job.apply(JobAction.FINISH, now=1, mono=1)
    with pytest.raises(JobStateError, match="finishing"):
        job.apply(JobAction.PAUSE, now=2, mono=2)
    assert job.ended_at is None
    job.apply(JobAction.CANCEL, now=3, mono=3)
    assert job.state is JobState.CANCELLED


def test_terminal_states_never_change() -> None:
    job = make()
    job.apply(JobAction.START, now=0, mono=0)
    job.apply(JobAction.FAIL, now=1, mono=1, reason="port unplugged")
    for action in JobAction:
        with pytest.raises(JobStateError, match="failed"):
            job.apply(action, now=2, mono=2)
    assert job.reason == "port unplugged"


def test_eta_scales_the_estimate_by_the_observed_pace() -> None:
    job = make()
    job.apply(JobAction.START, now=0, mono=0)
    job.lines_done = 50
    # half done in 100 s where the estimate said 50 s: the machine runs at half speed.
    assert job.eta(100.0) == pytest.approx(100.0)
    assert job.eta(2.0) == pytest.approx(50.0)


def test_eta_without_estimate_uses_line_rate() -> None:
    job = Job(id=1, file="a", lines_total=100, bytes_total=1)
    job.apply(JobAction.START, now=0, mono=0)
    assert job.eta(1.0) is None
    job.lines_done = 25
    assert job.eta(10.0) == pytest.approx(30.0)


@given(st.lists(st.sampled_from(list(JobAction)), max_size=20))
def test_any_action_sequence_follows_the_table(actions: list[JobAction]) -> None:
    job = make()
    t = 0.0
    for action in actions:
        before = job.state
        t += 1
        if (before, action) in TRANSITIONS:
            job.apply(action, now=t, mono=t)
            assert job.state is TRANSITIONS[(before, action)]
        else:
            with pytest.raises(JobStateError):
                job.apply(action, now=t, mono=t)
            assert job.state is before
        if job.state in TERMINAL:
            assert job.ended_at is not None
        if job.state is JobState.COMPLETED:
            assert (JobState.RUNNING, JobState.FINISHING) in job.history
        assert 0.0 <= job.elapsed(t) <= t
