"""Request dependencies: database session, the caller's token and account, request bodies.

Mastodon clients send parameters as JSON, as form fields (Mastodon.py does), or as
multipart; `body(Model)` accepts all three and validates them with one pydantic model,
answering 422 with the field's name on bad input.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from sqlalchemy import ARRAY, Text, bindparam, exists, func, select, true
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app import instance_settings, rawsql, readrouting, security
from podium_app.errors import ApiError, _describe
from podium_app.models import Account, OAuthToken
from podium_app.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An OAuth access token (Bearer)")


async def session_of(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's database session: on the replica for reads that may use it
    (podium_app/readrouting.py: read-only route, replica close enough, the client has not
    just written), on the primary otherwise. Read-only routes get a session without a
    transaction (one statement, one round trip: no BEGIN/ROLLBACK)."""
    db = request.app.state.db
    read_only = readrouting.may_use_replica(request.scope)
    replica = read_only and await use_replica(request)
    async with (db.read_only_sessions(replica) if read_only else db.sessions()) as session:
        yield session


async def use_replica(request: Request) -> bool:
    """For a read-only route: whether this request reads from the replica."""
    return (request.app.state.db.replica_usable()
            and not await readrouting.recently_wrote(
                request.app.state.redis, readrouting.identities(request.scope)))


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.read_sessions() as session:
        yield session


async def _settings(request: Request) -> Settings:
    # async, like every dependency on the hot routes: FastAPI runs a plain def in its thread
    # pool, a hand-off that cost more CPU than the function (docs/perf.md, session 4).
    return instance_settings.of(request)


# Built once: constructing the statement cost more CPU per request than running it.
TOKEN_QUERY = (select(OAuthToken, Account)
               .outerjoin(Account, Account.id == OAuthToken.account_id)
               .where(OAuthToken.token_hash == bindparam("token_hash")))

Session = Annotated[AsyncSession, Depends(session_of)]
ReadSession = Annotated[AsyncSession, Depends(_read_session)]
AppSettings = Annotated[Settings, Depends(_settings)]


@dataclass
class Auth:
    token: OAuthToken
    account: Account | None
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return not self.scopes.isdisjoint(granting(scope))


@functools.cache
def granting(scope: str) -> frozenset[str]:
    """The token scopes that allow `scope`: 'write:statuses' is allowed by itself or by
    'write' ('admin:write:reports' by 'admin:write'); the follow scopes by Mastodon's legacy
    'follow' scope too. (Auth.allows, and the same check in SQL: token_gated.)"""
    parts = scope.split(":")
    found = {":".join(parts[:n]) for n in range(1, len(parts) + 1)}
    if scope in ("read:follows", "write:follows", "read:blocks", "write:blocks",
                 "read:mutes", "write:mutes"):
        found.add("follow")
    return frozenset(found)


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def _auth(session: Session, creds: Bearer) -> Auth | None:
    if creds is None or not creds.credentials:
        return None
    # One round trip for the token and its account (every authenticated request pays it).
    row = (await session.execute(
        TOKEN_QUERY, {"token_hash": security.token_hash(creds.credentials)})).first()
    if row is None:
        raise ApiError(401, "The access token is invalid")
    return _checked(*row)


def _checked(token, account) -> Auth:
    """The token's Auth, or the refusal for a token whose account is gone or suspended."""
    if token.account_id is not None:
        if account is None:
            raise ApiError(401, "The access token is invalid")
        if account.suspended_at is not None:
            raise ApiError(403, "Your login is currently disabled")
    return Auth(token=token, account=account, scopes=frozenset(token.scopes.split()))


OptionalAuth = Annotated[Auth | None, Depends(_auth)]


def require(scope: str, *, user: bool = True):
    """Dependency: a valid token with `scope`; with user=True it must belong to an account
    that is confirmed, approved and not suspended."""

    async def dependency(auth: OptionalAuth) -> Auth:
        return _permitted(auth, scope, user)

    return Depends(dependency)


def _permitted(auth: Auth | None, scope: str, user: bool) -> Auth:
    if auth is None:
        raise ApiError(401, "The access token is invalid")
    if not auth.allows(scope):
        raise ApiError(403, "This action is outside the authorized scopes")
    if user:
        account = auth.account
        if account is None:
            raise ApiError(422, "This method requires an authenticated user")
        if account.confirmed_at is None:
            raise ApiError(403, "Your login is missing a confirmed e-mail address")
        if not account.approved:
            raise ApiError(403, "Your login is currently pending approval")
    return auth


async def _raw(session: Session) -> rawsql.Raw:
    return await rawsql.Raw.of(session)


RawSession = Annotated[rawsql.Raw, Depends(_raw)]
# TOKEN_QUERY's columns: the token's, then the account's (NULL for an app-only token).
_TOKEN_COLUMNS = [column.key for column in OAuthToken.__table__.columns]
_ACCOUNT_COLUMNS = [column.key for column in Account.__table__.columns]


def require_raw(scope: str):
    """require(scope) for a route that reads through asyncpg (podium_app/rawsql.py; the home
    timeline): the same token query, answers and refusals, with plain rows for the token
    and the account instead of ORM objects."""

    async def dependency(run: RawSession, creds: Bearer) -> Auth:
        return await raw_auth(run, creds, scope)

    return Depends(dependency)


async def raw_auth(run: rawsql.Raw, creds: HTTPAuthorizationCredentials | None,
                   scope: str) -> Auth:
    """The body of require_raw(scope)."""
    return await raw_auth_by_hash(
        run, security.token_hash(creds.credentials)
        if creds is not None and creds.credentials else None, scope)


async def raw_auth_by_hash(run: rawsql.Raw, token_hash: str | None, scope: str) -> Auth:
    """raw_auth with the token's hash (security.token_hash) already computed, or None
    without a token (podium_app/homefast.py)."""
    auth = None
    if token_hash is not None:
        found = await run.tuples(TOKEN_QUERY, {"token_hash": token_hash})
        if not found:
            raise ApiError(401, "The access token is invalid")
        values = list(found[0].values())
        split = len(_TOKEN_COLUMNS)
        token = rawsql.Row(zip(_TOKEN_COLUMNS, values[:split], strict=True))
        account = (rawsql.Row(zip(_ACCOUNT_COLUMNS, values[split:], strict=True))
                   if values[split] is not None else None)
        auth = _checked(token, account)
    return _permitted(auth, scope, True)


# token_gated's own names for the token's tables: the statements it wraps read `accounts`
# (the authors) and must not be correlated with the token's account.
_GATE_TOKEN = OAuthToken.__table__.alias("gate_token")
_GATE_ACCOUNT = Account.__table__.alias("gate_account")


@functools.cache
def token_gated(query, ascending: bool, scope: str):
    """`query` (a statement built once, whose first column is a status id) behind a token
    check in the same statement, for a reader whose account id came from the token cache
    (podium_app/tokencache.py; docs/decisions/0297-home-read-token-cache.md).

    The check is _checked and _permitted(scope, user=True) in SQL: a token with hash
    `token_hash` exists, belongs to account `viewer_id`, has one of granting(scope) among
    its scopes, and that account is confirmed, approved and not suspended. The answer's
    first column, `authorized`, says whether it passed; `query`'s rows follow it in the
    same row only when it did (PostgreSQL does not run `query` otherwise: a one-time
    filter). So there is always at least one row: (false, NULLs...) refused; (true,
    NULLs...) an empty page; else (true, row) per row of `query`, in `query`'s order
    (by its first column, ascending or not). Parameters: `query`'s, token_hash, viewer_id.
    Built once per (query, ascending, scope)."""
    token, holder = _GATE_TOKEN, _GATE_ACCOUNT
    valid = exists().where(
        token.c.token_hash == bindparam("token_hash"),
        token.c.account_id == bindparam("viewer_id", type_=PG_UUID(as_uuid=True)),
        holder.c.id == token.c.account_id,
        holder.c.suspended_at.is_(None),
        holder.c.confirmed_at.is_not(None),
        holder.c.approved,
        # str.split()'s words, as Auth.scopes has them
        func.regexp_split_to_array(token.c.scopes, r"\s+").op("&&")(
            bindparam("granting", value=sorted(granting(scope)), type_=ARRAY(Text))),
    )
    # MATERIALIZED: evaluated once. As a subquery, PostgreSQL pulled it up and ran the check
    # twice (once for the column, once for the page's filter).
    gate = select(valid.label("authorized")).cte("gate").prefix_with("MATERIALIZED")
    page = query.where(gate.c.authorized).lateral("page")
    first = page.c[0]
    return (select(gate.c.authorized, *page.c).select_from(gate.outerjoin(page, true()))
            .order_by(first.asc() if ascending else first.desc()))


def user_of(auth: Auth) -> Account:
    assert auth.account is not None
    return auth.account


def _list_fields(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        origin = typing.get_origin(info.annotation)
        args = typing.get_args(info.annotation)
        if origin is list or any(typing.get_origin(a) is list for a in args):
            names.add(name)
    return names


async def parse_params(request: Request, model: type[BaseModel]) -> Any:
    data: dict[str, Any] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    lists = _list_fields(model)
    raw_items: list[tuple[str, Any]] = list(request.query_params.multi_items())
    if content_type == "application/json":
        try:
            payload = await request.json()
        except ValueError as err:
            raise ApiError(400, "The request body is not valid JSON") from err
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise ApiError(422, "Validation failed: the JSON body must be an object")
        for key, value in raw_items:
            data.setdefault(key.removesuffix("[]"), value)
        data.update(payload)
    else:
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.form()
            except Exception as err:  # malformed multipart bodies
                raise ApiError(400, "The form body could not be parsed") from err
            raw_items += list(form.multi_items())
        for key, value in raw_items:
            name = key.removesuffix("[]")
            if name in lists:
                data.setdefault(name, []).append(value)
            else:
                data[name] = value
    _reject_nul(data)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ApiError(422, f"Validation failed: {_describe(err.errors())}") from err


def _reject_nul(value: Any) -> None:
    """PostgreSQL text cannot hold NUL characters: refuse them up front (422, not 500)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(422, "Validation failed: text must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key)
            _reject_nul(item)
    elif isinstance(value, list):
        for item in value:
            _reject_nul(item)


async def reject_nul_in_url(request: Request) -> None:
    """App-wide dependency: the same refusal for paths and query strings."""
    _reject_nul(request.url.path)
    _reject_nul([item for pair in request.query_params.multi_items() for item in pair])
    _reject_nul(list(request.path_params.values()))


def body(model: type[BaseModel]):
    """Dependency returning `model` parsed from JSON, form or query parameters."""

    async def dependency(request: Request):
        return await parse_params(request, model)

    return Depends(dependency)


def body_doc(model: type[BaseModel]) -> dict:
    """openapi_extra for a route taking `body(model)`: documents both encodings."""
    schema = model.model_json_schema()
    return {"requestBody": {"content": {
        "application/json": {"schema": schema},
        "application/x-www-form-urlencoded": {"schema": schema},
    }, "required": False}}


def now() -> datetime:
    return datetime.now(UTC)
