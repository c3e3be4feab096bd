"""The ``Requires-Dist`` of every locked package: the dependency graph's raw material.

One reader per compile, shared by the targets' threads. Each file is asked
for once (targets share most wheels), on a small pool of threads, and the
index client caches every answer on disk by the file's sha256 (a file with
that hash can never have other metadata), so a recompile reads local files.
While the resolver still works, each wheel it picks is read already
(``early``): when it is done, most answers are in. Only the files of the
final resolution are read into the graph; a pick the resolver backtracked
away from is never looked at again.

The wheel a target installs is read (PEP 658 ``.metadata`` first, else the
wheel's own METADATA by byte ranges; at the end, on a host that lacked
``.metadata`` files already, the other way round); an sdist has no
trustworthy metadata without a build, so its requirements are unknown
(``None``) and the graph says so. A wheel whose metadata cannot be read fails the target: a lock
whose graph is silently missing edges would mislead its reviewer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import PackageIndexError, excerpt
from ..indexes import requires_dist
from ..urls import strip_credentials, with_userinfo

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..indexes import IndexClient
    from ..resolvers.interface import Candidate, Resolution, ResolvedFile
    from ..routing import IndexPlan

WORKERS = 16  # metadata requests in flight at once, for all targets together
ATTEMPTS = 3  # a file's metadata is asked for up to this often (uv retries 3 times too)
BACKOFF_S = 0.5

Pending = Mapping[str, "Future[list[str]] | None"]  # package -> its lines (None: unknown)


class RequiresReader:
    """Fetches ``Requires-Dist`` lines concurrently, each file once per compile."""

    def __init__(self, client: IndexClient, workers: int = WORKERS) -> None:
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metadata")
        self._by_file: dict[str, Future[list[str]]] = {}
        # URL -> METADATA read while the resolver worked, and the URLs the final reads
        # took over (no early read starts after: a final read only ever waits on one
        # queued before it, which a worker is running or has finished).
        self._early: dict[str, Future[str]] = {}
        self._claimed: set[str] = set()
        self._lock = threading.Lock()
        # The cache is written beside what comes next (the graph, the record), not
        # before the answers: one thread, which the interpreter waits for at exit.
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metadata-cache")

    def early(self, plan: IndexPlan) -> Callable[[Candidate], None]:
        """For ``ResolveRequest.watch``: read each wheel the resolver picks at once."""

        def read(candidate: Candidate) -> None:
            url = strip_credentials(candidate.url)
            if self._client.has_metadata_of(url):
                return  # read from the cache at the end, as fast
            with self._lock:
                if url in self._early or url in self._claimed:
                    return
                credentialed = with_userinfo(url, plan.index_url(candidate.name))
                self._early[url] = self._pool.submit(self._client.fetch_metadata, credentialed)

        return read

    def submit(self, resolution: Resolution, plan: IndexPlan) -> Pending:
        """Start reading every package of ``resolution``; the answers arrive as futures."""
        wheels = [
            (package.name, wheel)
            for package in resolution.packages
            if (wheel := next((f for f in package.files if f.kind == "wheel"), None))
        ]
        with self._lock:
            early = set(self._early)
        # The files nothing read early go first: their requests are what the graph waits on.
        wheels.sort(key=lambda item: strip_credentials(item[1].url) in early)
        # Credentials of the index the package is routed to (the lock's URLs have none).
        read = {name: self._read(wheel, plan.index_url(name)) for name, wheel in wheels}
        return {package.name: read.get(package.name) for package in resolution.packages}

    def _read(self, wheel: ResolvedFile, index_url: str) -> Future[list[str]]:
        key = wheel.sha256 or wheel.url
        with self._lock:
            if key not in self._by_file:
                url = strip_credentials(wheel.url)
                self._claimed.add(url)
                early = self._early.get(url)
                self._by_file[key] = self._pool.submit(self._fetch, wheel, index_url, early)
            return self._by_file[key]

    def _fetch(self, wheel: ResolvedFile, index_url: str, early: Future[str] | None) -> list[str]:
        cached = text = self._client.cached_metadata(wheel.sha256)
        if text is None:
            text = _answer(early) if early is not None else None
            if text is None:
                text = self._download(with_userinfo(wheel.url, index_url), wheel.filename)
        if cached is None or early is not None:  # (read early: a cache without its URL)
            # Under its URL too: the next compile sees it is cached before uv is done.
            self._writes.submit(self._client.keep_metadata, wheel.sha256, text, wheel.url)
        return requires_dist(text)

    def _download(self, url: str, filename: str) -> str:
        # Read at the end, when the graph waits for it: on a host that lacked PEP 658
        # files already (some mirrors), the wheel's tail first rather than a 404 first.
        ranges_first = self._client.lacked_pep658(url)
        # A hundred requests per compile meet the odd dropped connection or DNS hiccup;
        # the resolver a second earlier retried its own the same way.
        attempt = 1
        while True:
            try:
                return self._client.fetch_metadata(url, ranges_first=ranges_first)
            except PackageIndexError as exc:
                if attempt == ATTEMPTS:
                    raise PackageIndexError(
                        f"Cannot read the requirements of {excerpt(filename)} for the "
                        f"dependency graph ({exc.message.rstrip('.')}; tried {ATTEMPTS} times).",
                        hint="Check that the index serves the file or its PEP 658 .metadata, "
                        "and compile again.",
                    ) from None
            time.sleep(BACKOFF_S * attempt)
            attempt += 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._writes.shutdown(wait=False)  # the cache is written on, while lockd records


def _answer(early: Future[str]) -> str | None:
    """An early read's METADATA; ``None`` when it failed (read again, with retries)."""
    try:
        return early.result()
    except Exception:  # only a head start: the final read reports what fails
        return None


def gather(pending: Pending) -> dict[str, list[str] | None]:
    """Wait for every answer; a failed read raises its ``PackageIndexError``."""
    return {name: None if f is None else f.result() for name, f in pending.items()}
