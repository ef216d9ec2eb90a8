"""Logging to journald with structured fields when running under systemd.

systemd sets ``$JOURNAL_STREAM`` when standard error is connected to the
journal.  Then, if the ``systemd`` Python bindings (Debian's ``python3-systemd``,
visible to a venv made with ``--system-site-packages``) can be imported, each
record is sent with fields an admin can filter on::

    journalctl -u gateway GATEWAY_SERVICE=access
    journalctl -u gateway EVENT=relay_on

``MACHINE_ID`` is the gateway's machine id from the config (journald's own
machine id is the separate trusted field ``_MACHINE_ID``), ``SERVICE`` is the
capability that logged (the second part of the logger name: ``access``,
``machine``...), ``EVENT`` comes from ``log.info(..., extra={"event": "relay_on"})``.
Without the bindings, plain lines on standard error reach the journal anyway.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

Send = Callable[..., None]

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def journal_send() -> Send | None:
    """``systemd.journal.send`` if the bindings are installed, else None."""
    try:
        journal = importlib.import_module("systemd.journal")
    except ImportError:
        return None
    send: Send | None = getattr(journal, "send", None)
    return send


def fields(record: logging.LogRecord, machine_id: str) -> dict[str, Any]:
    """The journal fields of one record (without MESSAGE)."""
    parts = record.name.split(".")
    service = parts[1] if len(parts) > 1 and parts[0] == "gateway" else parts[0]
    out: dict[str, Any] = {
        "PRIORITY": _PRIORITY.get(record.levelno, 6),
        "SYSLOG_IDENTIFIER": "gateway",
        "MACHINE_ID": machine_id,
        "SERVICE": service,
        "LOGGER": record.name,
        "CODE_FILE": record.pathname,
        "CODE_LINE": record.lineno,
        "CODE_FUNC": record.funcName,
    }
    event = getattr(record, "event", None)
    if event:
        out["EVENT"] = str(event)
    return out


class JournalHandler(logging.Handler):
    """Sends each record to journald through ``send`` (``systemd.journal.send``)."""

    def __init__(self, send: Send, machine_id: str) -> None:
        super().__init__()
        self._send = send
        self.machine_id = machine_id
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self._send(message, **fields(record, self.machine_id))
        except Exception:
            self.handleError(record)


def use_journal_if_available(
    machine_id: str,
    environ: Mapping[str, str],
    *,
    send: Send | None = None,
) -> bool:
    """Replace the root logger's handlers with a :class:`JournalHandler` when
    standard error is the journal and the bindings are there; True if it did."""
    if not environ.get("JOURNAL_STREAM"):
        return False
    send = send or journal_send()
    if send is None:
        # journald still records every line on stderr; drop the timestamp it adds itself.
        for handler in logging.getLogger().handlers:
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        return False
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(JournalHandler(send, machine_id))
    return True
