"""Commands from the outside world (web API, MQTT ``cmd/``, CLI) routed to the
service that owns them, with a reply.

Each capability registers the commands it answers (``pause``, ``lockout``...);
a caller awaits :meth:`CommandRouter.call` and gets a JSON-able result or a
:class:`CommandError` with a message a member or admin can act on.  The router
never lets a command turn the machine on: no capability registers such a
command, and :data:`FORBIDDEN` refuses the names anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

Origin = Literal["web", "kiosk", "mqtt", "cli", "internal"]
Handler = Callable[["CommandRequest"], Awaitable[dict[str, Any]]]

#: Names that would switch the machine on remotely; always refused.
FORBIDDEN = frozenset({"relay_on", "power_on", "unlock", "enable"})


class CommandError(Exception):
    """A command was refused or failed.  ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class CommandRequest:
    name: str
    args: dict[str, Any]
    origin: Origin
    actor: str = ""  # token name, member id, or "" when anonymous


class CommandRouter:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        if name in FORBIDDEN:
            raise ValueError(f"command {name!r} may never be registered")
        if name in self._handlers:
            raise ValueError(f"command {name!r} is registered twice")
        self._handlers[name] = handler

    def unregister(self, name: str) -> None:
        self._handlers.pop(name, None)

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def call(
        self,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        origin: Origin = "internal",
        actor: str = "",
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        handler = self._handlers.get(name)
        if handler is None:
            known = ", ".join(self.names) or "none"
            raise CommandError("unknown_command", f"unknown command {name!r} (known: {known})")
        try:
            async with asyncio.timeout(timeout):
                return await handler(CommandRequest(name, dict(args or {}), origin, actor))
        except TimeoutError as err:
            raise CommandError("timeout", f"command {name!r} got no answer in {timeout} s") from err
