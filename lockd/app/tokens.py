"""Token use cases: create (shown once), list, revoke; and how a presented token is judged.

The database keeps ``sha256(token)`` only (see :mod:`lockd.store.tokens` for
why a fast hash is right for 256-bit random tokens). Scopes nest:
``admin`` ⊇ ``ingest`` ⊇ ``read``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from ..store import Store, TokenInfo

PREFIX = "lockd_"
SCOPE_RANK = {"read": 0, "ingest": 1, "admin": 2}


@dataclass(frozen=True, slots=True)
class NewToken:
    name: str
    scope: str
    expires: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Created:
    name: str
    scope: str
    token: str  # shown once, never stored
    expires_at: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create(store: Store, request: NewToken) -> Created:
    """A new random token; only its hash is recorded."""
    from ..names import check_name

    check_name("token", request.name, hint="Name the token after who uses it (ci-east).")
    if request.scope not in SCOPE_RANK:
        raise UsageError(f"Unknown scope {request.scope!r}.", hint="Use read, ingest or admin.")
    token = PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + request.expires if request.expires else None
    store.add_token(request.name, request.scope, hash_token(token), expires)
    return Created(
        request.name,
        request.scope,
        token,
        expires.strftime("%Y-%m-%dT%H:%M:%SZ") if expires else None,
    )


def allows(info: TokenInfo | None, scope: str, now: datetime) -> str | None:
    """Why ``info`` may not act with ``scope`` (None: it may). Never names the token."""
    if info is None:
        return "unknown token"
    state = info.state(now)
    if state != "active":
        return f"token {info.name!r} is {state}"
    if SCOPE_RANK[info.scope] < SCOPE_RANK[scope]:
        return f"token {info.name!r} has scope {info.scope!r}; this needs {scope!r}"
    return None
