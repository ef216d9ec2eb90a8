"""Cancelling child tasks without swallowing our own cancellation.

``with suppress(CancelledError): await child`` after ``child.cancel()`` also
swallows a cancellation aimed at the *awaiting* task if it arrives meanwhile,
and a supervisor's shutdown then waits forever.  :func:`cancel_and_wait` uses
:func:`asyncio.wait`, which never raises for the children's outcomes but lets a
cancellation of the caller through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(
    tasks: Iterable[asyncio.Future[Any]],
    timeout: float | None = None,
) -> bool:
    """Cancel ``tasks`` and wait for them to finish; True if all did within ``timeout``."""
    pending = {t for t in tasks if not t.done()}
    for t in pending:
        t.cancel()
    done: set[asyncio.Future[Any]] = set()
    if pending:
        done, pending = await asyncio.wait(pending, timeout=timeout)
    for t in done:
        if not t.cancelled() and (exc := t.exception()) is not None:
            log.debug("task ended with %r while being cancelled", exc)
    return not pending
