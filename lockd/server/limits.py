"""Request limits: per-token rates (a token bucket per key, in this process's memory),
and the size of a request body (:class:`BodyLimit`).

The buckets live in the server process, so the limit is per process: two
``lockd serve`` processes behind a load balancer let a token through twice as
fast. Keys are token hashes (or ``anon:ADDRESS`` for public reads), never
tokens. A bucket holds up to ``burst`` requests and refills at ``rate`` per
second; an idle full bucket is dropped so the map stays small.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``check(key)`` -> seconds to wait (0.0: go ahead, one request counted)."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, 2 * rate)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str) -> float:
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if now - self._last_sweep > 60:
                self._sweep(now)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items() if now - bucket.stamp < full_after
        }
        self._last_sweep = now


class BodyTooLarge(HTTPException):
    """A request body over the server's limit (answered as every API error is)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"The request body is larger than this server's limit of {limit} bytes "
            "(LOCKD_SERVE_BODY_LIMIT).",
        )


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with a 413: before the application runs
    when ``Content-Length`` announces it, else as soon as the bytes streamed in pass it.

    Both are raised as :class:`BodyTooLarge`, which the application answers in the one
    error shape (``{"detail": …}``; starlette's own limit middleware answers in plain text
    from one path and JSON from the other).
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        too_large = declared.isdigit() and int(declared) > self.limit
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if too_large:
                raise BodyTooLarge(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)
