"""Conda channels built in code and served on 127.0.0.1.

A channel is a directory with one folder per subdir (``linux-64``,
``linux-aarch64``, ``noarch``), each holding a ``repodata.json`` and the
package archives it lists. Archives are real, tiny ``.tar.bz2`` files
(``info/index.json``, ``info/paths.json`` and one payload file), so the md5,
sha256 and size in the repodata are those of bytes a client can download,
verify and install.

``pytorch_channel`` recreates the shape that matters for CUDA locks, after
conda-forge: ``pytorch`` builds ``cuda118_*`` and ``cuda124_*`` that depend
on ``__cuda`` and ``cuda-version``, a ``cpu_*`` build with a lower build number
(conda-forge adds 200 to CUDA builds so a solver prefers them when ``__cuda``
is present), Python 3.11 and 3.12, and a ``linux-aarch64`` subdir with CPU
builds only.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.support.pyindex import QuietHTTPServer

SUBDIRS = ("linux-64", "linux-aarch64", "noarch")


@dataclass(frozen=True)
class CondaPkg:
    """One package build to put in a channel."""

    name: str
    version: str
    build: str
    subdir: str
    build_number: int = 0
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    track_features: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"

    def index_json(self) -> dict[str, Any]:
        index: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "build_number": self.build_number,
            "depends": list(self.depends),
            "constrains": list(self.constrains),
            "subdir": self.subdir,
            "license": "MIT",
            "timestamp": 1717200000000,
        }
        if self.subdir == "noarch":
            index["noarch"] = "generic"
        else:
            index["platform"], index["arch"] = {
                "linux-64": ("linux", "x86_64"),
                "linux-aarch64": ("linux", "aarch64"),
            }[self.subdir]
        if self.track_features:
            index["track_features"] = self.track_features
        return index


def build_archive(pkg: CondaPkg) -> bytes:
    """The bytes of a ``.tar.bz2`` conda package that rattler can extract and link."""
    payload_path = f"share/lockd-test/{pkg.name}-{pkg.version}-{pkg.build}.txt"
    payload = f"{pkg.name} {pkg.version} {pkg.build}\n".encode()
    paths = {
        "paths_version": 1,
        "paths": [
            {
                "_path": payload_path,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(payload).hexdigest(),
                "size_in_bytes": len(payload),
            }
        ],
    }
    members = {
        "info/index.json": json.dumps(pkg.index_json(), indent=2).encode(),
        "info/paths.json": json.dumps(paths, indent=2).encode(),
        "info/files": (payload_path + "\n").encode(),
        payload_path: payload,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1717200000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class CondaChannel:
    """Packages per subdir; ``write`` lays them out as a channel directory."""

    packages: list[CondaPkg] = field(default_factory=list)

    def add(self, pkg: CondaPkg) -> CondaPkg:
        self.packages.append(pkg)
        return pkg

    def write(self, root: Path, *, archives: bool = True) -> Path:
        """Write ``<root>/<subdir>/repodata.json`` (and the archives unless told not to).

        Without archives (solve-only benchmarks with thousands of records) the
        hashes and size are those of the package's ``index.json``: well-formed,
        but of nothing downloadable.
        """
        for subdir in SUBDIRS:
            (root / subdir).mkdir(parents=True, exist_ok=True)
            entries: dict[str, Any] = {}
            for pkg in (p for p in self.packages if p.subdir == subdir):
                if archives:
                    data = build_archive(pkg)
                    (root / subdir / pkg.filename).write_bytes(data)
                else:
                    data = json.dumps(pkg.index_json()).encode()
                entries[pkg.filename] = {
                    **pkg.index_json(),
                    "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - conda's own field
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                }
            repodata = {
                "info": {"subdir": subdir},
                "packages": entries,
                "packages.conda": {},
                "removed": [],
                "repodata_version": 1,
            }
            (root / subdir / "repodata.json").write_text(json.dumps(repodata, indent=1))
        return root


def pytorch_channel() -> CondaChannel:
    """The CUDA-shaped channel most conda tests use (see the module docstring)."""
    channel = CondaChannel()
    for subdir in ("linux-64", "linux-aarch64"):
        for py, full in (("311", "3.11.9"), ("312", "3.12.4")):
            channel.add(CondaPkg("python", full, f"h{py}0000_0_cpython", subdir))
            pin = f"python >={full[:4]},<{full[:2]}{int(full[2:4]) + 1}.0a0"
            channel.add(CondaPkg("numpy", "2.0.1", f"py{py}h0000000_0", subdir, depends=(pin,)))
            channel.add(
                CondaPkg(
                    "pytorch", "2.4.0", f"cpu_generic_py{py}h1111111_0", subdir, depends=(pin,)
                )
            )
            if subdir != "linux-64":
                continue  # conda-forge shipped no CUDA builds for aarch64 here
            for cuda, upper in (("11.8", "12"), ("12.4", "13")):
                tag = cuda.replace(".", "")
                channel.add(
                    CondaPkg(
                        "pytorch",
                        "2.4.0",
                        f"cuda{tag}_generic_py{py}h2222{tag}_200",
                        subdir,
                        build_number=200,
                        depends=(pin, "__cuda", f"cuda-version >={cuda},<{upper}"),
                    )
                )
    for cuda, hash_ in (("11.8", "h70ddcb2_3"), ("12.4", "h3060b56_3")):
        channel.add(
            CondaPkg(
                "cuda-version",
                cuda,
                hash_,
                "noarch",
                build_number=3,
                constrains=(f"__cuda >={cuda}", f"cudatoolkit {cuda}|{cuda}.*"),
            )
        )
    channel.add(CondaPkg("tzdata", "2024a", "h0c530f3_0", "noarch"))
    return channel


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


class ChannelServer:
    """Serve a directory of channels on 127.0.0.1; ``requests`` records every GET path."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        handler = type("Handler", (_QuietHandler,), {"requests": self.requests})
        self._httpd = QuietHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ChannelServer:
        self._thread.start()
        _wait_until_listening(self._httpd.server_address[1])
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _wait_until_listening(port: int, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def serve_channels(root: Path) -> Iterator[ChannelServer]:
    """Serve ``root`` (which holds one folder per channel) until the block ends."""
    server = ChannelServer(root).start()
    try:
        yield server
    finally:
        server.stop()


def unused_port() -> int:
    """A port nothing listens on (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
