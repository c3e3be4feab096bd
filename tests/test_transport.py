"""lockd's httpx clients look each host up once, not once per connection.

A compile's metadata reads open sixteen connections while uv's runs look
names up too; this machine's resolver stalls (five seconds) or fails lookups
made many at once (benchmarks/RESULTS.md, issue 14).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from lockd.transport import deadline_client
from tests.support.pyindex import IndexServer, serve
from tests.support.wheels import WheelSpec


@pytest.fixture
def server() -> Iterator[IndexServer]:
    with serve() as running:
        running.pypi("simple").add(WheelSpec("alpha", "1.0"))
        running.latency_s = 0.05  # requests overlap: the pool opens several connections
        yield running


class Lookups:
    """``socket.getaddrinfo`` counted for one name, answered with ``addresses`` or failing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.name = name
        self.calls = 0
        self.fail = 0  # this many lookups fail first
        self.addresses: list[str] | None = None  # None: the real answer
        real = socket.getaddrinfo

        def lookup(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != name:
                return real(host, port, *args, **kwargs)
            self.calls += 1
            if self.fail:
                self.fail -= 1
                raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            if self.addresses is None:
                return real(host, port, *args, **kwargs)
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in self.addresses
            ]

        monkeypatch.setattr(socket, "getaddrinfo", lookup)


def pages(server: IndexServer, host: str, count: int) -> list[int]:
    port = server.url.rsplit(":", 1)[1]
    with deadline_client(30, limits=httpx.Limits(max_connections=8)) as client:

        def get(_: int) -> int:
            return client.get(f"http://{host}:{port}/simple/alpha/").status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(get, range(count)))


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("localhost", None),  # the real answer
        ("index.test", ["127.0.0.3", "127.0.0.1"]),  # the first refuses: nothing listens there
    ],
)
def test_a_client_looks_each_host_up_once(
    server: IndexServer, monkeypatch: pytest.MonkeyPatch, name: str, addresses: list[str] | None
) -> None:
    lookups = Lookups(monkeypatch, name)
    lookups.addresses = addresses
    assert pages(server, name, 24) == [200] * 24
    assert lookups.calls == 1


def test_a_failed_lookup_is_not_remembered(
    server: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = Lookups(monkeypatch, "localhost")
    lookups.fail = 2  # the client's own lookup, then the one it leaves to httpcore
    port = server.url.rsplit(":", 1)[1]
    with deadline_client(30) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://localhost:{port}/simple/alpha/")
        assert client.get(f"http://localhost:{port}/simple/alpha/").status_code == 200
    assert lookups.calls == 3
