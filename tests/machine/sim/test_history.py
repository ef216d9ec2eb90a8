"""A simulated controller inside the daemon forgets old history so its memory stays flat."""

from __future__ import annotations

from gateway.machine.sim.grbl import SimulatedGrbl
from gateway.machine.sim.marlin import SimulatedMarlin


def test_grbl_keeps_the_latest_lines_reports_and_realtime_bytes() -> None:
    fw = SimulatedGrbl()
    fw.power_on(0.0)
    for i in range(20):
        fw.receive(f"G0X{i}\n".encode() + b"?", float(i))
        fw.tick(float(i))
        fw.output()
    assert len(fw.executed) == 20 and len(fw.reports) == 20 and len(fw.realtime) == 20
    fw.forget_history(5)
    assert fw.executed == [f"G0X{i}" for i in range(15, 20)]
    assert len(fw.reports) == 5 and fw.realtime == [ord("?")] * 5
    # It goes on recording after the cut.
    fw.receive(b"G0X99\n", 30.0)
    fw.tick(30.0)
    assert fw.executed[-1] == "G0X99" and len(fw.executed) == 6


def test_marlin_keeps_the_latest_lines_in_order() -> None:
    fw = SimulatedMarlin()
    fw.power_on(0.0)
    for i in range(10):
        fw.receive(f"G1 X{i}\n".encode(), float(i))
        fw.tick(float(i) + 0.5)
        fw.output()
    executed = fw.executed[:]
    fw.forget_history(3)
    assert fw.executed == executed[-3:]
    fw.forget_history(100)
    assert fw.executed == executed[-3:]
