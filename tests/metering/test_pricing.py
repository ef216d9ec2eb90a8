"""The price function: rules applied in order, money exact, never negative."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ConfigError, load_config
from gateway.metering.pricing import PriceRules, Usage, price

RULES = PriceRules(
    per_busy_minute=Decimal("0.05"),
    per_idle_minute=Decimal("0.01"),
    per_kwh=Decimal("0.40"),
    per_gram=Decimal("0.03"),
    minimum_charge=Decimal("0.50"),
    free_minutes={"trainer": 30},
    induction_free_minutes=15,
)

usages = st.builds(
    Usage,
    busy_seconds=st.floats(0, 48 * 3600),
    idle_seconds=st.floats(0, 48 * 3600),
    energy_wh=st.floats(0, 50_000),
    grams=st.floats(0, 5000),
)


def test_the_kiosk_example_adds_up() -> None:
    # 23 min busy, 0.14 kWh, 18 g: 1.15 + 0.056 + 0.54 = 1.746 -> 1.75
    q = price(Usage(23 * 60, 0, 140, 18), RULES)
    assert q.total == Decimal("1.75")
    assert q.text() == "€1.75"
    assert [line.label for line in q.lines] == ["busy_time", "energy", "material"]


def test_free_minutes_cover_busy_then_idle_but_not_energy() -> None:
    q = price(Usage(20 * 60, 20 * 60, 1000, 0), RULES, role="trainer")
    # 30 free minutes: all 20 busy, 10 of the idle; 10 idle min + 1 kWh are billed.
    assert q.free_minutes == pytest.approx(30)
    assert q.total == Decimal("0.50")  # 0.10 + 0.40 = 0.50 exactly the minimum


def test_induction_gets_its_free_minutes() -> None:
    plain = price(Usage(15 * 60, 0, 0, 0), RULES)
    inducted = price(Usage(15 * 60, 0, 0, 0), RULES, induction=True)
    assert plain.total == Decimal("0.75")
    assert inducted.total == Decimal("0.00")


def test_minimum_charge_only_for_a_session_that_cost_something() -> None:
    assert price(Usage(0, 0, 0, 0), RULES).total == Decimal(0)
    q = price(Usage(60, 0, 0, 0), RULES)
    assert q.total == Decimal("0.50")
    assert q.lines[-1].label == "minimum"


@given(usages, st.sampled_from([None, "user", "trainer", "maintainer"]), st.booleans())
def test_total_is_never_negative_and_in_cents(u: Usage, role: str | None, induction: bool) -> None:
    q = price(u, RULES, role=role, induction=induction)
    assert q.total >= 0
    assert q.total == q.total.quantize(Decimal("0.01"))
    assert q.total == 0 or q.total >= RULES.minimum_charge


@given(usages, st.floats(0, 3600), st.floats(0, 1000), st.floats(0, 100))
def test_using_more_never_costs_less(
    u: Usage, more_s: float, more_wh: float, more_g: float
) -> None:
    bigger = Usage(
        u.busy_seconds + more_s, u.idle_seconds + more_s, u.energy_wh + more_wh, u.grams + more_g
    )
    assert price(bigger, RULES).total >= price(u, RULES).total


@given(usages)
def test_free_minutes_never_raise_the_cost(u: Usage) -> None:
    assert price(u, RULES, role="trainer").total <= price(u, RULES, role="user").total


@pytest.mark.parametrize(
    ("prices", "key"),
    [
        ({"per_kwh": -0.4}, "metering.prices.per_kwh"),
        ({"per_gram": "lots"}, "metering.prices.per_gram"),
        ({"minimum_charge": 1e9}, "metering.prices.minimum_charge"),
        ({"currency": "euro"}, "metering.prices.currency"),
        ({"free_minutes": {"wizard": 10}}, "metering.prices.free_minutes"),
        ({"per_hour": 1}, "metering.prices.per_hour"),
    ],
)
def test_invalid_price_rules_stop_start_up_naming_the_key(
    prices: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, metering={"enabled": True, "prices": prices})
    assert key in str(err.value)


def test_prices_from_toml_floats_are_exact(tmp_path: object) -> None:
    cfg = load_config(None, metering={"prices": {"per_busy_minute": 0.05, "per_kwh": 0.4}})
    assert cfg.metering.prices.per_busy_minute == Decimal("0.05")
    assert cfg.metering.prices.per_kwh == Decimal("0.4")
