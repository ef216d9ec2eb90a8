"""The ledger tests' real Mosquitto (tests/ledger/conftest.py), for the MQTT meters."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "ledger_broker_fixtures", Path(__file__).resolve().parents[1] / "ledger" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures
_spec.loader.exec_module(_fixtures)

broker = _fixtures.broker
