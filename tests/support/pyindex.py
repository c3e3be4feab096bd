"""PEP 503 / PEP 691 package indexes built in code and served on 127.0.0.1.

Two shapes are recreated from the field notes:

* a *PyTorch-shaped* index (``/whl/<variant>/<project>/``): HTML only, hrefs
  root-relative with the ``+`` percent-encoded, PEP 658/714 metadata
  attributes, an HTML comment at the end, no upload times, optionally files
  without a ``#sha256=`` fragment;
* a *PyPI-shaped* index (``/simple/<project>/``): HTML or JSON (PEP 691) by
  content negotiation, with upload times (PEP 700) in the JSON form.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO
from urllib.parse import quote, unquote

from packaging.utils import canonicalize_name

from .sdists import SdistSpec, build_sdist
from .wheels import WheelSpec, build_wheel

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HOLD_LIMIT_S = 120.0  # a held request is let go after this, so that no test hangs


@dataclass
class IndexFile:
    spec: WheelSpec | SdistSpec
    data: bytes
    upload_time: str | None = None
    publish_hash: bool = True
    serve_metadata: bool = True  # PEP 658 file next to the wheel
    listed_sha256: str | None = None  # a stale page: this hash listed instead of the file's

    @property
    def announces_metadata(self) -> bool:
        """Indexes publish PEP 658 metadata for wheels only, and announce what they serve."""
        return isinstance(self.spec, WheelSpec) and self.serve_metadata

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def published(self) -> str:
        return self.listed_sha256 or self.sha256


@dataclass
class Index:
    """One index rooted at ``prefix`` (``/simple`` or ``/whl/cu124``)."""

    prefix: str
    files_prefix: str
    pytorch_shaped: bool
    projects: dict[str, list[IndexFile]] = field(default_factory=dict)

    def add(
        self,
        spec: WheelSpec,
        *,
        upload_time: str | None = "2024-06-01T00:00:00Z",
        publish_hash: bool = True,
        serve_metadata: bool = True,
        listed_sha256: str | None = None,
    ) -> IndexFile:
        entry = IndexFile(
            spec, build_wheel(spec), upload_time, publish_hash, serve_metadata, listed_sha256
        )
        self.projects.setdefault(canonicalize_name(spec.name), []).append(entry)
        return entry

    def add_sdist(
        self, spec: SdistSpec, *, upload_time: str | None = "2024-06-01T00:00:00Z"
    ) -> IndexFile:
        entry = IndexFile(spec, build_sdist(spec), upload_time, serve_metadata=False)
        self.projects.setdefault(canonicalize_name(spec.name), []).append(entry)
        return entry

    def remove(self, name: str, version: str) -> None:
        key = canonicalize_name(name)
        self.projects[key] = [f for f in self.projects.get(key, []) if f.spec.version != version]

    def file_path(self, entry: IndexFile) -> str:
        return f"{self.files_prefix}/{quote(entry.spec.filename)}"

    def html_page(self, project: str) -> bytes:
        links = []
        for entry in self.projects[project]:
            href = self.file_path(entry)
            if entry.publish_hash:
                href += f"#sha256={entry.published}"
            meta = hashlib.sha256(entry.spec.metadata().encode()).hexdigest()
            attributes = (
                f' data-dist-info-metadata="sha256={meta}" data-core-metadata="sha256={meta}"'
                if entry.announces_metadata
                else ""
            )
            links.append(
                f'<a href="{html.escape(href)}"{attributes}>'
                f"{html.escape(entry.spec.filename)}</a><br/>"
            )
        body = "<!DOCTYPE html>\n<html><body>\n<h1>Links for {}</h1>\n{}\n</body></html>\n".format(
            project, "\n".join(links)
        )
        if self.pytorch_shaped:
            body += "<!--TIMESTAMP 1717200000-->\n"
        return body.encode()

    def json_page(self, project: str, base: str) -> bytes:
        files = []
        for entry in self.projects[project]:
            item: dict[str, object] = {
                "filename": entry.spec.filename,
                "url": base + self.file_path(entry),
                "hashes": {"sha256": entry.published} if entry.publish_hash else {},
            }
            if entry.announces_metadata:
                item["core-metadata"] = {
                    "sha256": hashlib.sha256(entry.spec.metadata().encode()).hexdigest()
                }
            if entry.spec.requires_python:
                item["requires-python"] = entry.spec.requires_python
            if entry.upload_time:
                item["upload-time"] = entry.upload_time
            files.append(item)
        doc = {"meta": {"api-version": "1.1"}, "name": project, "files": files}
        return json.dumps(doc).encode()


class QuietHTTPServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (uv cancelling a request) is not an error."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class IndexServer:
    """A threaded HTTP server on 127.0.0.1 serving any number of indexes."""

    def __init__(self) -> None:
        self.indexes: list[Index] = []
        self.requests: list[str] = []
        self.agents: list[str] = []  # the User-Agent of each request, in step with requests
        # (path, User-Agent) -> True to answer 503 instead: a failing server, for one client
        self.refuse: Callable[[str, str], bool] | None = None
        self.ranges: list[str] = []  # Range headers received
        self.served: list[tuple[int, int]] = []  # (first, last) byte of each range answered
        self.answers_ranges = True  # False: a server that ignores Range (sends the file)
        self.heads: list[str] = []  # paths of HEAD requests
        self.basic_auth: str | None = None  # "user:password" every request must carry
        # Paths answered one byte per TRICKLE_S after the headers: a server that is
        # slow but never silent long enough for a per-read timeout.
        self.trickle: set[str] = set()
        self.latency_s = 0.0  # added to every answer: a network round trip (benchmarks)
        self.holds: dict[str, threading.Event] = {}  # path -> requests wait until it is set
        self._httpd = QuietHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def pypi(self, name: str = "simple") -> Index:
        index = Index(f"/{name}", f"/packages/{name}", pytorch_shaped=False)
        self.indexes.append(index)
        return index

    def pytorch(self, variant: str) -> Index:
        index = Index(f"/whl/{variant}", "/whl/" + variant, pytorch_shaped=True)
        self.indexes.append(index)
        return index

    def hold(self, path: str) -> threading.Event:
        """Requests for ``path`` wait (at most ``HOLD_LIMIT_S``) until the event is set."""
        return self.holds.setdefault(path, threading.Event())

    def start(self) -> IndexServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _lookup(self, path: str, accept: str) -> tuple[int, str, bytes]:
        for index in self.indexes:
            prefix = index.prefix + "/"
            if path.startswith(prefix) and path.endswith("/"):
                project = canonicalize_name(path[len(prefix) : -1])
                if project not in index.projects:
                    return 404, "text/plain", b"not found"
                if not index.pytorch_shaped and JSON_TYPE in accept:
                    return 200, JSON_TYPE, index.json_page(project, self.url)
                return 200, "text/html", index.html_page(project)
        for index in self.indexes:
            for entries in index.projects.values():
                for entry in entries:
                    file_path = unquote(index.file_path(entry))
                    if path == file_path:
                        return 200, "application/octet-stream", entry.data
                    if path == file_path + ".metadata" and entry.serve_metadata:
                        return 200, "text/plain", entry.spec.metadata().encode()
        return 404, "text/plain", b"not found"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = unquote(self.path.split("?", 1)[0])
                server.requests.append(path)
                server.agents.append(self.headers.get("User-Agent", ""))
                self._delay(path)
                if not self._authorised() or self._refused(path):
                    return
                status, ctype, body = server._lookup(path, self.headers.get("Accept", ""))
                wanted = self.headers.get("Range", "")
                span = None
                if status == 200 and wanted.startswith("bytes=") and server.answers_ranges:
                    server.ranges.append(wanted)
                    span = byte_range(wanted, len(body))
                    server.served.append(span)
                    status = 206
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if span is not None:
                    self.send_header("Content-Range", f"bytes {span[0]}-{span[1]}/{len(body)}")
                    body = body[span[0] : span[1] + 1]
                self.send_header("Content-Length", str(len(body)))
                if server.answers_ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if path in server.trickle:
                    trickle(self.wfile, body)
                else:
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                path = unquote(self.path.split("?", 1)[0])
                server.heads.append(path)
                self._delay(path)
                if not self._authorised() or self._refused(path):
                    return
                status, ctype, body = server._lookup(path, self.headers.get("Accept", ""))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if server.answers_ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def _refused(self, path: str) -> bool:
                if server.refuse is None or not server.refuse(path, self.headers["User-Agent"]):
                    return False
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True

            def _delay(self, path: str) -> None:
                held = server.holds.get(path)
                if held is not None:
                    held.wait(HOLD_LIMIT_S)
                if server.latency_s:
                    time.sleep(server.latency_s)  # the simulated round trip itself

            def _authorised(self) -> bool:
                if server.basic_auth is None:
                    return True
                expected = "Basic " + base64.b64encode(server.basic_auth.encode()).decode()
                if self.headers.get("Authorization") == expected:
                    return True
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler


def byte_range(header: str, size: int) -> tuple[int, int]:
    """The (first, last) byte a single ``Range: bytes=`` header asks of ``size`` bytes:
    ``a-b``, ``a-`` or the suffix ``-n`` (RFC 9110 14.1.2)."""
    first, _, last = header.removeprefix("bytes=").partition("-")
    if not first:
        return max(0, size - int(last)), size - 1
    return int(first), min(int(last), size - 1) if last else size - 1


TRICKLE_S = 0.1


def trickle(out: BinaryIO, data: bytes) -> None:
    """Send ``data`` one byte per ``TRICKLE_S`` (until the client hangs up)."""
    for i in range(len(data)):
        out.write(data[i : i + 1])
        out.flush()
        time.sleep(TRICKLE_S)  # the server being slow, not a test waiting


@contextmanager
def serve() -> Iterator[IndexServer]:
    server = IndexServer().start()
    try:
        yield server
    finally:
        server.stop()
