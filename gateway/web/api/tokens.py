"""API tokens, for admins: list, create (the secret is shown once), revoke."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from gateway.web import auth, errors
from gateway.web.api.deps import AUTH_ERRORS, Admin, Web
from gateway.web.errors import ApiError, responses

router = APIRouter(prefix="/api/tokens", tags=["tokens"], responses=AUTH_ERRORS)


class TokenOut(BaseModel):
    name: str
    scope: Literal["read", "operate", "admin"]
    created_at: float
    last_used_at: float | None

    @classmethod
    def of(cls, r: auth.TokenRecord) -> TokenOut:
        return cls(
            name=r.name,
            scope=r.scope.label,  # type: ignore[arg-type]
            created_at=r.created_at,
            last_used_at=r.last_used_at,
        )


class TokenList(BaseModel):
    tokens: list[TokenOut]


errors.PATTERN_RULES[auth.NAME_PATTERN.pattern] = auth.NAME_RULE


class NewToken(BaseModel):
    name: str = Field(pattern=auth.NAME_PATTERN.pattern, description=auth.NAME_RULE)
    scope: Literal["read", "operate", "admin"]


class CreatedToken(BaseModel):
    token: TokenOut
    secret: str = Field(description="Shown once; only its hash is stored")


class Revoked(BaseModel):
    revoked: str


@router.get("")
async def list_tokens(ctx: Web, caller: Admin) -> TokenList:
    """Every token's name, scope and last use (never a secret)."""
    store = ctx.store
    records = await store.run(auth.list_tokens, store.db)
    return TokenList(tokens=[TokenOut.of(r) for r in records])


@router.post("", status_code=201, responses=responses(409))
async def create_token(body: NewToken, ctx: Web, caller: Admin) -> CreatedToken:
    """Create a token; its secret is in this answer only."""
    store = ctx.store
    try:
        record, secret = await store.run(
            auth.create_token, store.db, body.name, auth.Scope.parse(body.scope)
        )
    except auth.TokenError as err:
        raise ApiError(409, "token_exists", str(err)) from err
    return CreatedToken(token=TokenOut.of(record), secret=secret)


@router.delete("/{name}", responses=responses(404))
async def revoke_token(
    name: Annotated[str, Path(max_length=64)], ctx: Web, caller: Admin
) -> Revoked:
    """Revoke a token; it stops working at once."""
    store = ctx.store
    if not await store.run(auth.revoke_token, store.db, name):
        raise ApiError(404, "not_found", f"no token named {name!r}")
    return Revoked(revoked=name)
