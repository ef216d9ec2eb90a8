"""``gateway sessions export``: session records and usage totals as CSV.

The lead's CLI parses the arguments and calls :func:`sessions_export`; it reads
the daemon's database directly (WAL mode lets it do so while the daemon runs).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TextIO

from gateway.access.store import export_sessions_csv, usage_csv


def sessions_export(
    db_path: Path, out: TextIO, *, since: datetime | None, until: datetime | None, usage: bool
) -> int:
    """Write the sessions started in ``[since, until)`` to ``out`` as CSV, or with
    ``usage`` the totals per member and machine over them; returns the data rows written.

    Naive datetimes are taken as UTC; the CSV's times are ISO 8601 in UTC.

    Raises :class:`~gateway.access.store.AccessStoreError` if the database is missing.
    """
    if since is not None and until is not None and until <= since:
        raise ValueError("--until must be later than --since")
    if usage:
        return usage_csv(db_path, out, since=since, until=until)
    return export_sessions_csv(db_path, out, since=since, until=until)
