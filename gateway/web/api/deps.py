"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.web.auth import Scope
from gateway.web.context import WebContext
from gateway.web.errors import ApiError, responses
from gateway.web.guard import Caller, allow, web


def context(request: Request) -> WebContext:
    return web(request)


Web = Annotated[WebContext, Depends(context)]

#: Readers: any token; the kiosk too.
Reader = Annotated[Caller, Depends(allow(Scope.READ, kiosk="always"))]
#: Reports and records: any token; not the kiosk.
Reporter = Annotated[Caller, Depends(allow(Scope.READ))]
#: Acting on the machine: operate tokens; the kiosk during a badge session.
Operator = Annotated[Caller, Depends(allow(Scope.OPERATE, kiosk="session"))]
#: Stopping the machine (and, in simulation, presenting a badge): operate tokens; the
#: kiosk always.
Stopper = Annotated[Caller, Depends(allow(Scope.OPERATE, kiosk="always"))]
#: Managing files: operate tokens only.
Manager = Annotated[Caller, Depends(allow(Scope.OPERATE))]
#: Lockouts, access lists and tokens: admin tokens only.
Admin = Annotated[Caller, Depends(allow(Scope.ADMIN))]

#: Statuses every route may answer (400: a body that is not UTF-8 JSON).
AUTH_ERRORS = responses(400, 401, 403, 422, 429, 500)
#: What a route that calls a command may answer besides: refused (409), the capability
#: not running (503) or not answering in time (504).
COMMAND_ERRORS = (409, 503, 504)


def require_access(ctx: WebContext) -> None:
    if ctx.access is None:
        raise ApiError(
            409,
            "access_disabled",
            "access control is not configured on this gateway (see [access] in its config)",
        )
