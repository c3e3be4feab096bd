"""The real ``lockd serve`` in a subprocess on a free 127.0.0.1 port, and a fleet built in code.

``running_server`` starts it, polls ``/healthz`` until it answers (with a
deadline, never a sleep) and stops it with SIGTERM, which uvicorn turns into
a graceful shutdown; the exit code is checked. ``fleet_lockset`` and
``snapshot_doc`` build a lockset and matching snapshots whose every field is
known, so a test can make exactly one thing drift.
"""

from __future__ import annotations

import copy
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from lockd.lockset import Artifact, InputFile, Lockset, Provenance
from tests.support.registry import free_port
from tests.test_drift_rules import LOCK, PYPI

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots a person can look at (ignored by git)

TARGET = LOCK.target  # the pure drift rules' lock and snapshot, served to a fleet


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def server_env(tmp: Path, **extra: str) -> dict[str, str]:
    from tests.conftest import hermetic_env

    return hermetic_env(tmp, **extra)


@contextmanager
def running_server(
    db_url: str, tmp: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "lockd", "serve", "--port", str(port), "--db", db_url, *args],
            cwd=tmp,
            env=env or server_env(tmp),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_healthy(server)
        yield server
    finally:
        stop(server)


def stop(server: Server) -> int:
    """SIGTERM, then the graceful shutdown's exit code (killed after 30 s)."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


def _wait_healthy(server: Server, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"lockd serve exited early:\n{server.log_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # a poll interval, not a wait for the server
    raise RuntimeError(f"lockd serve did not answer in time:\n{server.log_text()[-3000:]}")


def create_token(db_url: str, name: str, scope: str, tmp: Path) -> str:
    """A token made by the real CLI (printed once on stdout)."""
    proc = subprocess.run(
        [sys.executable, "-m", "lockd", "tokens", "create", name, "--scope", scope, "--db", db_url],
        cwd=tmp,
        env=server_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# -- a fleet built in code ------------------------------------------------------------------


def fleet_lockset(project: str, parent: str | None = None, numpy: str = "2.1.0") -> Lockset:
    """A lockset of ``LOCK`` (numpy at ``numpy``) that ``snapshot_doc()`` matches."""
    torch = next(a for a in LOCK.artifacts if a.name == "torch")
    numpy_file = Artifact("numpy", numpy, PYPI, f"{PYPI}/n-{numpy}.whl", f"n-{numpy}.whl", "a" * 64)
    lock = replace(
        LOCK,
        artifacts=(numpy_file, torch),
        files={f"pylock.{TARGET}.toml": "", f"{TARGET}.requirements.txt": ""},
    )
    return Lockset(
        project=project,
        inputs=(InputFile("requirements.in", "c" * 64),),
        requirements=("torch==2.6.0", "numpy"),
        targets=(TARGET,),
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": PYPI, "pytorch": "https://mirror.example/whl"},
        cutoff="2026-11-01T00:00:00Z",
        input_key=f"key-{project}-{numpy}",
        provenance=Provenance("alice", "ci-1", "2026-11-01T00:00:00Z", None, "0.1.0"),
        locks=(lock,),
        parent=parent,
    )


def lock_files(lockset: Lockset) -> tuple[Lockset, dict[str, bytes]]:
    """The lockset with its files' real hashes, and the files (as compile would pass them)."""
    from lockd.lockset import sha256_text

    files = {name: f"# {name} of {lockset.project}\n".encode() for name in lockset.locks[0].files}
    lock = replace(lockset.locks[0], files={n: sha256_text(d.decode()) for n, d in files.items()})
    return replace(lockset, locks=(lock,)), files


def snapshot_doc(
    *, cpu_torch: bool = False, driver: str = "550.54.14", extra_dists: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A snapshot matching ``fleet_lockset`` (clean), or with a CPU torch / another driver /
    extra (unexpected) dists."""
    from tests.test_drift_rules import BASE, _dist

    data = copy.deepcopy(BASE)
    if cpu_torch:
        data["torch"]["value"].update(
            kind="cpu", cuda=None, evidence=["torch/version.py: cuda = None"]
        )
    data["system"]["value"]["driver"]["value"]["version"] = driver
    data["dists"] += [_dist(name, "1.0") for name in extra_dists]
    data["system"]["value"]["dpkg"]["value"] = [["libc6", "2.36-9", "amd64"]]
    return data
