"""Structured journald fields for the daemon's log records."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.ops.journal import JournalHandler, fields, use_journal_if_available


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved = list(root.handlers)
    yield
    root.handlers[:] = saved


def test_records_carry_machine_service_and_event() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    handler = JournalHandler(lambda message, **f: sent.append((message, f)), "laser-1")
    log = logging.getLogger("gateway.access.service")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.warning("relay on (badge)", extra={"event": "relay_on"})
    finally:
        log.removeHandler(handler)
    message, f = sent[0]
    assert message == "gateway.access.service: relay on (badge)"
    assert f["MACHINE_ID"] == "laser-1"
    assert f["SERVICE"] == "access"
    assert f["EVENT"] == "relay_on"
    assert f["PRIORITY"] == 4
    assert f["SYSLOG_IDENTIFIER"] == "gateway"


def test_fields_without_event() -> None:
    record = logging.LogRecord("uvicorn.error", logging.ERROR, "x.py", 1, "boom", None, None)
    f = fields(record, "m")
    assert f["SERVICE"] == "uvicorn" and f["PRIORITY"] == 3 and "EVENT" not in f


def test_journal_is_used_only_under_systemd(root_handlers: None) -> None:
    sent: list[str] = []

    def send(message: str, **_: Any) -> None:
        sent.append(message)

    assert not use_journal_if_available("m", {}, send=send)
    assert use_journal_if_available("m", {"JOURNAL_STREAM": "8:1234"}, send=send)
    logging.getLogger("gateway.machine").warning("port lost")
    assert sent == ["gateway.machine: port lost"]
