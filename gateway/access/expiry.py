"""Induction expiry (pure: the time is passed in).

Per machine (``[access.policy.expiry]``) an induction lapses:

- ``never`` (the default);
- ``duration``: ``days`` after ``inducted_at``;
- ``date``: on ``date``, for every induction made before it (a new machine, a
  changed procedure);
- ``disuse``: ``days`` after the member's last session on this machine, taken
  as the later of the access list's ``last_used``, the last session recorded
  by this gateway and ``inducted_at``.

An induction whose date the rule needs is unknown counts as lapsed, with a
message saying so: a rule the gateway cannot check is not silently ignored.
Trainers' and maintainers' access never lapses (they renew others' inductions
and repair the machine).  Within
``warn_days`` of the lapse the kiosk says so at badge-in, and admins see the
member in the "about to lapse" list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from gateway.access.members import Induction
from gateway.access.policy_config import ExpiryConfig


@dataclass(frozen=True, slots=True)
class Verdict:
    """``lapses_at`` is None for an induction that never lapses."""

    lapsed: bool
    lapses_at: datetime | None
    unknown: bool = False

    def days_left(self, now: datetime) -> int | None:
        if self.lapses_at is None:
            return None
        return max(0, (self.lapses_at - now).days)


NEVER = Verdict(False, None)


def _latest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def evaluate(
    cfg: ExpiryConfig, induction: Induction, last_used: datetime | None, now: datetime
) -> Verdict:
    """Has the induction lapsed at ``now``, and when does (or did) it lapse?"""
    match cfg.rule:
        case "never":
            return NEVER
        case "duration":
            assert cfg.days is not None
            if induction.inducted_at is None:
                return Verdict(True, None, unknown=True)
            at = induction.inducted_at + timedelta(days=cfg.days)
        case "date":
            assert cfg.date is not None
            at = datetime.combine(cfg.date, time(0), tzinfo=UTC)
            if induction.inducted_at is not None and induction.inducted_at >= at:
                return NEVER
        case "disuse":
            assert cfg.days is not None
            ref = _latest(induction.last_used, last_used, induction.inducted_at)
            if ref is None:
                return Verdict(True, None, unknown=True)
            at = ref + timedelta(days=cfg.days)
    return Verdict(now >= at, at)


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def denial(cfg: ExpiryConfig, verdict: Verdict, member_name: str, machine: str) -> str:
    """What the member reads when refused for a lapsed induction."""
    if verdict.unknown:
        why = (
            "no induction date is on record"
            if cfg.rule == "duration"
            else "no session or induction date is on record"
        )
        return f"{member_name}, your {machine} induction cannot be checked ({why}). Ask a trainer."
    assert verdict.lapses_at is not None
    match cfg.rule:
        case "disuse":
            why = f"{cfg.days} days without a session"
        case "duration":
            why = f"inductions last {cfg.days} days"
        case _:
            why = "inductions made before then ended"
    return (
        f"{member_name}, your {machine} induction lapsed on {_day(verdict.lapses_at)} "
        f"({why}). Ask a trainer to renew it."
    )


def notice(cfg: ExpiryConfig, verdict: Verdict, machine: str, now: datetime) -> str | None:
    """The warning shown at badge-in within ``warn_days`` of the lapse, else None."""
    days = verdict.days_left(now)
    if verdict.lapsed or days is None or days > cfg.warn_days:
        return None
    when = "today" if days == 0 else "in 1 day" if days == 1 else f"in {days} days"
    if cfg.rule == "disuse":
        return f"Your {machine} induction lapses {when} unless you use it."
    assert verdict.lapses_at is not None
    return (
        f"Your {machine} induction lapses {when} ({_day(verdict.lapses_at)}). "
        "Ask a trainer to renew it."
    )
