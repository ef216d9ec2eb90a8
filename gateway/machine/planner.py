"""The motion planner model behind the analysis' duration estimate (pure).

Marlin and GRBL share it: each move is a trapezoid (accelerate, cruise,
decelerate), the speed through a corner is limited by junction deviation,
and the planner looks ahead :data:`PLANNER_BLOCKS` moves, the last of which
must be able to stop.  :mod:`gateway.machine.analysis` describes the model;
its fast loop inlines :meth:`Planner.add` and keeps to the same arithmetic.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["PLANNER_BLOCKS", "Planner"]

PLANNER_BLOCKS = 16  # Marlin BLOCK_BUFFER_SIZE and GRBL's planner default


class Planner:
    """Time of a sequence of moves under a look-ahead trapezoid planner.

    Blocks are ``[length, nominal², max_entry², entry²]`` (speeds in mm/s).
    Each new block may have to stop at its end; a reverse pass raises the
    entry speeds of earlier blocks as far as their junctions and the distance
    to brake allow.  The oldest block is executed once more than
    :data:`PLANNER_BLOCKS` wait, which fixes the entry speed of the next one.
    """

    __slots__ = ("accel", "blocks", "jd_accel", "prev", "prev_nominal_sq", "seconds", "two_accel")

    def __init__(self, acceleration: float, junction_deviation: float) -> None:
        self.accel = acceleration
        self.two_accel = 2.0 * acceleration
        self.jd_accel = acceleration * junction_deviation
        self.blocks: deque[list[float]] = deque()
        self.prev: tuple[float, float, float] | None = None  # exit direction of the last block
        self.prev_nominal_sq = 0.0
        self.seconds = 0.0

    def add(
        self,
        length: float,
        nominal_sq: float,
        entry_dir: tuple[float, float, float],
        exit_dir: tuple[float, float, float],
    ) -> None:
        prev = self.prev
        if prev is None:
            max_entry_sq = 0.0
        else:
            # Junction deviation as in Marlin's planner.cpp / GRBL's planner.c.
            cos_theta = -(prev[0] * entry_dir[0] + prev[1] * entry_dir[1] + prev[2] * entry_dir[2])
            if cos_theta > 0.999999:
                max_entry_sq = 0.0
            else:
                if cos_theta < -0.999999:
                    cos_theta = -0.999999
                sin_half = math.sqrt(0.5 * (1.0 - cos_theta))
                max_entry_sq = self.jd_accel * sin_half / (1.0 - sin_half)
            if max_entry_sq > nominal_sq:
                max_entry_sq = nominal_sq
            if max_entry_sq > self.prev_nominal_sq:
                max_entry_sq = self.prev_nominal_sq
        two_accel = self.two_accel
        brake_sq = two_accel * length
        blocks = self.blocks
        first_entry_sq = brake_sq if brake_sq < max_entry_sq else max_entry_sq
        blocks.append([length, nominal_sq, max_entry_sq, first_entry_sq])
        self.prev = exit_dir
        self.prev_nominal_sq = nominal_sq
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
            self._execute_oldest()

    def add_alone(self, length: float, nominal_sq: float) -> None:
        """A move that starts and ends at rest (extruder-only, homing)."""
        self.stop()
        self.blocks.append([length, nominal_sq, 0.0, 0.0])
        self.stop()

    def stop(self) -> None:
        """Run every waiting block and come to rest."""
        while self.blocks:
            self._execute_oldest()
        self.prev = None

    def _execute_oldest(self) -> None:
        blocks = self.blocks
        length, nominal_sq, _, entry_sq = blocks.popleft()
        if blocks:
            following = blocks[0]
            exit_sq = entry_sq + self.two_accel * length
            if following[3] < exit_sq:
                exit_sq = following[3]
            following[2] = following[3] = exit_sq  # now fixed
        else:
            exit_sq = 0.0
        accel = self.accel
        v_in = math.sqrt(entry_sq)
        v_out = math.sqrt(exit_sq)
        accel_mm = (nominal_sq - entry_sq) / self.two_accel
        decel_mm = (nominal_sq - exit_sq) / self.two_accel
        if accel_mm + decel_mm <= length:
            v_nom = math.sqrt(nominal_sq)
            self.seconds += (2.0 * v_nom - v_in - v_out) / accel + (
                length - accel_mm - decel_mm
            ) / v_nom
        else:
            v_peak = math.sqrt(0.5 * (self.two_accel * length + entry_sq + exit_sq))
            self.seconds += (2.0 * v_peak - v_in - v_out) / accel
