"""httpx clients whose every request has an overall deadline, not only a per-read timeout.

httpx's timeouts bound each network operation: a server that trickles one
byte every 100 ms, in its headers or its body, never trips them. Here every
request gets a deadline when it starts (``LOCKD_HTTP_DEADLINE`` seconds), and
each connect, read and write is given at most the time left, so the request
fails with ``httpx.ReadTimeout`` (its message names the deadline) however the
server paces its bytes. Redirects start a new request, and a new deadline.

httpx 0.28 (pinned) has no public way to reach the network layer: the deadline
is installed as httpcore's network backend of each connection pool the client
built (its own and the proxies'), which ``deadline_client`` checks it found.

That backend also looks each host up once per client (for ``ADDRESSES_S``),
not once per connection: a compile opens its sixteen metadata connections
while uv's runs look names up too, and a busy resolver then stalls a lookup
for its five-second timeout or fails it (benchmarks/RESULTS.md, issue 14).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

DEADLINE_VARIABLE = "LOCKD_HTTP_DEADLINE"
ADDRESSES_S = 60.0  # how long a client keeps using the addresses it looked a host up to

# (monotonic time by which the current request must be done, its length in seconds)
_deadline: ContextVar[tuple[float, float] | None] = ContextVar("lockd_http_deadline", default=None)


def deadline_client(seconds: float, **options: Any) -> httpx.Client:
    """An ``httpx.Client(**options)`` whose requests each finish within ``seconds``."""

    def start(request: httpx.Request) -> None:
        _deadline.set((time.monotonic() + seconds, seconds))

    hooks = dict(options.pop("event_hooks", {}))
    hooks["request"] = [start, *hooks.get("request", [])]
    client = httpx.Client(event_hooks=hooks, **options)
    for transport in (client._transport, *client._mounts.values()):
        if isinstance(transport, httpx.HTTPTransport):  # a test's MockTransport has no network
            pool = transport._pool
            if not isinstance(pool, httpcore.ConnectionPool):  # pragma: no cover - httpx changed
                raise TypeError("httpx's transport no longer holds an httpcore pool")
            pool._network_backend = _Backend(pool._network_backend)
    return client


def exceeded(exc: BaseException) -> bool:
    """Whether ``exc`` is a request running out of its deadline (not worth retrying)."""
    return isinstance(exc, httpx.TimeoutException) and DEADLINE_VARIABLE in str(exc)


def _left(timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
    """The time an operation may take: ``timeout``, or less if the deadline is closer."""
    current = _deadline.get()
    if current is None:
        return timeout
    end, seconds = current
    left = end - time.monotonic()
    if left <= 0:
        raise error(_message(seconds))
    return left if timeout is None else min(timeout, left)


@contextmanager
def _within(error: type[httpcore.TimeoutException]) -> Iterator[None]:
    """An operation's timeout that the deadline cut short says so."""
    try:
        yield
    except httpcore.TimeoutException:
        current = _deadline.get()
        if current is not None and time.monotonic() >= current[0]:
            raise error(_message(current[1])) from None
        raise


def _message(seconds: float) -> str:
    return f"no complete answer within {seconds:g} s ({DEADLINE_VARIABLE})"


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _within(httpcore.ReadTimeout):
            return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _within(httpcore.WriteTimeout):
            self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        with _within(httpcore.ConnectTimeout):
            left = _left(timeout, httpcore.ConnectTimeout)
            return _Stream(self._inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner
        self._addresses = _Addresses()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        # The name once, then its addresses in turn (as socket.create_connection would);
        # a failed lookup leaves the name to the inner backend, which reports it as usual.
        error: httpcore.ConnectError | None = None
        for address in self._addresses.of(host, port) or [host]:
            with _within(httpcore.ConnectTimeout):
                left = _left(timeout, httpcore.ConnectTimeout)
                try:
                    inner = self._inner.connect_tcp(
                        address, port, left, local_address, socket_options
                    )
                except httpcore.ConnectError as exc:
                    error = exc
                    continue
            return _Stream(inner)
        assert error is not None  # noqa: S101 - at least one address was tried
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        with _within(httpcore.ConnectTimeout):
            left = _left(timeout, httpcore.ConnectTimeout)
            return _Stream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _Addresses:
    """Each host's addresses, looked up by one thread while the others wait for it."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._lock = threading.Lock()

    def of(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` (none when the lookup failed: not remembered)."""
        with self._lock:
            lock = self._locks.setdefault((host, port), threading.Lock())
        with lock:
            found = self._found.get((host, port))
            if found is not None and time.monotonic() - found[0] < ADDRESSES_S:
                return found[1]
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError:
                return []
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            self._found[(host, port)] = (time.monotonic(), addresses)
            return addresses
