"""Who is calling, and may they: bearer tokens, the kiosk, the failed-auth limit.

A request with ``Authorization: Bearer <token>`` is that token's, whatever its
address.  A request without one from an address in ``web.kiosk_addresses``,
naming the gateway by IP address or ``localhost``, is the kiosk (the Pi's own
touchscreen): it may read what the screen shows, act on the machine only while a
member's badge session is open (always, when access control is off), stop the
machine at any time, and nothing an admin does; its writes must come from the
gateway's own pages (``Origin``).  Anything else without a token gets 401.

Every route declares what it needs with :func:`allow`::

    caller: Annotated[Caller, Depends(allow(Scope.OPERATE, kiosk="session"))]
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from gateway.commands import Origin
from gateway.web.auth import Scope
from gateway.web.context import WebContext
from gateway.web.errors import ApiError

#: What the kiosk may do on a route: nothing, always, or only during a badge session.
KioskRule = Literal["never", "always", "session"]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A token from `gateway token create --name NAME --scope read|operate|admin`.",
)


@dataclass(frozen=True, slots=True)
class Caller:
    kind: Literal["token", "kiosk"]
    name: str  # the token's name, or "kiosk"
    scope: Scope | None  # None for the kiosk
    address: str

    @property
    def origin(self) -> Origin:
        return "kiosk" if self.kind == "kiosk" else "web"

    @property
    def actor(self) -> str:
        return "kiosk" if self.kind == "kiosk" else f"token:{self.name}"


def web(conn: HTTPConnection) -> WebContext:
    ctx = conn.app.state.web
    assert isinstance(ctx, WebContext)
    return ctx


def _refused(ctx: WebContext, address: str, now: float, message: str) -> ApiError:
    ctx.auth_limit.failed(address, now)
    ctx.metrics.auth_failures.inc()
    return ApiError(
        401, "unauthorised", message, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


async def identify(request: Request) -> Caller | None:
    """The caller, None for an anonymous non-kiosk request; raises 401/429 on a bad token."""
    ctx = web(request)
    address = request.client.host if request.client else ""
    header = request.headers.get("authorization")
    if header is None:
        return Caller("kiosk", "kiosk", None, address) if ctx.is_kiosk(request) else None
    now = time.monotonic()
    wait = ctx.auth_limit.retry_after(address, now)
    if wait is not None:
        raise ApiError(
            429,
            "too_many_failures",
            f"too many refused tokens from {address}; try again in {math.ceil(wait)} s",
            {"Retry-After": str(math.ceil(wait))},
        )
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise _refused(ctx, address, now, "send the token as 'Authorization: Bearer <token>'")
    record = await ctx.find_token(secret)
    if record is None:
        raise _refused(
            ctx,
            address,
            now,
            "the token is not valid or was revoked; create one with `gateway token create`",
        )
    return Caller("token", record.name, record.scope, address)


def _same_origin(request: Request) -> None:
    """The kiosk acts by its address alone, so a page from elsewhere must not act for it."""
    origin = request.headers.get("origin")
    if request.method in ("GET", "HEAD") or origin is None:
        return
    if urlsplit(origin).netloc != request.headers.get("host", ""):
        raise ApiError(403, "cross_origin", "requests from other web pages are refused")


def allow(scope: Scope, *, kiosk: KioskRule = "never") -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting tokens of ``scope`` or higher, and the kiosk per ``kiosk``."""

    async def dependency(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Caller:
        caller = await identify(request)
        if caller is None:
            raise ApiError(
                401,
                "unauthorised",
                "this needs a token: send 'Authorization: Bearer <token>' "
                "(an admin creates one with `gateway token create`)",
                {"WWW-Authenticate": "Bearer"},
            )
        if caller.kind == "kiosk":
            _same_origin(request)
            if kiosk == "never":
                raise ApiError(
                    403,
                    "not_from_kiosk",
                    "the touchscreen cannot do this; use the admin page with a token",
                )
            if kiosk == "session" and not web(request).session_open():
                raise ApiError(403, "no_session", "Badge in at the machine first.")
        elif caller.scope is None or caller.scope < scope:
            have = caller.scope.label if caller.scope is not None else "none"
            raise ApiError(
                403,
                "insufficient_scope",
                f"this needs a token with the {scope.label} scope; "
                f"token {caller.name!r} has {have}",
            )
        return caller

    return dependency
