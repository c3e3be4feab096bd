"""Who is calling: tokens from the Authorization header, scopes, rate limits.

``Authorization: Bearer TOKEN`` for programs; ``Basic`` with the token as the
password (any user name) so that a browser can open the dashboard and its
downloads without JavaScript: it asks for the password itself after a 401.
The token is hashed at once and only the hash goes further; refusals name
the token's *name*, never the token.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request

from ..app.tokens import allows, hash_token
from ..store import Store
from .limits import RateLimiter

CHALLENGE = 'Bearer realm="lockd", Basic realm="lockd", charset="UTF-8"'


@dataclass(frozen=True, slots=True)
class Caller:
    name: str | None  # the token's name; None for an anonymous (public) read
    scope: str | None


class Refused(Exception):  # noqa: N818 - a response, not a failure of lockd
    """An answer other than 200 decided before any work: 401, 403, 429."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def presented_token(header: str | None) -> str | None:
    """The token in an Authorization header (Bearer, or Basic's password), else None."""
    if not header:
        return None
    kind, _, value = header.strip().partition(" ")
    value = value.strip()
    if kind.lower() == "bearer":
        return value or None
    if kind.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None


class Guard:
    """Checks each request's token and scope, and counts it against the token's rate."""

    def __init__(self, store: Store, limiter: RateLimiter, *, public_read: bool) -> None:
        self.store = store
        self.limiter = limiter
        self.public_read = public_read

    def check(self, request: Request, scope: str) -> Caller:
        token = presented_token(request.headers.get("authorization"))
        if token is None:
            if scope == "read" and self.public_read:
                client = request.client.host if request.client else "unknown"
                self._count(f"anon:{client}")
                return Caller(None, None)
            raise Refused(
                401,
                f"This needs a token with scope {scope!r}: send Authorization: Bearer TOKEN.",
                {"WWW-Authenticate": CHALLENGE},
            )
        digest = hash_token(token)
        info = self.store.token(digest)
        why = allows(info, scope, datetime.now(UTC))
        if why is not None:
            status = 403 if info is not None and info.state(datetime.now(UTC)) == "active" else 401
            headers = {"WWW-Authenticate": CHALLENGE} if status == 401 else {}
            raise Refused(status, f"Refused: {why}.", headers)
        self._count(digest)
        assert info is not None  # noqa: S101 - allows() refused None above
        return Caller(info.name, info.scope)

    def _count(self, key: str) -> None:
        wait = self.limiter.check(key)
        if wait > 0:
            raise Refused(
                429,
                "Too many requests for this token; slow down.",
                {"Retry-After": str(max(1, round(wait + 0.5)))},
            )


def require(scope: str) -> Callable[[Request], Caller]:
    """A FastAPI dependency: the caller, if its token may act with ``scope``."""

    def dependency(request: Request) -> Caller:
        guard: Guard = request.app.state.guard
        caller = guard.check(request, scope)
        request.state.caller = caller
        return caller

    return dependency
