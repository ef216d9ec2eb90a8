"""Induction levels (tiers) on one machine, lowest first (pure).

A member's level comes from their access list entry for the machine; a plain
role string (``"user"``) means the configured ``default_level``, and a trainer
or maintainer role is at least the highest level.  A level marked
``supervised`` admits a member only while someone at the first unsupervised
level or above is present (:mod:`gateway.access.presence_feed`).
"""

from __future__ import annotations

from gateway.access.members import Role
from gateway.access.policy_config import PolicyConfig


class Tiers:
    """The ordered levels of :class:`PolicyConfig`, with ranks from 1 (lowest)."""

    __slots__ = ("_rank", "_supervised", "default", "highest", "names", "supervisor_rank")

    def __init__(self, policy: PolicyConfig) -> None:
        self.names: tuple[str, ...] = tuple(lv.name for lv in policy.levels)
        self._rank = {name: i + 1 for i, name in enumerate(self.names)}
        self._supervised = frozenset(lv.name for lv in policy.levels if lv.supervised)
        self.default = policy.default_level
        self.highest = self.names[-1]
        # The first unsupervised level; the config validator guarantees one exists
        # above every supervised level.
        unsupervised = [i + 1 for i, lv in enumerate(policy.levels) if not lv.supervised]
        self.supervisor_rank = unsupervised[0] if unsupervised else len(self.names) + 1

    def known(self, level: str) -> bool:
        return level in self._rank

    def rank(self, level: str) -> int:
        """1 for the lowest level; 0 for a level this machine does not define."""
        return self._rank.get(level, 0)

    def level_of(self, role: Role, explicit: str | None) -> str:
        """The member's effective level from their role and the list's level, if any.

        A level this machine does not define (given under the ``"*"`` wildcard for
        machines with other levels) counts as the lowest: never more than meant."""
        if role >= Role.TRAINER:
            return self.highest
        if explicit is None:
            return self.default
        return explicit if explicit in self._rank else self.names[0]

    def needs_supervision(self, level: str) -> bool:
        return level in self._supervised

    def can_supervise(self, level: str) -> bool:
        return self.rank(level) >= self.supervisor_rank
